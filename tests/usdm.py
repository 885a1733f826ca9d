"""Test kit of the live perpetual rigs: the simulator's USD-M venue, the perpetual's spec and
book top, the trading config and engine of ccxt ``binanceusdm`` on it (shared by the futures
integration tests and the crash-safety rig); and the live spot engine of ccxt ``binance`` on
the spot simulator, its book top and manual buys, for the ccxt engine rigs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cryptomon.clock import Clock, LiveClock, ManualClock
from cryptomon.config import TradingConfig
from cryptomon.events import BookTop, OrderIntent
from cryptomon.hub import Hub
from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
from cryptomon.market.state import MarketState
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.trading import TradingEndpoints
from cryptomon.sim.usdm import UsdmVenue
from cryptomon.sim.venue import install
from cryptomon.trading.brokers.ccxt import CcxtBroker
from cryptomon.trading.engine import TradingEngine
from cryptomon.trading.journal import Journal, MemoryJournal
from cryptomon.trading.risk import RiskState

D = Decimal
EX, PERP, VENUE_ID = "binanceusdm", "BTC-USDT-PERP", "BTCUSDT"
SPEC = InstrumentSpec(
    exchange=EX,
    symbol=PERP,
    kind=InstrumentKind.PERPETUAL,
    base="BTC",
    quote="USDT",
    settle="USDT",
    tick_size=D("0.1"),
    lot_size=D("0.001"),
)


def specs(exchange: str, symbol: str) -> InstrumentSpec | None:
    return SPEC if (exchange, symbol) == (EX, PERP) else None


def publish_top(
    hub: Hub,
    bid: float,
    ask: float,
    *,
    bid_size: float,
    ask_size: float,
    depth: tuple[float, float],
    levels: int,
    exchange: str,
    symbol: str,
) -> None:
    """Publish a BookTop now (spread and bps computed)."""
    now = time.time()
    hub.publish(
        BookTop(
            exchange=exchange,
            symbol=symbol,
            ts=now,
            ts_recv=now,
            bid=bid,
            bid_size=bid_size,
            ask=ask,
            ask_size=ask_size,
            spread=ask - bid,
            spread_bps=(ask - bid) / bid * 1e4,
            bid_depth=depth[0],
            ask_depth=depth[1],
            imbalance=0.0,
            levels=levels,
        )
    )


def top(hub: Hub, mid: float) -> None:
    """The perpetual's top: 0.1 wide around ``mid``, 5 on each best level, 25 in 5 levels."""
    publish_top(
        hub,
        mid - 0.05,
        mid + 0.05,
        bid_size=5.0,
        ask_size=5.0,
        depth=(25.0, 25.0),
        levels=5,
        exchange=EX,
        symbol=PERP,
    )


def sim_top(hub: Hub, sim: SimExchange, symbol: str) -> None:
    """The spot simulator's best levels of ``symbol`` as the ``simulator`` exchange's top."""
    bids, asks = sim.market.book(symbol)
    (bid, bid_size), (ask, ask_size) = bids[0], asks[0]
    publish_top(
        hub,
        bid,
        ask,
        bid_size=bid_size,
        ask_size=ask_size,
        depth=(bid_size, ask_size),
        levels=1,
        exchange="simulator",
        symbol=symbol,
    )


async def usdm_venue(*, key: str, secret: str, seed: int) -> tuple[SimExchange, UsdmVenue]:
    """A started simulator with the USD-M venue (BTCUSDT at 20000) on its routes."""
    sim = SimExchange(MarketModel(["BTC-USDT"], seed=seed), clock=ManualClock(time.time()))
    venue = UsdmVenue(api_key=key, api_secret=secret)
    venue.set_price(VENUE_ID, D(20000))
    sim.add_routes(venue.routes())
    await sim.start(run=False)
    return sim, venue


def live_trading(
    url: str, *, key: str, secret: str, native: bool, live: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    """The ``trading`` section of a 5x live perpetual engine on ``url`` (``kw`` adds keys),
    without ccxt's client-side rate limiting (``live`` may turn it back on)."""
    return {
        "mode": "live",
        "exchange": EX,
        "symbols": [PERP],
        "leverage": 5,
        "max_leverage": 5,
        "max_position_size": 10_000,
        "max_symbol_exposure": 10_000,
        "max_total_exposure": 10_000,
        "poll_interval_s": 0.05,
        **kw,
        "live": {
            "exchange": EX,
            "api_key": key,
            "secret": secret,
            "url": url,
            "native_stop_loss": native,
            # ccxt's own request pacing waits the weight of each call (2 s for Binance's
            # openOrders/openAlgoOrders without a symbol) against a loopback simulator that
            # has no limit; the venue's 429/418 gate (VenueGate) stays in force
            "enable_rate_limit": False,
            **(live or {}),
        },
    }


def live_engine(
    cfg: TradingConfig, *, hub: Hub, journal: Journal, clock: Clock | None = None
) -> TradingEngine:
    """The engine of ``cfg`` with its ccxt broker, the perpetual's spec and no cash."""
    clock = clock or LiveClock()
    return TradingEngine(
        config=cfg,
        hub=hub,
        clock=clock,
        broker=CcxtBroker.from_config(cfg, clock=clock),
        market=MarketState(hub=hub),
        journal=journal,
        starting_cash=D(0),
        specs=specs,
    )


@dataclass
class Live:
    """A started live perpetual engine (in-memory journal) on the simulator's USD-M venue."""

    sim: SimExchange
    venue: UsdmVenue
    engine: TradingEngine
    hub: Hub

    async def stop(self) -> None:
        await self.engine.stop()
        await self.sim.stop()


async def start_live(*, key: str, secret: str, seed: int, native: bool, **trading: Any) -> Live:
    """The venue and an engine of :func:`live_trading` (``trading`` adds keys) started on it,
    with a 20000 mid published."""
    from cryptomon.config import load_settings
    from cryptomon.trading.journal import MemoryJournal

    sim, venue = await usdm_venue(key=key, secret=secret, seed=seed)
    data = {"trading": live_trading(sim.rest_url, key=key, secret=secret, native=native, **trading)}
    hub = Hub()
    engine = live_engine(load_settings(data=data).trading, hub=hub, journal=MemoryJournal(hub=hub))
    top(hub, 20000.0)
    await engine.start()
    return Live(sim, venue, engine, hub)


async def enter(
    engine: TradingEngine,
    side: str,
    *,
    stop_loss: str,
    take_profit: str | None = None,
    amount: str = "0.1",
    actor: str = "t",
) -> Any:
    """A manual market entry on the perpetual with its stop-loss and take-profit."""
    return await engine.place_manual_order(
        actor=actor,
        exchange=EX,
        symbol=PERP,
        side=side,
        amount=amount,
        stop_loss=stop_loss,
        take_profit=take_profit,
    )


def manual_buy(key: str, symbol: str, amount: str = "0.01") -> OrderIntent:
    """A manual market buy on the spot simulator, its client order id derived from ``key``."""
    from cryptomon.trading.orders import client_order_id

    now = time.time()
    return OrderIntent(
        exchange="simulator",
        symbol=symbol,
        ts=now,
        ts_recv=now,
        client_order_id=client_order_id(key, "entry", "manual"),
        side="buy",
        type="market",
        amount=Decimal(amount),
        origin="manual",
    )


@dataclass
class SpotLive:
    sim: SimExchange
    endpoints: TradingEndpoints
    engine: TradingEngine
    hub: Hub


@asynccontextmanager
async def spot_live(
    *,
    key: str,
    secret: str,
    seed: int,
    symbol: str = "BTC-USDT",
    live: dict[str, Any] | None = None,
    **trading: Any,
) -> AsyncIterator[SpotLive]:
    """The live ccxt ``binance`` engine (emulated protection, in-memory journal) on the spot
    simulator with 7,500 USDT, started over ``symbol``'s top and active; ``trading`` and
    ``live`` override the trading config and its ``live`` section. Stopped on the way out."""
    sim = SimExchange(MarketModel([symbol], seed=seed), clock=ManualClock(time.time()))
    endpoints = install(sim, api_key=key, api_secret=secret, balances={"USDT": D(7_500)})
    await sim.start(run=False)
    cfg = TradingConfig.model_validate(
        {
            "auto_trading_enabled": True,
            "mode": "live",
            "exchange": "simulator",
            "poll_interval_s": 0.05,
            "mark_interval_s": 0.05,
            **trading,
            "live": {
                "exchange": "binance",
                "api_key": key,
                "secret": secret,
                "url": sim.rest_url,
                # no ccxt request pacing (Binance's openOrders weight) against the loopback
                # simulator; the venue's 429/418 gate stays in force
                "enable_rate_limit": False,
                **(live or {}),
            },
        }
    )
    hub = Hub()
    await hub.start()
    clock = LiveClock()
    engine = TradingEngine(
        config=cfg,
        hub=hub,
        clock=clock,
        broker=CcxtBroker.from_config(cfg, clock=clock),
        market=MarketState(hub=hub),
        journal=MemoryJournal(hub=hub),
    )
    sim_top(hub, sim, symbol)
    try:
        await engine.start()
        assert engine.risk_state == RiskState.ACTIVE
        yield SpotLive(sim, endpoints, engine, hub)
    finally:
        await engine.stop()
        await hub.stop(1.0)
        await sim.stop()
