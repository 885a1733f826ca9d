"""Feed-down tracking: reported only after the delay, recoveries only for reported feeds."""

from __future__ import annotations

from cryptomon.events import FeedStatus
from cryptomon.notify.feedwatch import FeedWatch


def _st(status: str, channel: str = "", symbol: str = "", exchange: str = "binance") -> FeedStatus:
    return FeedStatus(
        exchange=exchange, symbol=symbol, ts=0.0, ts_recv=0.0, channel=channel, status=status
    )  # type: ignore[arg-type]


def test_down_is_due_after_delay_once() -> None:
    """A stale channel is due once after after_s, counted from its first down status."""
    w = FeedWatch(60)
    assert w.on_status(_st("stale", "trades"), 0.0, 1000.0) == []
    w.on_status(_st("stale", "trades"), 30.0, 1030.0)  # repeated: keeps the first "since"
    assert w.due(59.0) == []
    due = w.due(60.0)
    assert [(s.channel, since, down) for s, since, down in due] == [("trades", 1000.0, 60.0)]
    assert w.due(120.0) == []


def test_recovery_before_delay_is_silent_and_after_is_reported() -> None:
    """live before after_s clears silently; live after a report returns the down feed."""
    w = FeedWatch(60)
    w.on_status(_st("stale", "trades"), 0.0, 0.0)
    assert w.on_status(_st("live", "trades"), 10.0, 10.0) == []
    assert w.due(100.0) == []
    w.on_status(_st("disconnected"), 100.0, 100.0)
    assert len(w.due(160.0)) == 1
    back = w.on_status(_st("live"), 170.0, 170.0)
    assert [(s.status, since) for s, since in back] == [("disconnected", 100.0)]
    assert w.down == 0


def test_connection_live_clears_every_channel_of_that_exchange() -> None:
    """A reconnection (connection-wide live) ends stale channels too, not other exchanges."""
    w = FeedWatch(60)
    w.on_status(_st("stale", "trades"), 0.0, 0.0)
    w.on_status(_st("stale", "book"), 0.0, 0.0)
    w.on_status(_st("stale", "trades", exchange="okx"), 0.0, 0.0)
    w.due(60.0)
    back = w.on_status(_st("live"), 70.0, 70.0)
    assert sorted(s.channel for s, _ in back) == ["book", "trades"]
    assert w.down == 1


def test_connection_live_leaves_a_silent_symbol_down_until_its_own_live() -> None:
    """A reconnection does not report a stale symbol recovered: it stays down (and its
    recovery is reported) until the symbol's own live."""
    w = FeedWatch(60)
    w.on_status(_st("stale", "symbol", "ETH-USDT"), 0.0, 0.0)
    w.due(60.0)
    assert w.on_status(_st("live"), 70.0, 70.0) == []
    assert w.down == 1
    back = w.on_status(_st("live", "symbol", "ETH-USDT"), 80.0, 80.0)
    assert [(s.symbol, since) for s, since in back] == [("ETH-USDT", 0.0)]
    assert w.down == 0


def test_transitional_states_change_nothing() -> None:
    """connecting, gap and resync neither start nor end a down period."""
    w = FeedWatch(60)
    for status in ("connecting", "gap", "resync"):
        assert w.on_status(_st(status, "trades"), 0.0, 0.0) == []
    assert w.down == 0
