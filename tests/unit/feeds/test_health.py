"""FeedHealth: stall watchdog, recovery, parse errors, reconnect counting, snapshot shape."""

from __future__ import annotations

import time

from structlog.testing import capture_logs

from cryptomon.api.metrics_sources import feed_metrics
from cryptomon.clock import LiveClock
from cryptomon.events import FeedStatus
from cryptomon.feeds.health import DEFAULT_STALE_AFTER, FeedHealth
from cryptomon.hub import Hub


def make(stale: float | None = 5.0) -> tuple[FeedHealth, list[FeedStatus]]:
    hub = Hub()
    seen: list[FeedStatus] = []
    hub.subscribe(FeedStatus, seen.append)
    return FeedHealth(
        "x", ["trades", "liquidations"], hub=hub, clock=LiveClock(), stale_after_s=stale
    ), seen


def test_default_stale_after_is_sized_per_channel() -> None:
    """Without stale_after_s, busy channels get short watchdogs and liquidations none."""
    h = FeedHealth("x", ["orderbook", "trades", "liquidations"], hub=Hub(), clock=LiveClock())
    assert h.channels["orderbook"].stale_after == DEFAULT_STALE_AFTER["orderbook"]
    assert h.channels["orderbook"].stale_after < h.channels["trades"].stale_after  # type: ignore[operator]
    assert h.channels["liquidations"].stale_after is None


def test_silent_channel_goes_stale_once_and_forces_reconnect() -> None:
    """A channel silent past stale_after publishes stale once and calls on_stale."""
    h, seen = make(stale=5.0)
    forced: list[str] = []
    h.on_stale = forced.append
    h.on_connected()
    ch = h.channels["trades"]
    ch.last = time.monotonic() - 6.0
    assert h.check_stale() == ["trades"]
    assert h.check_stale() == []
    assert forced == ["trades"]
    stale = [s for s in seen if s.status == "stale"]
    assert len(stale) == 1
    assert stale[0].channel == "trades"
    assert "stale_after_s=5" in stale[0].detail
    h.became_live(ch)
    assert [s.status for s in seen][-1] == "live"
    assert ch.stalls == 1


def test_parse_errors_are_counted_and_logs_rate_limited() -> None:
    """Many malformed messages: every one counted, one log line per 10 s."""
    h, _ = make()
    with capture_logs() as logs:
        for _ in range(50):
            h.on_parse_error(ValueError("bad"), "{garbage")
    assert h.parse_errors == 50
    assert len([e for e in logs if e["event"] == "feed.malformed_message"]) == 1


def test_reconnects_and_snapshot_shape() -> None:
    """Only a connection coming back counts as a reconnect; the snapshot has every key."""
    h, seen = make()
    h.on_connected()
    h.on_connected()  # a second connection of the same feed (another endpoint)
    h.on_disconnected("closed")
    h.on_connected(reconnect=True)
    snap = h.snapshot()
    assert snap["reconnects"] == 1
    assert {"source", "state", "connected", "parse_errors", "messages", "gaps", "channels"} <= set(
        snap
    )
    assert set(snap["channels"]["trades"]) >= {
        "state",
        "messages",
        "messages_per_s",
        "last_message_age_s",
        "gaps",
        "stale_after_s",
    }
    assert any(s.status == "disconnected" and s.symbol == "" for s in seen)


def test_watchdog_runs_on_the_injected_clock() -> None:
    """With a ManualClock, a channel goes stale exactly when the clock passes stale_after."""
    from cryptomon.clock import ManualClock

    clock = ManualClock()
    h = FeedHealth("x", ["trades"], hub=Hub(), clock=clock, stale_after_s=5.0)
    h.on_connected()
    clock.advance(4.9)
    assert h.check_stale() == []
    clock.advance(0.2)
    assert h.check_stale() == ["trades"]


def test_messages_keep_a_channel_fresh_without_a_clock_call_per_message() -> None:
    """The hot path only counts; the watchdog dates the last message when it looks."""
    h, _ = make(stale=5.0)
    h.on_connected()
    ch = h.channels["trades"]
    ch.last = time.monotonic() - 6.0  # silent for longer than stale_after ...
    ch.messages += 1  # ... but a message arrived since the watchdog last looked
    assert h.check_stale() == []
    assert ch.last > time.monotonic() - 1.0
    ch.last = time.monotonic() - 6.0  # no message since: stale
    assert h.check_stale() == ["trades"]


def test_book_tops_are_reported_in_snapshot_and_metrics() -> None:
    """The conflated BookTop count is in the health snapshot and in /metrics, per exchange."""
    health = FeedHealth("x", ["orderbook"], hub=Hub(), clock=LiveClock())
    health.book_tops = 7
    assert health.snapshot()["book_tops"] == 7
    families = {family.name: family for family in feed_metrics({"x": health.snapshot()})}
    sample = families["cryptomon_feed_book_tops"].samples[0]
    assert (sample.labels, sample.value) == ({"exchange": "x"}, 7.0)


def test_quality_counters_and_symbol_states_reach_metrics() -> None:
    """The guard's counters, stale, delisted and unknown symbols are in /metrics."""
    from cryptomon.market.quality import QualityGuard

    health = FeedHealth("x", ["trades"], hub=Hub(), clock=LiveClock())
    health.quality = QualityGuard("x")
    health.quality.duplicates = 3
    health.quality.bad_prints = 2
    snap = health.snapshot()
    snap["delisted"] = ["ETH-USDT"]
    snap["unknown_instruments"] = []
    families = {family.name: family for family in feed_metrics({"x": snap})}
    quality = {s.labels["kind"]: s.value for s in families["cryptomon_feed_quality"].samples}
    assert quality["duplicates"] == 3.0
    assert quality["bad_prints"] == 2.0
    states = {s.labels["state"]: s.value for s in families["cryptomon_feed_symbols"].samples}
    assert states == {"stale": 0.0, "delisted": 1.0, "unknown": 0.0}
