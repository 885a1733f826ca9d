"""NotificationRouter: routing, dedup, rate limit + digest, quiet hours, feed-down, API helpers.
apprise builds each channel's plugin; deliveries end in an in-process inbox (MockTransport)."""

from __future__ import annotations

import random
import re
from decimal import Decimal

import pytest
from structlog.testing import capture_logs

from cryptomon.errors import ConfigError
from cryptomon.events import (
    FeedStatus,
    Notice,
    OrderIntent,
    OrderState,
    OrderUpdate,
    RiskEvent,
    Severity,
)
from cryptomon.notify.router import UnknownChannelError
from tests.unit.notify.factories import T0, anomaly, running_router
from tests.unit.notify.inbox import Inbox
from tests.util import wait_until


def _ch(name: str, sink: Inbox, **kw: object) -> dict[str, object]:
    return {"name": name, "url": sink.url(name), **kw}


@pytest.mark.asyncio
async def test_routing_by_severity_kind_exchange_and_symbol(inbox: Inbox) -> None:
    """Each channel gets only the alerts its min_severity, kinds, exchanges and symbols allow."""
    channels = [
        _ch("all", inbox, min_severity="low"),
        _ch("price_high", inbox, min_severity="high", kinds=["price_change"]),
        _ch("eth", inbox, symbols=["ETH/USDT"], exchanges=["binance"]),
    ]
    async with running_router(transport=inbox.transport, channels=channels) as run:
        run.hub.publish(anomaly(kind="volume", severity=Severity.MEDIUM))
        run.hub.publish(anomaly(kind="price_change", severity=Severity.HIGH))
        run.hub.publish(anomaly(symbol="ETH-USDT", severity=Severity.HIGH))
        run.hub.publish(anomaly(exchange="okx", symbol="ETH-USDT", severity=Severity.HIGH))
        await wait_until(lambda: len(inbox.messages) == 6)
        got = sorted(zip(inbox.paths, inbox.titles(), strict=True))
    assert [t for p, t in got if p == "/price_high"] == [
        "[P1] binance BTC-USDT: price_change anomaly (high)"
    ]
    assert [t for p, t in got if p == "/eth"] == ["[P1] binance ETH-USDT: volume anomaly (high)"]
    assert len([p for p, _ in got if p == "/all"]) == 4
    assert all(r.status == "sent" for r in run.records)


@pytest.mark.asyncio
async def test_dedup_within_window_then_again_after(inbox: Inbox) -> None:
    """Same exchange+symbol+kind is sent once per window; a higher severity or a new window
    passes; duplicates are recorded as suppressed."""
    async with running_router(
        transport=inbox.transport, channels=[_ch("ops", inbox)], dedup_window_s=120
    ) as run:
        for _ in range(3):
            run.hub.publish(anomaly())
        await run.hub.join()
        run.hub.publish(anomaly(severity=Severity.CRITICAL))  # escalation passes
        await wait_until(lambda: len(run.by("ops", "sent")) == 2)
        run.clock.advance(121)
        run.hub.publish(anomaly())
        await wait_until(lambda: len(run.by("ops", "sent")) == 3)
    suppressed = run.by("ops", "suppressed")
    assert len(suppressed) == 2
    assert "duplicate of binance/BTC-USDT/volume within 120s" in suppressed[0].error
    assert len(inbox.messages) == 3
    assert inbox.titles()[1].startswith("[P0]")


@pytest.mark.asyncio
async def test_alert_storm_is_rate_limited_and_digested(inbox: Inbox) -> None:
    """1,000 anomalies in one minute: at most the bucket's messages, every distinct alert that
    was not sent alone appears in exactly one digest, duplicates are suppressed."""
    rng = random.Random(7)
    keys = [(f"C{i}-USDT", kind) for i in range(125) for kind in ("volume", "price")]
    storm = [rng.choice(keys) for _ in range(1000)]
    storm[: len(keys)] = keys  # every key occurs at least once
    rng.shuffle(storm)
    # a digest listing all of them (digest_max_items): which ones it holds is the point here
    channel = _ch("ops", inbox, rate_limit_per_min=6, digest_interval_s=60, digest_max_items=500)
    async with running_router(transport=inbox.transport, channels=[channel]) as run:
        for chunk in range(10):  # 100 anomalies every 6 s: the whole storm within 60 s
            for sym, kind in storm[chunk * 100 : (chunk + 1) * 100]:
                run.hub.publish(anomaly(symbol=sym, kind=kind, ts=run.clock.time()))
            await run.hub.join()
            run.clock.advance(6)
            await wait_until(lambda: run.clock.sleepers > 0)
        run.clock.advance(2)  # t = 62 s: the digest is due and has a token
        await wait_until(lambda: run.router.stats()["digest_pending"]["ops"] == 0)
        await wait_until(lambda: len(run.by("ops", "digested")) + len(run.by("ops", "sent")) >= 250)
        elapsed_min = (run.clock.time() - T0) / 60
    assert len(inbox.messages) <= 6 + 6 * elapsed_min
    digests = [m for m in inbox.messages if m["title"].startswith("[digest]")]
    singles = [m for m in inbox.messages if not m["title"].startswith("[digest]")]
    assert len(digests) == 1
    assert len(singles) == 6
    alone = {re.search(r"binance (\S+): (\w+) anomaly", m["title"]).groups() for m in singles}
    listed = set(re.findall(r"binance (\S+): (\w+) 7\.5 vs 3", digests[0]["message"]))
    assert alone | listed == set(keys)
    assert not alone & listed
    assert len(run.by("ops", "digested")) == len(listed) == 244
    assert len(run.by("ops", "suppressed")) == 750
    assert digests[0]["title"] == "[digest] 244 alerts for ops (rate limit reached)"


@pytest.mark.asyncio
async def test_quiet_hours_let_only_p0_through(inbox: Inbox) -> None:
    """In a channel's quiet hours (in its time zone) only P0 alerts are sent."""
    channels = [  # T0 is 22:13 UTC = 07:13 in Tokyo
        _ch("night_utc", inbox, quiet_hours="22:00-07:00", quiet_hours_tz="UTC"),
        _ch("night_tokyo", inbox, quiet_hours="22:00-07:00", quiet_hours_tz="Asia/Tokyo"),
    ]
    async with running_router(transport=inbox.transport, channels=channels) as run:
        run.hub.publish(anomaly(severity=Severity.HIGH))
        run.hub.publish(anomaly(kind="price", severity=Severity.CRITICAL))
        await wait_until(lambda: len(inbox.messages) == 3)
    quiet = run.by("night_utc", "suppressed")
    assert [r.error for r in quiet] == ["quiet hours"]
    assert [r.priority for r in run.by("night_utc", "sent")] == ["P0"]
    assert len(run.by("night_tokyo", "sent")) == 2


def _feed(status: str, ts: float) -> FeedStatus:
    return FeedStatus(
        exchange="binance", symbol="BTC-USDT", ts=ts, ts_recv=ts, channel="trades", status=status
    )  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_feed_down_only_when_not_recovered_in_time(inbox: Inbox) -> None:
    """A stale feed is reported after feed_down_after_s unless it recovered first; its
    recovery is then reported too."""
    async with running_router(
        transport=inbox.transport, channels=[_ch("ops", inbox)], feed_down_after_s=60
    ) as run:
        run.hub.publish(_feed("stale", T0))
        await run.hub.join()
        run.clock.advance(30)
        run.hub.publish(_feed("live", run.clock.time()))  # recovered in time: nothing
        await run.hub.join()
        run.hub.publish(_feed("disconnected", run.clock.time()))
        await run.hub.join()
        for _ in range(3):
            run.clock.advance(30)
            await wait_until(lambda: run.clock.sleepers > 0)
        await wait_until(lambda: len(inbox.messages) == 1)
        assert inbox.titles() == ["[P1] feed down: binance BTC-USDT trades"]
        run.hub.publish(_feed("live", run.clock.time()))
        await wait_until(lambda: len(inbox.messages) == 2)
    assert inbox.titles()[1] == "[P2] feed recovered: binance BTC-USDT trades"
    assert "Down for: 90s" in inbox.bodies()[1]


@pytest.mark.asyncio
async def test_stop_loss_exit_and_kill_switch_are_notified(inbox: Inbox) -> None:
    """A filled stop-loss order is reported as an exit (P1); the kill switch is P0."""
    async with running_router(transport=inbox.transport, channels=[_ch("ops", inbox)]) as run:
        common = {"exchange": "binance", "symbol": "BTC-USDT", "ts": T0, "ts_recv": T0}
        run.hub.publish(
            OrderIntent(
                **common,
                client_order_id="sl-1",
                side="sell",
                type="market",
                amount=Decimal("0.5"),
                origin="stop_loss",
            )
        )
        run.hub.publish(
            OrderUpdate(
                **common,
                client_order_id="sl-1",
                state=OrderState.FILLED,
                side="sell",
                type="market",
                amount=Decimal("0.5"),
                filled=Decimal("0.5"),
                avg_price=Decimal("41000"),
            )
        )
        run.hub.publish(
            RiskEvent(**common, kind="kill_switch", state="halted", reason="daily loss limit")
        )
        await wait_until(lambda: len(inbox.messages) == 2)
    titles = sorted(inbox.titles())
    assert titles == [
        "[P0] KILL SWITCH: trading halted",
        "[P1] binance BTC-USDT: closed by stop-loss",
    ]
    exit_body = next(b for b in inbox.bodies() if "Exit:" in b)
    assert "Exit: stop-loss: sell 0.5 BTC @ 41000 USDT" in exit_body
    assert "http://127.0.0.1:8080/api/v1/trading/orders/sl-1" in exit_body


@pytest.mark.asyncio
async def test_update_routing_validates_and_applies(inbox: Inbox) -> None:
    """update_routing changes routing at run time, rejects URL/name changes and bad values."""
    async with running_router(transport=inbox.transport, channels=[_ch("ops", inbox)]) as run:
        out = run.router.update_routing("ops", min_severity="critical", kinds=["price_change"])
        assert out["min_severity"] == "critical"
        assert out["kinds"] == ["price_change"]
        with pytest.raises(ConfigError, match=r"alerts\.channels\.ops\.url"):
            run.router.update_routing("ops", url="json://evil.example/x")
        with pytest.raises(ConfigError, match=r"alerts\.channels\.ops\.min_severity"):
            run.router.update_routing("ops", min_severity="loud")
        with pytest.raises(ConfigError, match=r"alerts\.channels\.ops\.rate_limit_per_min"):
            run.router.update_routing("ops", rate_limit_per_min=0)
        with pytest.raises(UnknownChannelError, match="configured channels: ops"):
            run.router.update_routing("nope", min_severity="low")
        run.hub.publish(anomaly(kind="volume", severity=Severity.CRITICAL))
        run.hub.publish(anomaly(kind="price_change", severity=Severity.HIGH))
        run.hub.publish(anomaly(kind="price_change", symbol="ETH-USDT", severity=Severity.CRITICAL))
        await wait_until(lambda: len(inbox.messages) == 1)
        await run.hub.join()
    assert inbox.titles() == ["[P0] binance ETH-USDT: price_change anomaly (critical)"]
    assert run.router.channels["ops"].cfg.url.get_secret_value() == inbox.url("ops")


@pytest.mark.asyncio
async def test_telegram_channel_is_markdown_and_never_shows_its_token(inbox: Inbox) -> None:
    """A tgram:// channel renders Markdown; its token appears in no listing and no log line."""
    token = "123456789:AAF-secretTokenValue_x"
    with capture_logs() as logs:
        async with running_router(
            transport=inbox.transport,
            channels=[{"name": "tg", "url": f"tgram://{token}/-100200300"}],
            enabled=True,
        ) as run:
            listed = run.router.channels_redacted()
            rendered = run.router.renderer.render(
                "anomaly", run.router.builder.build(anomaly()).fields, "markdown"
            )
    assert listed[0]["format"] == "markdown"
    assert listed[0]["url"] == "tgram://***"
    assert run.router.channels["tg"].sender.plugin.overflow_mode == "split"  # long digests
    assert token not in repr(listed)
    assert "secretTokenValue" not in repr(logs)
    assert "**Value:** 7.5 vs threshold 3" in rendered.body
    assert "[Open in cryptomon](http://127.0.0.1:8080/api/v1/anomalies?" in rendered.body


@pytest.mark.asyncio
async def test_stats_count_records_by_channel_and_status(inbox: Inbox) -> None:
    """stats() reports notifications by channel and status plus queue depths."""
    async with running_router(transport=inbox.transport, channels=[_ch("ops", inbox)]) as run:
        run.hub.publish(anomaly())
        run.hub.publish(anomaly())
        await wait_until(lambda: len(run.by("ops", "sent")) == 1)
        stats = run.router.stats()
    assert stats["notifications"] == {"ops": {"sent": 1, "suppressed": 1}}
    assert stats["queue_depth"] == 0
    assert stats["outbox"] == {"ops": 0}


@pytest.mark.asyncio
async def test_disabled_alerts_route_nothing_but_send_test_works(inbox: Inbox) -> None:
    """With alerts.enabled false nothing is routed; send_test still reaches the channel."""
    async with running_router(
        transport=inbox.transport, channels=[_ch("ops", inbox)], enabled=False
    ) as run:
        run.hub.publish(anomaly(severity=Severity.CRITICAL))
        result = await run.router.send_test("ops")
    assert result == {"ops": {"ok": True, "attempts": 1, "error": ""}}
    assert inbox.titles() == ["cryptomon test notification"]
    assert [r.event_type for r in run.records] == ["test"]


@pytest.mark.asyncio
async def test_digest_due_in_quiet_hours_waits_for_their_end(inbox: Inbox) -> None:
    """A digest that falls due inside quiet hours is sent when they end, not during them."""
    channel = _ch(
        "ops", inbox, rate_limit_per_min=1, digest_interval_s=60, quiet_hours="22:14-23:00"
    )
    async with running_router(
        transport=inbox.transport, channels=[channel]
    ) as run:  # T0 = 22:13:20 UTC
        run.hub.publish(anomaly(kind="volume"))
        run.hub.publish(anomaly(kind="price"))  # no token left: into the digest
        await wait_until(lambda: len(inbox.messages) == 1)
        for _ in range(10):  # 22:14:20 .. 22:23:20: due but quiet
            run.clock.advance(60)
            await wait_until(lambda: run.clock.sleepers > 0)
        assert run.router.stats()["digest_pending"]["ops"] == 1
        run.clock.set(T0 + 47 * 60)  # 23:00:20
        await wait_until(lambda: len(inbox.messages) == 2)
    assert inbox.titles()[1] == "[digest] 1 alerts for ops (rate limit reached)"
    assert "binance BTC-USDT: price" in inbox.bodies()[1]


@pytest.mark.asyncio
async def test_malformed_event_is_skipped_not_fatal(inbox: Inbox) -> None:
    """An anomaly with an impossible severity is logged and skipped; the next one is sent."""
    bad = anomaly(kind="bad")
    object.__setattr__(bad, "severity", "loud")
    async with running_router(transport=inbox.transport, channels=[_ch("ops", inbox)]) as run:
        with capture_logs() as logs:
            run.hub.publish(bad)
            run.hub.publish(anomaly(kind="good"))
            await wait_until(lambda: len(inbox.messages) == 1)
    assert "good anomaly" in inbox.titles()[0]
    assert any(e["event"] == "notify.event_failed" for e in logs)


@pytest.mark.asyncio
async def test_critical_flood_has_its_own_budget_then_is_digested_on_time(
    inbox: Inbox,
) -> None:
    """143 criticals in a minute on a 6-per-minute channel: 6 go out alone, the rest (and a
    medium alert in the flood) are in one digest sent as soon as the interval ends."""
    channel = _ch("ops", inbox, rate_limit_per_min=6, digest_interval_s=60)
    async with running_router(
        transport=inbox.transport, channels=[channel], dedup_window_s=0
    ) as run:
        for i in range(143):
            run.hub.publish(
                anomaly(symbol=f"C{i}-USDT", severity=Severity.CRITICAL, ts=run.clock.time())
            )
            if i == 70:
                run.hub.publish(anomaly(symbol="M-USDT", ts=run.clock.time()))
        await run.hub.join()
        await wait_until(lambda: len(inbox.messages) == 6, message="6 criticals")
        assert run.router.channels["ops"].bucket.available(run.clock.monotonic()) == 6
        run.clock.advance(60)
        await wait_until(lambda: len(inbox.messages) == 7, message="the digest")
    titles = inbox.titles()
    assert sum(t.startswith("[P0]") for t in titles) == 6
    assert titles[-1] == "[digest] 138 alerts for ops (rate limit reached)"
    # the 20 latest criticals are listed, the medium one is counted (and recorded)
    assert "M-USDT" not in inbox.messages[-1]["message"]
    assert "... and 118 more (by kind: volume 118)" in inbox.messages[-1]["message"]
    assert len(run.by("ops", "digested")) == 138
    assert [r.symbol for r in run.by("ops", "digested")].count("M-USDT") == 1


@pytest.mark.asyncio
async def test_a_dead_channel_digest_records_its_alerts_as_failed(inbox: Inbox) -> None:
    """A digest the channel refuses: the digest and each of its alerts are recorded failed,
    and logged once, not once per alert."""
    inbox.fail_always = True
    channel = {
        "name": "dead",
        "url": inbox.url("down"),
        "rate_limit_per_min": 1,
        "digest_interval_s": 60,
    }
    async with running_router(
        transport=inbox.transport, channels=[channel], dedup_window_s=0, retries=0
    ) as run:
        with capture_logs() as logs:
            for i in range(4):
                run.hub.publish(anomaly(symbol=f"C{i}-USDT", ts=run.clock.time()))
            await run.hub.join()
            await wait_until(lambda: len(run.by("dead", "failed")) == 1, message="single failed")
            run.clock.advance(61)
            await wait_until(lambda: len(run.by("dead", "failed")) == 5, message="digest failed")
    errors = [e["event"] for e in logs if e["log_level"] == "error"]
    # the single alert and the digest, once each; not one line per alert in the digest
    assert sorted(errors) == ["notify.digest_failed", "notify.failed", "notify.failed"]
    failed = run.by("dead", "failed")
    assert [r.event_type for r in failed].count("digest") == 1
    assert all("digest not delivered" in r.error for r in failed[1:] if r.event_type != "digest")
    assert run.by("dead", "digested") == []


@pytest.mark.asyncio
async def test_feed_down_again_after_its_recovery_is_reported_within_dedup_window(
    inbox: Inbox,
) -> None:
    """A feed that recovers and goes down again for good is reported down again, even inside
    dedup_window_s: the last message must never be a recovery while the feed is down."""
    async with running_router(
        transport=inbox.transport,
        channels=[_ch("ops", inbox)],
        feed_down_after_s=60,
        dedup_window_s=300,
    ) as run:

        async def advance(seconds: int) -> None:
            for _ in range(seconds // 30):
                run.clock.advance(30)
                await wait_until(lambda: run.clock.sleepers > 0)

        run.hub.publish(_feed("stale", run.clock.time()))
        await run.hub.join()
        await advance(90)
        await wait_until(lambda: len(inbox.messages) == 1)
        run.hub.publish(_feed("live", run.clock.time()))
        await wait_until(lambda: len(inbox.messages) == 2)
        run.hub.publish(_feed("stale", run.clock.time()))  # down again, and stays down
        await run.hub.join()
        await advance(90)
        await wait_until(lambda: len(inbox.messages) == 3, message="the second feed down")
    assert inbox.titles() == [
        "[P1] feed down: binance BTC-USDT trades",
        "[P2] feed recovered: binance BTC-USDT trades",
        "[P1] feed down: binance BTC-USDT trades",
    ]
    assert run.by("ops", "suppressed") == []


@pytest.mark.asyncio
async def test_criticals_digested_in_quiet_hours_go_out_when_due(inbox: Inbox) -> None:
    """Quiet hours let P0 through: criticals beyond the budget at night are in a digest sent
    when its interval ends, not held until the morning."""
    channel = _ch(
        "ops", inbox, rate_limit_per_min=1, digest_interval_s=60, quiet_hours="22:00-07:00"
    )
    async with running_router(transport=inbox.transport, channels=[channel]) as run:
        for i in range(3):  # T0 = 22:13:20 UTC: quiet
            run.hub.publish(anomaly(symbol=f"C{i}-USDT", severity=Severity.CRITICAL))
        await wait_until(lambda: len(inbox.messages) == 1)
        await run.hub.join()
        assert run.router.stats()["digest_pending"]["ops"] == 2
        run.clock.advance(61)
        await wait_until(lambda: len(inbox.messages) == 2, message="the critical digest")
    assert inbox.titles()[1] == "[digest] 2 alerts for ops (rate limit reached)"
    assert inbox.messages[1]["type"] == "failure"  # sent as P0


def _notice(code: str, level: str, ts: float) -> Notice:
    return Notice(exchange="", symbol="", ts=ts, ts_recv=ts, code=code, message=code, level=level)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_condition_that_ends_and_starts_again_is_told_again(inbox: Inbox) -> None:
    """Database outage, lost trading lease and a halted risk state that end and start again
    inside dedup_window_s are told each time, with their ends (P2) in between."""
    async with running_router(
        transport=inbox.transport,
        channels=[_ch("ops", inbox, rate_limit_per_min=600)],
        dedup_window_s=300,
    ) as run:
        now = run.clock.time()
        risk = {"exchange": "", "symbol": "", "ts": now, "ts_recv": now, "reason": "r"}
        for _ in range(2):
            run.hub.publish(_notice("db_unreachable", "error", now))
            run.hub.publish(_notice("db_recovered", "info", now))
            run.hub.publish(_notice("trading_lease", "critical", now))
            run.hub.publish(_notice("trading_lease", "info", now))
            run.hub.publish(RiskEvent(**risk, kind="state_change", state="halted"))
            run.hub.publish(RiskEvent(**risk, kind="state_change", state="active"))
        await run.hub.join()
        await wait_until(lambda: len(run.by("ops", "sent")) == 12)
    assert run.by("ops", "suppressed") == []
    sent = [(r.priority, r.title) for r in run.by("ops", "sent")]
    assert sent.count(("P1", "[P1] cryptomon: db_unreachable")) == 2
    assert sent.count(("P2", "[P2] cryptomon: db_recovered")) == 2
    assert sent.count(("P0", "[P0] cryptomon: trading_lease")) == 2
    assert sent.count(("P1", "[P1] risk risk_state_change: r")) == 2


@pytest.mark.asyncio
async def test_resource_notices_are_deduplicated_per_resource(inbox: Inbox) -> None:
    """Resource thresholds share one notice code: RSS above its bound, then the free disk
    below its own within dedup_window_s, are both told (the second was suppressed as the
    same notice); RSS back within its bound and above it again are told too, while a
    repeated warning of the same resource stays deduplicated. Every one is P2: the end of a
    warning reaches the channels told of it (at info it was below the default min_severity)."""
    async with running_router(
        transport=inbox.transport,
        channels=[_ch("ops", inbox, rate_limit_per_min=600)],
        dedup_window_s=300,
    ) as run:
        now = run.clock.time()

        def resource(subject: str, level: str, message: str) -> Notice:
            return Notice(
                exchange="",
                symbol="",
                ts=now,
                ts_recv=now,
                code="resource_threshold",
                message=message,
                level=level,  # type: ignore[arg-type]
                subject=subject,
            )

        run.hub.publish(resource("rss_bytes", "warning", "rss_bytes 900.0 is above 800.0"))
        run.hub.publish(resource("disk_free_bytes", "warning", "disk_free_bytes 90 is below 100"))
        run.hub.publish(resource("rss_bytes", "warning", "rss_bytes 901.0 is above 800.0"))
        run.hub.publish(resource("rss_bytes", "info", "rss_bytes 700.0 is back within 800.0"))
        run.hub.publish(resource("rss_bytes", "warning", "rss_bytes 950.0 is above 800.0"))
        await run.hub.join()
        await wait_until(lambda: len(run.by("ops")) == 5)
    bodies = [r.body for r in run.by("ops", "sent")]
    assert len(bodies) == 4
    assert {r.priority for r in run.by("ops")} == {"P2"}
    for told in ("rss_bytes 900.0", "disk_free_bytes 90", "back within", "rss_bytes 950.0"):
        assert sum(told in b for b in bodies) == 1, (told, bodies)
    assert len(run.by("ops", "suppressed")) == 1


@pytest.mark.asyncio
async def test_a_hung_channel_collects_a_digest_not_a_backlog(inbox: Inbox) -> None:
    """A channel that stops answering: at most twice its burst plus the one in flight wait
    for it; later alerts go to its digest, sent once the channel has caught up. Before, every
    alert the rate limit let through queued behind the hung one (without bound: 6 a minute,
    for hours) and went out one by one, stale, when the channel came back."""
    inbox.hang = True
    async with running_router(
        transport=inbox.transport,
        channels=[_ch("ops", inbox, rate_limit_per_min=6, digest_interval_s=60)],
        dedup_window_s=0,
    ) as run:
        cap = run.router.channels["ops"].backlog_cap
        assert cap == 13
        for minute in range(4):  # the bucket refills 6 a minute; 24 alerts in all
            for i in range(6):
                sym = f"C{minute * 6 + i}-USDT"
                run.hub.publish(anomaly(symbol=sym, ts=run.clock.time()))
            await run.hub.join()
            run.clock.advance(60)
            run.router.tick()  # the digest is due, but the channel has not caught up
        await wait_until(lambda: inbox.waiting == 1, message="the first delivery hangs")
        assert run.router.stats()["outbox"]["ops"] == cap
        inbox.release()
        await wait_until(lambda: len(inbox.messages) == cap, message="the backlog sent")
        run.clock.advance(60)
        run.router.tick()
        await wait_until(lambda: len(inbox.messages) == cap + 1, message="then the digest")
    digest = inbox.bodies()[-1]
    assert digest.startswith(f"{24 - cap} alerts were collapsed into this digest")
    listed = [line.split(" binance ")[1].split(":")[0] for line in digest.splitlines()[1:]]
    assert listed == [f"C{i}-USDT" for i in range(cap, 24)]


@pytest.mark.asyncio
@pytest.mark.parametrize("event_time", [False, True], ids=["live", "replay"])
async def test_dedup_window_is_the_clocks_live_and_the_recordings_in_a_replay(
    inbox: Inbox, event_time: bool
) -> None:
    """Three anomalies of one market and kind routed at the same moment of the clock, recorded
    0, 2 and 10 minutes apart: live, the window runs on the clock (one is sent); a replay's
    router runs it on the anomalies' own times (the first and the third are sent, the second
    is a duplicate within the window)."""
    async with running_router(
        transport=inbox.transport,
        channels=[_ch("ops", inbox)],
        dedup_window_s=300,
        event_time=event_time,
    ) as run:
        for minutes in (0, 2, 10):
            run.hub.publish(anomaly(ts=T0 + 60 * minutes))
        await run.hub.join()
        sent = 2 if event_time else 1
        await wait_until(lambda: len(run.by("ops", "sent")) == sent)
        assert len(run.by("ops", "suppressed")) == 3 - sent
        if not event_time:  # live: the clock moves past the window, the next one is sent
            run.clock.advance(301)
            run.hub.publish(anomaly(ts=T0 + 60 * 11))
            await wait_until(lambda: len(run.by("ops", "sent")) == 2)
    assert "within 300s" in run.by("ops", "suppressed")[0].error
    assert [r.status for r in run.records].count("sent") == 2
    assert len(inbox.messages) == 2


@pytest.mark.asyncio
async def test_a_replays_rate_limit_stays_on_the_clock_and_its_digest_on_the_recording(
    inbox: Inbox,
) -> None:
    """A replay's router: anomalies an hour apart in the recording but routed within the same
    second still spend the channel's tokens (the real service's rate limit); the one beyond the
    burst waits in the digest, which is due by the recording's time (digest_interval_s after
    it) and goes out when a token is back."""
    channel = _ch("ops", inbox, rate_limit_per_min=1, digest_interval_s=600)
    async with running_router(
        transport=inbox.transport, channels=[channel], event_time=True
    ) as run:
        run.hub.publish(anomaly(symbol="A-USDT", ts=T0))
        run.hub.publish(anomaly(symbol="B-USDT", ts=T0 + 3600))  # no token: into the digest
        await wait_until(lambda: len(run.by("ops", "sent")) == 1)
        assert len(inbox.messages) == 1
        run.clock.advance(61)  # a token is back, but the recording is not 600 s further yet
        await wait_until(lambda: run.clock.sleepers > 0)
        run.router.tick()
        assert run.router.stats()["digest_pending"]["ops"] == 1
        run.hub.publish(anomaly(symbol="C-USDT", ts=T0 + 3600 + 601))  # joins the digest
        await run.hub.join()
        run.router.tick()
        await wait_until(lambda: len(inbox.messages) == 2)
    assert inbox.titles()[1] == "[digest] 2 alerts for ops (rate limit reached)"
    assert [r.status for r in run.records].count("digested") == 2


@pytest.mark.asyncio
async def test_a_replays_quiet_hours_are_those_of_the_recorded_time(inbox: Inbox) -> None:
    """Quiet 22:00-23:00 and the clock at 22:13: a replay's router suppresses the anomaly
    recorded at 22:20 and sends the one recorded at 23:20 (the live router would hold both)."""
    channel = _ch("ops", inbox, quiet_hours="22:00-23:00")
    async with running_router(
        transport=inbox.transport, channels=[channel], event_time=True
    ) as run:  # T0 = 22:13:20 UTC
        run.hub.publish(anomaly(symbol="A-USDT", ts=T0 + 400))
        run.hub.publish(anomaly(symbol="B-USDT", ts=T0 + 4000))
        await wait_until(lambda: len(inbox.messages) == 1)
    assert inbox.titles() == ["[P1] binance B-USDT: volume anomaly (high)"]
    [quiet] = run.by("ops", "suppressed")
    assert quiet.error == "quiet hours"
