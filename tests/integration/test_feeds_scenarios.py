"""Scenario labels are observable in the events the real cryptofeed pipeline publishes."""

from __future__ import annotations

import statistics

import pytest

from cryptomon.clock import LiveClock, ManualClock
from cryptomon.config import ExchangeConfig
from cryptomon.events import BookTop, Event, Trade
from cryptomon.feeds.manager import FeedManager, build_sources
from cryptomon.hub import Hub
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.scenarios import Injection, Label, Scenario
from tests.util import wait_until

SYM = "BTC-USDT"


def within(ev: Event, label: Label) -> bool:
    return label.start <= ev.ts < label.end


def settled(ev: Event, label: Label) -> bool:
    """Within the window past its first step (an effect starts at the first simulator step at
    or after ``start`` and is undone at the first step at or after ``end``)."""
    return label.start + 0.15 < ev.ts < label.end


@pytest.mark.asyncio
async def test_market_labels_show_in_the_published_events() -> None:
    """Imbalance, spread blow-out, whale and price jump appear in BookTop/Trade events
    exactly inside their label windows (exchange time), at full speed on a manual clock."""
    clock = ManualClock(start=1_700_000_000.0)
    sim = SimExchange(MarketModel([SYM], seed=21), clock=clock, interval=0.1)
    scenario = Scenario(
        "t",
        [
            Injection("book_imbalance", SYM, 3.0, 2.0, 20.0),
            Injection("spread", SYM, 7.0, 2.0, 80.0),
            Injection("whale", SYM, 11.0, 1.0, 200.0),
            Injection("price_change", SYM, 14.0, 1.0, 6.0),
        ],
    ).attach(sim)
    await sim.start(run=False)
    hub, live = Hub(), LiveClock()
    events: list[Event] = []
    hub.subscribe((BookTop, Trade), events.append)
    cfg = ExchangeConfig(name="simulator", url=sim.rest_url, symbols=[SYM], depth=100)
    manager = FeedManager(build_sources([cfg], hub=hub, clock=live), hub=hub, clock=live)
    await manager.start()
    try:
        await wait_until(lambda: sim.clients, message="connected")
        conn = manager.source("simulator").feed.connection_handlers[0].conn  # type: ignore[attr-defined]
        for _ in range(32):  # 16 s of market time, letting the client keep up
            await sim.advance(0.5)
            await wait_until(lambda: conn.received == sim.messages_sent, message="caught up")
    finally:
        await manager.stop()
        await sim.stop()
    # the first book comes from a REST snapshot without exchange time: ts = receipt time
    events = [e for e in events if e.ts <= clock.time()]
    imbalance, spread, whale, jump = scenario.labels
    tops = [e for e in events if isinstance(e, BookTop)]
    trades = [e for e in events if isinstance(e, Trade)]
    calm = [t for t in tops if t.ts < imbalance.start]
    assert calm
    assert statistics.median(abs(t.imbalance) for t in calm) < 0.3
    during = [t.imbalance for t in tops if settled(t, imbalance)]
    assert during
    assert statistics.median(during) > 0.8
    normal_bps = max(t.spread_bps for t in calm)
    wide = [t.spread_bps for t in tops if settled(t, spread)]
    assert wide
    assert min(wide) > 10 * normal_bps
    median_trade = statistics.median(t.amount for t in trades if t.ts < whale.start)
    big = [t for t in trades if t.amount > 50 * median_trade]
    assert big
    assert all(within(t, whale) for t in big)
    before = [t for t in tops if t.ts < jump.start][-1]
    after = next(t for t in tops if t.ts > jump.start + 0.3)
    assert (after.bid + after.ask) / (before.bid + before.ask) - 1 > 0.05
