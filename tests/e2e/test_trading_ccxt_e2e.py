"""End to end on the simulator with the ccxt broker: market data flows from the simulator
through the real cryptofeed code into the hub; an injected anomaly becomes a signal, an order
sent by the real ccxt code to the simulated venue, a fill, then a take-profit or stop-loss exit
(triggered by the book the feed reports) closes the position; the engine's PnL equals the hand
computation from the venue's own fills and fees."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
import pytest_asyncio

from cryptomon.clock import LiveClock, ManualClock
from cryptomon.config import ExchangeConfig, TradingConfig
from cryptomon.events import Anomaly, Fill, OrderUpdate, Severity, Signal
from cryptomon.feeds.manager import FeedManager, build_sources
from cryptomon.hub import Hub
from cryptomon.market.state import MarketState
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.trading import TradingEndpoints
from cryptomon.sim.venue import install
from cryptomon.trading.brokers.ccxt import CcxtBroker
from cryptomon.trading.engine import TradingEngine
from cryptomon.trading.journal import MemoryJournal
from cryptomon.trading.risk import RiskState
from cryptomon.trading.signals import SignalGenerator
from tests.util import wait_until

KEY, SECRET = "e2e-key", "e2e-secret"
SYMBOL, EXCHANGE = "BTC-USDT", "simulator"
START_USDT = Decimal(10_000)


@dataclass
class Rig:
    sim: SimExchange
    endpoints: TradingEndpoints
    engine: TradingEngine
    hub: Hub
    events: list[object]

    def of(self, cls: type) -> list[object]:
        return [e for e in self.events if isinstance(e, cls)]

    async def move(self, pct: float) -> None:
        """Jump the simulated mid and step the simulator until the engine is flat."""
        self.sim.market.market(SYMBOL).jump(pct)
        for _ in range(100):
            await self.sim.advance(0.1)
            try:
                await wait_until(
                    lambda: self.engine.portfolio.amount(EXCHANGE, SYMBOL) == 0, timeout=0.1
                )
            except AssertionError:
                continue
            return
        raise AssertionError("the position did not close")


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    sim = SimExchange(MarketModel([SYMBOL], seed=5), clock=ManualClock(time.time()), interval=0.05)
    endpoints = install(
        sim,
        api_key=KEY,
        api_secret=SECRET,
        balances={"USDT": START_USDT},
        maker_fee=Decimal("0.001"),
        taker_fee=Decimal("0.001"),
    )
    await sim.start(run=False)
    cfg = TradingConfig.model_validate(
        {
            "auto_trading_enabled": True,
            "mode": "live",
            "exchange": EXCHANGE,
            "symbols": [SYMBOL],
            "stop_loss_percentage": 3.0,
            "take_profit_percentage": 6.0,
            "max_position_size": 1000.0,
            "max_symbol_exposure": 1000.0,
            "poll_interval_s": 0.05,
            "mark_interval_s": 0.05,
            "signal_rules": [
                {
                    "name": "momentum",
                    "style": "momentum",
                    "min_price_change_pct": 1.0,
                    "strength": 0.9,
                }
            ],
            "indicators": {"enabled": False},
            "paper": {"starting_balance": float(START_USDT)},
            "live": {"exchange": "binance", "api_key": KEY, "secret": SECRET, "url": sim.rest_url},
        }
    )
    hub = Hub()
    await hub.start()
    events: list[object] = []
    for cls in (Signal, OrderUpdate, Fill):
        hub.subscribe(cls, events.append, name=f"e2e.{cls.__name__}")
    clock = LiveClock()
    market = MarketState(hub=hub)
    signals = SignalGenerator(config=cfg, hub=hub, clock=clock, market=market)
    engine = TradingEngine(
        config=cfg,
        hub=hub,
        clock=clock,
        broker=CcxtBroker.from_config(cfg, clock=clock),
        market=market,
        journal=MemoryJournal(hub=hub),
    )
    feed = ExchangeConfig(
        name=EXCHANGE,
        url=sim.rest_url,
        symbols=[SYMBOL],
        depth=100,
        book_snapshot_interval_s=0.01,
        stale_after_s=3600,
    )
    manager = FeedManager(
        build_sources([feed], hub=hub, clock=clock), hub=hub, clock=clock, watchdog_interval_s=0.05
    )
    r = Rig(sim, endpoints, engine, hub, events)
    await manager.start()
    try:
        await wait_until(lambda: sim.clients, message="cryptofeed connected")
        await sim.advance(0.5)
        await wait_until(lambda: market.mid(EXCHANGE, SYMBOL) is not None, message="first book")
        await signals.start()
        await engine.start()
        assert engine.risk_state == RiskState.ACTIVE
        yield r
    finally:
        await engine.stop()
        await signals.stop()
        await manager.stop()
        await hub.stop(1.0)
        await sim.stop()


def inject_anomaly(rig: Rig, pct: float) -> Anomaly:
    now = time.time()
    anomaly = Anomaly(
        exchange=EXCHANGE,
        symbol=SYMBOL,
        ts=now,
        ts_recv=now,
        kind="price_change",
        severity=Severity.HIGH,
        value=pct,
        threshold=1.0,
        confidence=90.0,
        price_change_pct=pct,
        reasons=(f"price {pct:+.1f}%",),
        ts_detected=now,
    )
    rig.hub.publish(anomaly)
    return anomaly


def venue_pnl(rig: Rig) -> tuple[Decimal, Decimal]:
    """(gross PnL, fees) computed by hand from the venue's own fills."""
    fills = rig.endpoints.engine.fills
    gross = sum((f.qty * f.price * (1 if f.side == "SELL" else -1) for f in fills), Decimal(0))
    return gross, sum((f.commission for f in fills), Decimal(0))


async def round_trip(rig: Rig, exit_move: float) -> None:
    anomaly = inject_anomaly(rig, 2.5)
    await wait_until(
        lambda: rig.engine.portfolio.amount(EXCHANGE, SYMBOL) > 0,
        message="entry filled",
        timeout=15,
    )
    signal = rig.of(Signal)[0]
    assert (signal.side, signal.anomaly_id) == ("buy", anomaly.id)  # type: ignore[attr-defined]
    entry = rig.endpoints.engine.orders[1]
    assert (entry.side, entry.type, entry.status) == ("BUY", "MARKET", "FILLED")
    await rig.move(exit_move)
    await wait_until(
        lambda: rig.engine.portfolio.amount(EXCHANGE, SYMBOL) == 0,
        message="position closed by the exit",
        timeout=15,
    )
    await wait_until(lambda: not rig.engine.book.open(), message="no open orders")


def assert_pnl_matches_the_venue(rig: Rig) -> None:
    gross, fees = venue_pnl(rig)
    pos = rig.engine.portfolio.positions[(EXCHANGE, SYMBOL)]
    assert pos.amount == 0
    assert pos.realized_pnl == gross
    assert pos.fees == fees
    usdt = rig.endpoints.engine.balance("USDT")
    assert usdt.free + usdt.locked - START_USDT == gross - fees
    assert rig.engine.portfolio.cash - START_USDT == gross - fees
    assert rig.endpoints.engine.duplicate_client_order_ids == 0
    assert rig.endpoints.engine.open_orders() == []


@pytest.mark.asyncio
async def test_take_profit_closes_the_position_with_pnl_equal_to_the_fills(rig: Rig) -> None:
    """anomaly -> signal -> market buy -> +7% -> take-profit sell; PnL matches the venue."""
    await round_trip(rig, exit_move=7.0)
    sides = [(o.side, o.client_order_id[2]) for o in rig.endpoints.engine.orders.values()]
    assert sides == [("BUY", "s"), ("SELL", "p")]  # entry from a signal, exit by take-profit
    gross, _ = venue_pnl(rig)
    assert gross > 0
    assert_pnl_matches_the_venue(rig)


@pytest.mark.asyncio
async def test_stop_loss_closes_the_position_with_pnl_equal_to_the_fills(rig: Rig) -> None:
    """anomaly -> signal -> market buy -> -4% -> stop-loss sell; PnL matches the venue."""
    await round_trip(rig, exit_move=-4.0)
    sides = [(o.side, o.client_order_id[2]) for o in rig.endpoints.engine.orders.values()]
    assert sides == [("BUY", "s"), ("SELL", "l")]  # exit by stop-loss
    gross, _ = venue_pnl(rig)
    assert gross < 0
    assert_pnl_matches_the_venue(rig)
