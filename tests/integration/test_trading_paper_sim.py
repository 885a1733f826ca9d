"""End to end on the paper broker: the loopback simulator feeds the real cryptofeed code into
the hub; an injected anomaly becomes a signal, an order, fills, a take-profit or stop-loss
exit and a closed position whose PnL equals the hand computation from the fills and fees.
Everything is persisted by the real store on SQLite and PostgreSQL, and a restarted engine
rebuilds the same state from the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from cryptomon.clock import LiveClock, ManualClock
from cryptomon.config import DatabaseConfig, ExchangeConfig, StorageConfig
from cryptomon.events import Anomaly, Fill, OrderIntent, PositionUpdate, Severity, Signal
from cryptomon.feeds.manager import FeedManager, build_sources
from cryptomon.hub import Hub
from cryptomon.market.state import MarketState
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.store.db import Database
from cryptomon.store.journal import StoreJournal
from cryptomon.store.queries import Queries
from cryptomon.store.writer import StoreWriter
from cryptomon.trading.brokers.paper import PaperBroker
from cryptomon.trading.engine import TradingEngine
from cryptomon.trading.risk import RiskState
from cryptomon.trading.signals import SignalGenerator
from tests.unit.trading.helpers import trading_config
from tests.util import wait_until

EX = "simulator"
SYM = "BTC-USDT"


@dataclass
class Rig:
    sim: SimExchange
    manager: FeedManager
    hub: Hub
    market: MarketState
    db: Database
    writer: StoreWriter
    events: list[Any] = field(default_factory=list)

    def of(self, cls: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]


@pytest_asyncio.fixture
async def rig(db_url: str) -> AsyncIterator[Rig]:
    sim = SimExchange(MarketModel([SYM], seed=5), clock=ManualClock(), interval=0.05)
    await sim.start(run=False)
    hub = Hub()
    clock = LiveClock()
    market = MarketState(hub=hub)
    cfg = ExchangeConfig(
        name=EX,
        url=sim.rest_url,
        symbols=[SYM],
        depth=100,
        book_snapshot_interval_s=0.01,
        stale_after_s=3600,
    )
    manager = FeedManager(
        build_sources([cfg], hub=hub, clock=clock), hub=hub, clock=clock, watchdog_interval_s=0.05
    )
    db = Database(DatabaseConfig(url=db_url))
    await db.start()
    writer = StoreWriter(hub=hub, db=db, config=StorageConfig(batch_max_age_s=0.05), clock=clock)
    await writer.start()
    await hub.start()
    r = Rig(sim, manager, hub, market, db, writer)
    hub.subscribe([Signal, OrderIntent, Fill, PositionUpdate], r.events.append, name="test")
    await manager.start()
    try:
        await wait_until(lambda: sim.clients, message="cryptofeed connected")
        await sim.advance(0.5)
        await wait_until(lambda: market.mid(EX, SYM) is not None, message="first book")
        yield r
    finally:
        await manager.stop()
        await sim.stop()
        await writer.stop()
        await hub.stop()
        await db.stop()


def _engine(r: Rig, **cfg: Any) -> tuple[TradingEngine, SignalGenerator]:
    config = trading_config(exchange=EX, symbols=[SYM], **cfg)
    broker = PaperBroker(config=config.paper, market=r.market, hub=r.hub, clock=LiveClock())
    engine = TradingEngine(
        config=config,
        hub=r.hub,
        clock=LiveClock(),
        broker=broker,
        market=r.market,
        journal=StoreJournal(db=r.db),
    )
    return engine, SignalGenerator(config=config, hub=r.hub, clock=LiveClock(), market=r.market)


def _anomaly(change: float) -> Anomaly:
    clock = LiveClock()
    now = clock.time()
    return Anomaly(
        exchange=EX,
        symbol=SYM,
        ts=now,
        ts_recv=now,
        kind="volume",
        severity=Severity.HIGH,
        value=5.0,
        threshold=3.0,
        confidence=92.0,
        z_score=5.0,
        price_change_pct=change,
        ts_detected=now,
    )


async def _move_until(r: Rig, engine: TradingEngine, pct: float) -> None:
    """Jump the simulated mid and step the simulator until the engine's position is flat."""
    r.sim.market.market(SYM).jump(pct)
    for _ in range(100):
        await r.sim.advance(0.1)
        try:
            await wait_until(lambda: engine.portfolio.amount(EX, SYM) == 0, timeout=0.1)
        except AssertionError:
            continue
        return
    raise AssertionError("the position did not close")


def _hand_pnl(fills: list[Fill]) -> Decimal:
    flows = sum(
        ((f.amount * f.price) if f.side == "sell" else -(f.amount * f.price) for f in fills),
        Decimal(0),
    )
    return flows - sum((f.fee for f in fills), Decimal(0))


@pytest.mark.asyncio
@pytest.mark.parametrize(("move", "exit_origin"), [(8.0, "take_profit"), (-4.0, "stop_loss")])
async def test_anomaly_to_closed_position_with_hand_computed_pnl(
    rig: Rig, move: float, exit_origin: str
) -> None:
    """anomaly -> signal -> entry -> fills -> protective exit -> flat; PnL = fills by hand;
    everything in the database; a restarted engine rebuilds the same state."""
    engine, signals = _engine(rig)
    await engine.start()
    assert engine.reconciled
    assert engine.risk_state == RiskState.ACTIVE
    anomaly = _anomaly(2.5)
    rig.hub.publish(anomaly)
    await wait_until(lambda: engine.portfolio.amount(EX, SYM) > 0, message="entry filled")
    [sig] = rig.of(Signal)
    assert sig.anomaly_id == anomaly.id
    assert sig.side == "buy"
    entry = rig.of(OrderIntent)[0]
    assert entry.signal_id == sig.id
    assert entry.stop_loss is not None
    assert entry.take_profit is not None

    await _move_until(rig, engine, move)
    exits = [i for i in rig.of(OrderIntent) if i.origin != "signal"]
    assert [i.origin for i in exits] == [exit_origin]
    fills = rig.of(Fill)
    assert {f.client_order_id for f in fills} == {entry.client_order_id, exits[0].client_order_id}
    assert sum(f.amount for f in fills if f.side == "buy") == sum(
        f.amount for f in fills if f.side == "sell"
    )
    pnl = _hand_pnl(fills)
    stats = engine.stats()
    assert stats["trades"] == 1
    assert Decimal(stats["net_pnl"]) == pnl
    assert Decimal(stats["equity"]) == Decimal(10000) + pnl
    assert (pnl > 0) == (exit_origin == "take_profit")
    assert rig.of(PositionUpdate)[-1].amount == 0

    # persisted by the store writer
    await rig.hub.join()
    await rig.writer.flush()
    q = Queries(db=rig.db)
    orders = await q.orders()
    assert {o["client_order_id"]: o["state"] for o in orders} == {
        entry.client_order_id: "filled",
        exits[0].client_order_id: "filled",
    }
    assert len(await q.fills()) == len(fills)
    [pos] = await q.positions()
    assert pos["amount"] == 0
    [row] = await q.signals()
    assert row["anomaly_id"] == anomaly.id
    await engine.stop()
    await signals.stop()

    # restart from the database
    engine2, signals2 = _engine(rig)
    await engine2.start()
    assert engine2.risk_state == RiskState.ACTIVE
    assert engine2.stats()["trades"] == 1
    assert Decimal(engine2.stats()["net_pnl"]) == pnl
    assert engine2.book.open() == []
    await engine2.stop()
    await signals2.stop()
