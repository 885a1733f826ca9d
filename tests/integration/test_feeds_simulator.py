"""The real cryptofeed Binance code against the loopback simulator: data, book, faults."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from cryptomon.clock import Clock, LiveClock, ManualClock
from cryptomon.config import ExchangeConfig
from cryptomon.events import MARKET_DATA, Event, FeedStatus
from cryptomon.feeds.manager import FeedManager, build_sources
from cryptomon.hub import Hub
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from tests.util import wait_until

SYMBOLS = ["BTC-USDT", "ETH-USDT"]


@dataclass
class Rig:
    sim: SimExchange
    manager: FeedManager
    events: list[Event] = field(default_factory=list)
    statuses: list[FeedStatus] = field(default_factory=list)

    @property
    def feed(self) -> Any:
        return self.manager.source("simulator")

    def count(self, name: str) -> int:
        return sum(type(e).__name__ == name for e in self.events)

    def client_book(
        self, symbol: str
    ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        book = self.feed.feed._l2_book.get(symbol)
        if book is None:
            return [], []
        bids = [(float(p), float(s)) for p, s in book.book.bids.to_list()]
        asks = [(float(p), float(s)) for p, s in book.book.asks.to_list()]
        return bids, asks

    def books_match(self, symbol: str, depth: int = 20) -> bool:
        bids, asks = self.client_book(symbol)
        return (bids[:depth], asks[:depth]) == self.sim.market.book(symbol, depth)

    def status(self, status: str, symbol: str | None = None) -> list[FeedStatus]:
        return [
            s
            for s in self.statuses
            if s.status == status and (symbol is None or s.symbol == symbol)
        ]


async def make_rig(sim_clock: Clock, stale_after_s: float | None = None) -> Rig:
    sim = SimExchange(MarketModel(SYMBOLS, seed=11), clock=sim_clock, interval=0.05)
    await sim.start(run=not isinstance(sim_clock, ManualClock))
    hub = Hub()
    cfg = ExchangeConfig(
        # depth 100 > the simulator's 50 levels: the snapshot holds the whole book, as a deep
        # Binance snapshot would, so levels that move into the top later are known
        name="simulator",
        url=sim.rest_url,
        symbols=SYMBOLS,
        depth=100,
        stale_after_s=stale_after_s,
    )
    clock = LiveClock()
    manager = FeedManager(
        build_sources([cfg], hub=hub, clock=clock), hub=hub, clock=clock, watchdog_interval_s=0.05
    )
    rig = Rig(sim, manager)
    hub.subscribe(list(MARKET_DATA), rig.events.append)
    hub.subscribe(FeedStatus, rig.statuses.append)
    manager.source("simulator").backoff_initial_s = 0.05  # type: ignore[attr-defined]
    await manager.start()
    return rig


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    r = await make_rig(ManualClock())
    await wait_until(lambda: r.sim.clients, message="cryptofeed connected")
    try:
        yield r
    finally:
        await r.manager.stop()
        await r.sim.stop()


async def settle(rig: Rig, seconds: float = 1.0) -> None:
    """Advance the simulator in two rounds, each time until the client's books equal the sim's
    (the second round reaches the client as diffs on top of its snapshot)."""
    for part in (seconds / 2, seconds / 2):
        await rig.sim.advance(part)
        for sym in SYMBOLS:
            await wait_until(lambda s=sym: rig.books_match(s), message=f"{sym} book to match")


@pytest.mark.asyncio
async def test_events_arrive_and_book_matches_after_snapshot_and_diffs(rig: Rig) -> None:
    """Trades, book tops, tickers and candles arrive; the cryptofeed book equals the sim's."""
    await settle(rig, 2.0)
    for name in ("Trade", "BookTop", "BookSnapshot", "Ticker", "Candle"):
        assert rig.count(name) > 0, name
    assert rig.sim.snapshots == len(SYMBOLS)
    bids, asks = rig.sim.market.book("BTC-USDT", 10)

    def last_top() -> Any:
        return [e for e in rig.events if type(e).__name__ == "BookTop" and e.symbol == "BTC-USDT"][
            -1
        ]

    # the book matches as soon as a diff is applied; its conflated BookTop follows in the
    # flush at the end of that loop turn
    await wait_until(
        lambda: (last_top().bid, last_top().ask) == (bids[0][0], asks[0][0]),
        message="the last BookTop to show the sim's top",
    )
    top = last_top()
    assert top.bid_depth == pytest.approx(sum(s for _, s in bids))  # type: ignore[attr-defined]
    health = rig.manager.health()["simulator"]
    assert health["state"] == "live"
    assert health["channels"]["orderbook"]["messages"] > 0
    assert rig.status("live", "")


@pytest.mark.asyncio
async def test_forced_disconnect_reconnects_and_resyncs(rig: Rig) -> None:
    """A server-side disconnect: FeedStatus(disconnected), reconnect, fresh snapshots, same book."""
    await settle(rig)
    await rig.sim.disconnect()
    await wait_until(lambda: rig.sim.connections == 2 and rig.sim.clients, message="reconnect")
    await settle(rig)
    assert rig.status("disconnected", "")
    assert rig.manager.health()["simulator"]["reconnects"] == 1
    assert rig.sim.snapshots == 2 * len(SYMBOLS)
    assert rig.manager.health()["simulator"]["gaps"] == 0


@pytest.mark.asyncio
async def test_sequence_gap_triggers_resync(rig: Rig) -> None:
    """Skipped depth update ids: FeedStatus(gap) + resync, a new snapshot, books match again."""
    await settle(rig)
    snapshots = rig.sim.snapshots
    rig.sim.gap("BTC-USDT")
    await rig.sim.advance(0.5)
    await wait_until(lambda: rig.status("gap", "BTC-USDT"), message="gap status")
    await settle(rig)
    assert rig.status("resync", "BTC-USDT")
    assert rig.sim.snapshots > snapshots
    assert rig.manager.health()["simulator"]["channels"]["orderbook"]["gaps"] >= 1
    assert rig.sim.connections == 1


@pytest.mark.asyncio
async def test_malformed_message_is_counted_and_skipped(rig: Rig) -> None:
    """A malformed message is counted; the connection stays up and data keeps flowing."""
    await settle(rig)
    await rig.sim.malformed("BTC-USDT")
    await rig.sim.malformed("BTC-USDT", "{definitely not json")
    await wait_until(lambda: rig.feed.health.parse_errors == 2, message="parse errors counted")
    trades = rig.count("Trade")
    await settle(rig, 2.0)
    assert rig.count("Trade") > trades
    assert rig.sim.connections == 1
    assert rig.manager.health()["simulator"]["parse_errors"] == 2


@pytest.mark.asyncio
async def test_stall_is_detected_within_stale_after_and_recovers() -> None:
    """A stalled stream goes stale within stale_after_s (+ watchdog tick), reconnects, recovers."""
    r = await make_rig(LiveClock(), stale_after_s=0.5)
    try:
        await wait_until(lambda: r.status("live", ""), message="live")
        r.sim.stall(2.0)
        loop_time = __import__("time").monotonic
        t0 = loop_time()
        await wait_until(lambda: r.status("stale"), timeout=5, message="stale status")
        assert loop_time() - t0 < 0.5 + 0.5
        assert {s.channel for s in r.status("stale")} <= {
            "trades",
            "orderbook",
            "ticker",
            "candles",
        }
        n_live = len(r.status("live", ""))
        await wait_until(lambda: len(r.status("live", "")) > n_live, timeout=10, message="recovery")
        assert r.sim.connections >= 2
        assert r.manager.health()["simulator"]["state"] == "live"
    finally:
        await r.manager.stop()
        await r.sim.stop()


@pytest.mark.asyncio
async def test_unreachable_exchange_at_startup_is_retried_until_it_appears() -> None:
    """The feed starts while the exchange is down (FeedStatus error) and goes live once it is up."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hub, clock = Hub(), LiveClock()
    statuses: list[FeedStatus] = []
    hub.subscribe(FeedStatus, statuses.append)
    cfg = ExchangeConfig(name="simulator", url=f"http://127.0.0.1:{port}", symbols=["BTC-USDT"])
    manager = FeedManager(build_sources([cfg], hub=hub, clock=clock), hub=hub, clock=clock)
    manager.source("simulator").backoff_initial_s = 0.05  # type: ignore[attr-defined]
    sim = SimExchange(MarketModel(["BTC-USDT"]), port=port, interval=0.05)
    try:
        await manager.start()
        assert [s.status for s in statuses] == ["error"]
        assert "symbol list unavailable" in statuses[0].detail
        await sim.start()
        await wait_until(lambda: any(s.status == "live" for s in statuses), message="live")
        assert manager.health()["simulator"]["messages"] > 0
    finally:
        await manager.stop()
        await sim.stop()


@pytest.mark.asyncio
async def test_crossed_book_resyncs_that_symbol(rig: Rig) -> None:
    """A diff that crosses the book is not published; that symbol alone is re-snapshotted and
    its book matches the simulator's again."""
    await settle(rig)
    snapshots = rig.sim.snapshots
    tops = rig.count("BookTop")
    await rig.sim.crossed("BTC-USDT")
    await rig.sim.advance(0.2)
    await wait_until(lambda: rig.status("resync", "BTC-USDT"), message="resync status")
    await settle(rig)
    assert rig.feed.health.crossed >= 1
    assert rig.sim.snapshots == snapshots + 1  # only BTC-USDT was re-fetched
    assert rig.count("BookTop") > tops
    assert rig.sim.connections == 1
    assert rig.manager.health()["simulator"]["gaps"] == 0  # a resync, not a sequence gap
    crossed = [
        e
        for e in rig.events
        if type(e).__name__ == "BookTop" and e.bid >= e.ask  # type: ignore[attr-defined]
    ]
    assert crossed == []
