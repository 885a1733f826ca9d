"""Notifications end to end: hub -> router -> apprise -> a real HTTP sink and a real SMTP
server; a hung channel never delays the hub or the other channels; a refused connection and
its credentials-free error."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from cryptomon.events import Notice, Severity
from tests.integration.notify_sinks import DeadSink, HttpSink, SmtpSink, closed_port
from tests.unit.notify.factories import T0, anomaly, running_router
from tests.util import wait_until


@pytest_asyncio.fixture
async def web_sink() -> AsyncIterator[HttpSink]:
    sink = await HttpSink().start()
    yield sink
    await sink.close()


@pytest_asyncio.fixture
async def hung_sink() -> AsyncIterator[DeadSink]:
    sink = await DeadSink().start()
    yield sink
    await sink.close()


@pytest.fixture
def mail_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.close()


@pytest.mark.asyncio
async def test_anomaly_reaches_webhook_as_markdown_and_email_as_text(
    web_sink: HttpSink, mail_sink: SmtpSink
) -> None:
    """The same anomaly arrives as Markdown on a chat-format webhook and as plain-text email,
    both with market, kind, value vs threshold, reasons, severity, time and the API link."""
    channels = [
        {"name": "chat", "url": web_sink.url("chat"), "format": "markdown"},
        {"name": "mail", "url": mail_sink.url()},  # auto: mailto -> text
    ]
    async with running_router(channels, api_base_url="https://mon.example.com/") as run:
        run.hub.publish(
            anomaly(
                symbol="ETH-USDT",
                kind="price",
                value=6.25,
                threshold=5.0,
                reasons=("Price change: 6.25%", "Z-score: 4.10"),
            )
        )
        await wait_until(lambda: len(web_sink.messages) == 1 and len(mail_sink.messages) == 1)
        await wait_until(lambda: len(run.by("mail", "sent")) == 1)
    link = "https://mon.example.com/api/v1/anomalies?exchange=binance&symbol=ETH-USDT&kind=price"
    chat = web_sink.messages[0]
    assert chat["title"] == "[P1] binance ETH-USDT: price anomaly (high)"
    assert "**Value:** 6.25 vs threshold 5" in chat["message"]
    assert "**Reasons:** Price change: 6.25%; Z-score: 4.10" in chat["message"]
    assert "**Time:** 2023-11-14T22:13:20Z" in chat["message"]
    assert f"[Open in cryptomon]({link})" in chat["message"]
    assert chat["type"] == "warning"
    subject, text = mail_sink.texts()[0]
    assert subject == "[P1] binance ETH-USDT: price anomaly (high)"
    assert "Value: 6.25 vs threshold 5" in text
    assert "Severity: high (P1)" in text
    assert f"Link: {link}" in text
    assert "**" not in text
    assert mail_sink.messages[0]["To"] == "ops@example.com"


@pytest.mark.asyncio
async def test_hung_channel_never_delays_hub_or_other_channels(
    web_sink: HttpSink, mail_sink: SmtpSink, hung_sink: DeadSink
) -> None:
    """With one channel hanging on its first message, the hub drains at once and the other
    channels get every alert; the hung one fails by its timeout and retries, then gives up."""
    fast = {"rate_limit_per_min": 600}
    channels = [
        {"name": "hung", "url": hung_sink.url(), **fast},
        {"name": "web", "url": web_sink.url("web"), **fast},
        {"name": "mail", "url": mail_sink.url(), **fast},
    ]
    async with running_router(channels, attempt_timeout_s=60, retries=1, stop_timeout_s=0.5) as run:
        for i in range(20):
            run.hub.publish(anomaly(symbol=f"C{i}-USDT"))
        await run.hub.join()  # the hub's queue to the notifier is empty right away
        assert run.router.stats()["queue_depth"] == 0
        await wait_until(lambda: len(web_sink.messages) == 20 and len(mail_sink.messages) == 20)
        await wait_until(lambda: len(run.by("mail", "sent")) == 20)
        assert hung_sink.connections >= 1
        assert run.router.stats()["outbox"]["hung"] == 20  # still on its first message
        assert run.by("hung") == []

        def first_failed() -> bool:  # attempt timeouts and backoff run on the clock
            if run.clock.sleepers:
                run.clock.advance(5)
            return bool(run.by("hung", "failed"))

        await wait_until(first_failed)
        failed = run.by("hung", "failed")[0]
        assert failed.attempts == 2
        assert "no answer within 60s" in failed.error
        assert run.clock.time() - T0 >= 120  # two attempts, each abandoned at 60 s


@pytest.mark.asyncio
async def test_daemon_notice_reaches_email(mail_sink: SmtpSink) -> None:
    """System notices (daemon start) are routed like alerts, as plain-text email."""
    async with running_router([{"name": "mail", "url": mail_sink.url()}]) as run:
        run.hub.publish(
            Notice(
                exchange="",
                symbol="",
                ts=T0,
                ts_recv=T0,
                code="daemon_start",
                message="cryptomon 0.1.0 running",
            )
        )
        run.hub.publish(anomaly(severity=Severity.LOW))  # below the channel's min_severity
        await wait_until(lambda: len(mail_sink.messages) == 1)
        await run.hub.join()
    subject, text = mail_sink.texts()[0]
    assert subject == "[P2] cryptomon: cryptomon 0.1.0 running"
    assert "Notice: daemon_start" in text


@pytest.mark.asyncio
async def test_sink_down_is_failed_after_all_attempts_and_recorded() -> None:
    """A refused connection: 1 + retries attempts, then a failed record with the reason."""
    url = f"json://127.0.0.1:{closed_port()}/down"
    async with running_router([{"name": "down", "url": url}], retries=2) as run:
        run.hub.publish(anomaly())

        def failed() -> bool:
            if run.clock.sleepers:
                run.clock.advance(1.0)
            return bool(run.by("down", "failed"))

        await wait_until(failed)
    rec = run.by("down", "failed")[0]
    assert rec.attempts == 3
    assert rec.error.startswith("failed after 3 attempt(s): ")
    assert "Connection error" in rec.error
    assert rec.event_type == "anomaly"
    assert rec.title == "[P1] binance BTC-USDT: volume anomaly (high)"


@pytest.mark.asyncio
async def test_errors_and_logs_never_contain_url_credentials() -> None:
    """A failing channel's recorded error and log lines carry no password from its URL."""
    url = f"json://bob:supersecretpw@127.0.0.1:{closed_port()}/x"
    with capture_logs() as logs:
        async with running_router([{"name": "c", "url": url}]) as run:
            run.hub.publish(anomaly())
            await wait_until(lambda: bool(run.by("c", "failed")))
            listed = run.router.channels_redacted()
    assert "supersecretpw" not in repr(logs)
    assert "supersecretpw" not in run.by("c", "failed")[0].error
    assert "supersecretpw" not in repr(listed)


@pytest.mark.asyncio
async def test_markdown_characters_in_reasons_reach_telegram_as_written(web_sink: HttpSink) -> None:
    """Reasons and messages with Markdown characters (``RSI*2``, ``[15m]``, ``__init__``) reach
    Telegram (apprise's real plugin, its API served by the local sink) escaped, so they read as
    written instead of turning into italics, bold or links; the message link stays a link."""
    url = "tgram://123456789:AAF-notARealToken/-100200300"
    async with running_router([{"name": "tg", "url": url}], dedup_window_s=0) as run:
        plugin = run.router.channels["tg"].sender.plugin
        plugin.notify_url = f"http://127.0.0.1:{web_sink.port}/bot"  # Telegram's API, here
        run.hub.publish(anomaly(kind="price_change", reasons=("RSI*2 > 70 on *4h* [15m]",)))
        run.hub.publish(
            Notice(
                exchange="",
                symbol="",
                ts=T0,
                ts_recv=T0,
                code="db_unreachable",
                level="error",
                message="__init__ of store_writer failed",
            )
        )
        await wait_until(lambda: len(run.by("tg", "sent")) == 2)
    texts = sorted(m["text"] for m in web_sink.messages)
    assert [m["parse_mode"] for m in web_sink.messages] == ["MARKDOWN", "MARKDOWN"]
    anomaly_text = next(t for t in texts if "price" in t)
    notice_text = next(t for t in texts if "store" in t)
    # Telegram's (legacy) Markdown shows \* \_ \[ as the character itself
    assert r"RSI\*2 > 70 on \*4h\* \[15m\]" in anomaly_text
    assert r"*Kind:* price\_change" in anomaly_text
    assert "[Open in cryptomon](http://127.0.0.1:8080/api/v1/anomalies?" in anomaly_text
    assert r"\_\_init\_\_ of store\_writer failed" in notice_text


@pytest.mark.asyncio
async def test_sms_gets_one_text_per_alert_and_per_digest(web_sink: HttpSink) -> None:
    """An SMS channel (apprise's real Twilio plugin, its API served by the local sink) gets one
    text per alert and one per digest, truncated at 160 characters with the title first,
    never split into several texts; a Telegram channel still splits a long digest."""
    sms = "twilio://AC" + "a" * 32 + ":" + "b" * 32 + "@15551234567/15557654321"
    tg = "tgram://123456789:AAF-notARealToken/-100200300"
    channels = [
        {"name": "sms", "url": sms, "rate_limit_per_min": 1, "digest_interval_s": 60},
        {"name": "tg", "url": tg, "min_severity": "critical"},  # built, sent nothing
    ]
    async with running_router(channels, dedup_window_s=0) as run:
        plugin = run.router.channels["sms"].sender.plugin
        plugin.notify_sms_url = f"http://127.0.0.1:{web_sink.port}/twilio/{{sid}}/Messages.json"
        for i in range(40):
            run.hub.publish(anomaly(symbol=f"COIN{i}-USDT", ts=run.clock.time()))
        await wait_until(lambda: len(run.by("sms", "sent")) == 1)
        run.clock.advance(61)
        await wait_until(lambda: len(run.by("sms", "digested")) == 39)
        assert run.router.channels["tg"].sender.plugin.overflow_mode == "split"
    texts = [m["Body"] for m in web_sink.messages]
    assert len(texts) == 2
    assert texts[0].startswith("[P1] binance COIN0-USDT: volume anomaly (high)")
    assert texts[1].startswith("[digest] 39 alerts for sms (rate limit reached)")
    assert all(len(t) <= 160 for t in texts)


@pytest.mark.asyncio
async def test_wecom_bot_gets_plain_text_it_can_show(web_sink: HttpSink) -> None:
    """A WeCom bot (apprise's real plugin, its API served by the local sink) sends text
    messages: format auto gives it plain text, not Markdown it would show as ``**Kind:**``."""
    async with running_router([{"name": "wecom", "url": "wecombot://botkey1234567"}]) as run:
        run.router.channels["wecom"].sender.plugin.api_url = web_sink.url("wecom").replace(
            "json://", "http://"
        )
        run.hub.publish(anomaly(kind="price_change", reasons=("RSI*2 [15m]",)))
        await wait_until(lambda: len(run.by("wecom", "sent")) == 1)
        assert run.router.channels_redacted()[0]["format"] == "text"
    content = web_sink.messages[0]["text"]["content"]
    assert "Kind: price_change" in content
    assert "Reasons: RSI*2 [15m]" in content
    assert "**" not in content
    assert "\\" not in content


@pytest.mark.asyncio
async def test_a_burst_digest_is_one_telegram_message_listing_the_most_severe(
    web_sink: HttpSink,
) -> None:
    """300 alerts beyond a Telegram channel's rate limit (apprise's real plugin, its API served
    by the local sink): the digest is one message within Telegram's 4096 characters, listing
    ``digest_max_items`` alerts (the most severe first, then the latest) and the count of the
    others by kind; every alert is still recorded as digested. The digest listed every alert
    and was split into 6 messages sent at once, outside the rate limit."""
    tg = "tgram://123456789:AAF-notARealToken/-100200300"
    channel = {"name": "tg", "url": tg, "rate_limit_per_min": 1, "digest_max_items": 10}
    async with running_router([channel], dedup_window_s=0) as run:
        plugin = run.router.channels["tg"].sender.plugin
        plugin.notify_url = f"http://127.0.0.1:{web_sink.port}/bot"  # Telegram's API, here
        for i in range(300):  # 1 sent alone, 299 digested: 3 high ones among them
            sev = Severity.HIGH if i in (100, 200, 250) else Severity.MEDIUM
            kind = "price_change" if i % 3 == 0 else "volume"
            run.hub.publish(
                anomaly(symbol=f"C{i}-USDT", kind=kind, severity=sev, ts=run.clock.time() + i)
            )
        await wait_until(lambda: len(run.by("tg", "sent")) == 1)
        assert len(web_sink.messages) == 1
        run.clock.advance(61)
        await wait_until(lambda: len(run.by("tg", "digested")) == 299)
        await wait_until(lambda: len(run.by("tg", "sent")) == 2)  # the digest's own record
    assert len(web_sink.messages) == 2, [m["text"][:60] for m in web_sink.messages]
    text = web_sink.messages[1]["text"]
    assert len(text) <= 4096
    assert "[digest] 299 alerts for tg (rate limit reached)" in text.splitlines()[0], text[:200]
    listed = [ln for ln in text.splitlines() if ln.startswith("- ")]
    assert len(listed) == 10, text
    for sym in ("C100-USDT", "C200-USDT", "C250-USDT"):  # the most severe are listed
        assert any(sym.replace("-", r"\-") in ln or sym in ln for ln in listed), (sym, text)
    assert "... and 289 more (by kind: " in text, text
    tail = text[text.index("... and 289 more") :]
    # the 3 high ones (volume) and the 7 latest (5 volume, 2 price_change) are listed
    assert tail.startswith(r"... and 289 more (by kind: volume 192, price\_change 97)"), tail
