"""The quality layer against the simulator's faults, through the real cryptofeed Binance code:
a bad print is quarantined (never a Trade), a genuine crash passes, one silent symbol goes
stale alone and recovers, a delisted symbol is skipped at start and mid-run while the feed
goes on, and a symbol listed nowhere is a config error naming close matches."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from cryptomon.clock import LiveClock, ManualClock
from cryptomon.config import ExchangeConfig, MarketDataConfig
from cryptomon.errors import ConfigError
from cryptomon.events import Event, FeedStatus, FlaggedTrade, Trade
from cryptomon.feeds.manager import FeedManager, build_sources
from cryptomon.feeds.specs import simulator_loader
from cryptomon.hub import Hub
from cryptomon.market.inputs import MarketInputs
from cryptomon.market.refresh import InstrumentRefresher
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.state import MarketState
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.instruments import simulator_specs
from cryptomon.sim.market import MarketModel
from tests.util import wait_until

SYMBOLS = ["BTC-USDT", "ETH-USDT"]
QUALITY = MarketDataConfig(stale_min_s=0.4, stale_factor=2.0, stale_max_s=5.0)


@dataclass
class Rig:
    sim: SimExchange
    manager: FeedManager
    registry: InstrumentRegistry
    state: MarketState
    state_hub: Hub
    events: list[Event] = field(default_factory=list)

    @property
    def feed(self) -> Any:
        return self.manager.source("simulator")

    def of(self, cls: type, symbol: str | None = None) -> list[Any]:
        return [e for e in self.events if type(e) is cls and (symbol is None or e.symbol == symbol)]

    def status(self, status: str, symbol: str) -> list[FeedStatus]:
        return [s for s in self.of(FeedStatus, symbol) if s.status == status]

    async def tick(self, seconds: float = 0.05) -> None:
        await self.sim.advance(seconds)


async def make_rig(*, delist_first: str | None = None, symbols: list[str] = SYMBOLS) -> Rig:
    sim = SimExchange(
        MarketModel(SYMBOLS, seed=5), clock=ManualClock(start=time.time()), interval=0.05
    )
    if delist_first is not None:
        sim.delist(delist_first)
    await sim.start(run=False)
    hub = Hub()
    registry = InstrumentRegistry(
        loaders={"simulator": simulator_loader("simulator", sim.rest_url)}
    )
    registry.add(simulator_specs(SYMBOLS))  # as if cached by an earlier run
    cfg = ExchangeConfig(name="simulator", url=sim.rest_url, symbols=symbols, depth=100)
    clock = LiveClock()
    market = MarketInputs(registry=registry, config=QUALITY)
    sources = build_sources([cfg], hub=hub, clock=clock, market=market)
    manager = FeedManager(sources, hub=hub, clock=clock, watchdog_interval_s=0.05, market=market)
    rig = Rig(sim, manager, registry, MarketState(hub=hub), state_hub=hub)
    hub.subscribe([Trade, FlaggedTrade, FeedStatus], rig.events.append, name="test")
    return rig


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    r = await make_rig()
    await r.manager.start()
    await wait_until(lambda: r.sim.clients, message="cryptofeed connected")
    try:
        yield r
    finally:
        await r.manager.stop()
        await r.sim.stop()


async def trades_flowing(rig: Rig, symbol: str, count: int = 15) -> None:
    async def enough() -> bool:
        await rig.tick()
        return len(rig.of(Trade, symbol)) >= count

    await wait_until(enough, interval=0.01, message=f"{count} {symbol} trades")


@pytest.mark.asyncio
async def test_a_bad_print_is_quarantined_never_a_trade(rig: Rig) -> None:
    """A print at 10x (and one at 1e308) reaches the hub only flagged ``bad_print``: no Trade
    at that price, counted in feed health."""
    await trades_flowing(rig, "BTC-USDT")
    price = rig.sim.market.market("BTC-USDT").mid * 10
    await rig.sim.bad_print("BTC-USDT", price)
    await rig.sim.bad_print("BTC-USDT", 1e308)
    await wait_until(lambda: len(rig.of(FlaggedTrade)) >= 2, message="flagged prints")
    flagged = rig.of(FlaggedTrade)
    assert {f.flag for f in flagged} == {"bad_print"}
    assert {f.trade.price for f in flagged} == {price, 1e308}
    assert all(t.price < price for t in rig.of(Trade, "BTC-USDT"))
    assert rig.manager.health()["simulator"]["quality"]["bad_prints"] == 2


@pytest.mark.asyncio
async def test_a_genuine_crash_with_the_book_passes_within_two_seconds(rig: Rig) -> None:
    """A 10% crash (the book moves too) is accepted: trades at the new level are Trades."""
    await trades_flowing(rig, "BTC-USDT", 30)
    before = rig.sim.market.market("BTC-USDT").mid
    rig.sim.market.market("BTC-USDT").jump(-10)
    crash_at = time.monotonic()

    async def crashed() -> bool:
        await rig.tick()
        rig.sim.apply_trade("BTC-USDT", "sell", 0.05)
        return any(t.price < before * 0.95 for t in rig.of(Trade, "BTC-USDT"))

    await wait_until(crashed, interval=0.01, message="crash trades published")
    assert time.monotonic() - crash_at < 2.0
    assert rig.manager.health()["simulator"]["quality"]["moves_accepted"] >= 1


@pytest.mark.asyncio
async def test_one_silent_symbol_goes_stale_alone_and_recovers_on_data(rig: Rig) -> None:
    """ETH silent: FeedStatus(stale) for ETH only, trading state stale for ETH, BTC live; ETH
    is live again once its data returns."""
    await trades_flowing(rig, "ETH-USDT", 10)
    rig.sim.silence("ETH-USDT", 3600)

    async def eth_stale() -> bool:
        await rig.tick()
        return bool(rig.status("stale", "ETH-USDT"))

    await wait_until(eth_stale, interval=0.02, message="ETH stale")
    assert rig.state.is_stale("simulator", "ETH-USDT")
    assert not rig.state.is_stale("simulator", "BTC-USDT")
    assert not rig.status("stale", "BTC-USDT")
    rig.sim.silence("ETH-USDT", 0)

    async def eth_live() -> bool:
        await rig.tick()
        return not rig.state.is_stale("simulator", "ETH-USDT")

    await wait_until(eth_live, interval=0.02, message="ETH live again")
    assert rig.status("live", "ETH-USDT")


@pytest.mark.asyncio
async def test_a_reconnect_does_not_bring_a_silent_symbol_back(rig: Rig) -> None:
    """ETH silent and stale, then the server drops the connection: cryptofeed reconnects and
    the connection is live again, BTC streams, but ETH stays stale (MarketState, no ETH
    ``live``) until its own data returns; then it is live."""
    await trades_flowing(rig, "ETH-USDT", 10)
    rig.sim.silence("ETH-USDT", 3600)

    async def eth_stale() -> bool:
        await rig.tick()
        return bool(rig.status("stale", "ETH-USDT"))

    await wait_until(eth_stale, interval=0.02, message="ETH stale")
    seen: list[tuple[str, bool]] = []  # (what, ETH stale in MarketState at that moment)

    def watch(ev: Event) -> None:
        if isinstance(ev, FeedStatus) and ev.status == "live" and not ev.symbol:
            seen.append(("connection live", rig.state.is_stale("simulator", "ETH-USDT")))
        elif isinstance(ev, Trade) and ev.symbol == "BTC-USDT" and seen:
            seen.append(("BTC trade", rig.state.is_stale("simulator", "ETH-USDT")))

    rig.state_hub.subscribe([FeedStatus, Trade], watch, name="test.watch")
    await rig.sim.disconnect()

    async def reconnected() -> bool:
        await rig.tick()
        return sum(1 for what, _ in seen if what == "BTC trade") >= 20

    await wait_until(reconnected, interval=0.02, message="reconnected, BTC streaming again")
    assert rig.manager.health()["simulator"]["reconnects"] >= 1
    assert seen[0][0] == "connection live"
    assert all(stale for _, stale in seen), seen
    assert not rig.status("live", "ETH-USDT")
    rig.sim.silence("ETH-USDT", 0)

    async def eth_live() -> bool:
        await rig.tick()
        return not rig.state.is_stale("simulator", "ETH-USDT")

    await wait_until(eth_live, interval=0.02, message="ETH live again on its data")
    assert rig.status("live", "ETH-USDT")


@pytest.mark.asyncio
async def test_a_feed_rebuilt_by_a_reload_brings_a_stale_symbol_back_on_its_data(
    rig: Rig,
) -> None:
    """ETH stale, then the feed is rebuilt (config reload: a new quality guard): ETH stays
    stale while silent and its data makes it live again (the new guard knows it was stale;
    else nobody would clear the marker the old guard published)."""
    await trades_flowing(rig, "ETH-USDT", 10)
    rig.sim.silence("ETH-USDT", 3600)

    async def eth_stale() -> bool:
        await rig.tick()
        return bool(rig.status("stale", "ETH-USDT"))

    await wait_until(eth_stale, interval=0.02, message="ETH stale")
    old = rig.feed
    await rig.manager.replace(old.config)
    assert rig.feed is not old
    before = len(rig.of(Trade, "BTC-USDT"))

    async def streaming() -> bool:
        await rig.tick()
        return len(rig.of(Trade, "BTC-USDT")) >= before + 10

    await wait_until(streaming, interval=0.02, message="the rebuilt feed streams BTC")
    assert rig.state.is_stale("simulator", "ETH-USDT")
    rig.sim.silence("ETH-USDT", 0)

    async def eth_live() -> bool:
        await rig.tick()
        return not rig.state.is_stale("simulator", "ETH-USDT")

    await wait_until(eth_live, interval=0.02, message="ETH live again on its data")


@pytest.mark.asyncio
async def test_a_symbol_delisted_mid_run_is_skipped_and_the_feed_goes_on(rig: Rig) -> None:
    """An instrument refresh that no longer finds ETH: delisted (stale for trading, alerted),
    BTC keeps streaming."""
    await trades_flowing(rig, "BTC-USDT", 5)
    rig.sim.delist("ETH-USDT")
    refresher = InstrumentRefresher(
        registry=rig.registry,
        exchanges=["simulator"],
        clock=LiveClock(),
        interval_s=3600,
        on_delisted=rig.manager.on_delisted,
    )
    await refresher.refresh_once()
    assert rig.status("delisted", "ETH-USDT")
    assert rig.manager.health()["simulator"]["delisted"] == ["ETH-USDT"]
    assert rig.state.is_stale("simulator", "ETH-USDT")
    count = len(rig.of(Trade, "BTC-USDT"))
    await trades_flowing(rig, "BTC-USDT", count + 5)


@pytest.mark.asyncio
async def test_a_symbol_delisted_before_start_is_skipped_and_the_others_stream() -> None:
    """ETH cached but no longer listed at start: the feed starts without it, says so."""
    rig = await make_rig(delist_first="ETH-USDT")
    try:
        await rig.manager.start()
        assert rig.feed.symbols == ["BTC-USDT"]
        assert rig.status("delisted", "ETH-USDT")
        await wait_until(lambda: rig.sim.clients, message="cryptofeed connected")
        await trades_flowing(rig, "BTC-USDT", 5)
    finally:
        await rig.manager.stop()
        await rig.sim.stop()


@pytest.mark.asyncio
async def test_a_symbol_listed_nowhere_is_a_config_error_naming_close_matches() -> None:
    """A configured symbol neither cached nor listed: ConfigError with close matches."""
    rig = await make_rig(symbols=["BTC-USDT", "ETH-USDC"])
    try:
        with pytest.raises(ConfigError, match="close matches: ETH-USDT"):
            await rig.manager.start()
    finally:
        await rig.manager.stop()
        await rig.sim.stop()


@pytest.mark.asyncio
async def test_a_gap_on_one_symbol_resnapshots_that_symbol_only(rig: Rig) -> None:
    """A sequence gap on BTC: one new snapshot (BTC's), ETH untouched, same connection."""
    await trades_flowing(rig, "ETH-USDT", 5)
    snapshots = rig.sim.snapshots
    rig.sim.gap("BTC-USDT")

    async def resynced() -> bool:
        await rig.tick()
        return bool(rig.status("resync", "BTC-USDT")) and rig.sim.snapshots > snapshots

    await wait_until(resynced, interval=0.01, message="BTC resync")
    for _ in range(10):
        await rig.tick()
    assert rig.sim.snapshots == snapshots + 1
    assert not rig.status("resync", "ETH-USDT")
    assert rig.sim.connections == 1
