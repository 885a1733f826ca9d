"""A collector's silence on the brain: its exchanges go stale, and when it reports again the
markers its own feeds had set are in force again (DESIGN.md section 8)."""

from __future__ import annotations

import time

from nats.aio.msg import Msg

from cryptomon.bus.codec import encode
from cryptomon.bus.source import BusFeedSource
from cryptomon.clock import ManualClock
from cryptomon.config import BusConfig
from cryptomon.events import Event, FeedState, FeedStatus
from cryptomon.hub import Hub
from cryptomon.market.state import MarketState

EX = "binance"


def status(symbol: str, state: FeedState) -> FeedStatus:
    now = time.time()
    return FeedStatus(
        exchange=EX, symbol=symbol, ts=now, ts_recv=now, channel="trades", status=state
    )


def message(events: list[Event], seq: int, symbol: str) -> Msg:
    data = encode(events, collector="c1", seq=seq, exchange=EX, symbol=symbol)
    return Msg(_client=None, subject=f"p.md.{EX}.x", reply="$JS.ACK.S.D.1.1.1.0.0", data=data)  # type: ignore[arg-type]


def test_a_collector_reporting_again_keeps_the_stale_markers_of_its_own_feeds() -> None:
    """ETH-USDT is stale on the collector (its quality layer said so, with the data); the
    collector then goes silent and comes back. The brain marked the exchange stale during the
    silence and live after it, which cleared ETH-USDT's marker too, so the brain would trade on
    a symbol the single process still holds stale. Now ETH-USDT stays stale, BTC-USDT is
    tradable again, and a later "live" of ETH-USDT from the collector clears it."""
    hub, clock = Hub(), ManualClock(time.time())
    state = MarketState(hub=hub)
    config = BusConfig.model_validate({"role": "brain", "health_interval_s": 1.0})
    source = BusFeedSource(config=config, hub=hub, clock=clock)
    health = source.bus_health
    source.process(message([status("ETH-USDT", "stale")], 1, "ETH-USDT"))
    source.process(message([status("SOL-USDT", "stale")], 2, "SOL-USDT"))
    source.process(message([status("SOL-USDT", "live")], 3, "SOL-USDT"))
    health.report({"collector_id": "c1", "ts": clock.time(), "feeds": {EX: {"state": "live"}}})
    assert state.is_stale(EX, "ETH-USDT")
    assert not state.is_stale(EX, "BTC-USDT")
    clock.advance(3.5)
    assert health.check_stale() == ["c1"]
    assert state.is_stale(EX, "BTC-USDT")
    health.report({"collector_id": "c1", "ts": clock.time(), "feeds": {EX: {"state": "live"}}})
    assert not state.is_stale(EX, "BTC-USDT")
    assert not state.is_stale(EX, "SOL-USDT")
    assert state.is_stale(EX, "ETH-USDT")  # was cleared by the brain's exchange-wide "live"
    source.process(message([status("ETH-USDT", "live")], 4, "ETH-USDT"))
    assert not state.is_stale(EX, "ETH-USDT")
    clock.advance(3.5)
    health.check_stale()
    health.report({"collector_id": "c1", "ts": clock.time(), "feeds": {EX: {"state": "live"}}})
    assert not state.is_stale(EX, "ETH-USDT")


def test_a_collectors_reconnect_keeps_its_stale_symbol_after_a_silence() -> None:
    """The collector's own connection goes down and up (exchange-wide "live") while ETH-USDT
    is still silent there: its marker is kept, and restored on the brain after a later
    collector silence, as the single process still holds it."""
    hub, clock = Hub(), ManualClock(time.time())
    state = MarketState(hub=hub)
    config = BusConfig.model_validate({"role": "brain", "health_interval_s": 1.0})
    source = BusFeedSource(config=config, hub=hub, clock=clock)
    health = source.bus_health
    source.process(message([status("ETH-USDT", "stale")], 1, "ETH-USDT"))
    source.process(message([status("", "disconnected")], 2, ""))
    source.process(message([status("", "live")], 3, ""))
    health.report({"collector_id": "c1", "ts": clock.time(), "feeds": {EX: {"state": "live"}}})
    assert state.is_stale(EX, "ETH-USDT")
    assert (EX, "ETH-USDT") in health.markers
    clock.advance(3.5)
    assert health.check_stale() == ["c1"]
    health.report({"collector_id": "c1", "ts": clock.time(), "feeds": {EX: {"state": "live"}}})
    assert state.is_stale(EX, "ETH-USDT")
    assert not state.is_stale(EX, "BTC-USDT")
