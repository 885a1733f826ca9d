"""A live venue's own closes, through the real ccxt ``binanceusdm`` code on the simulator's
USD-M subset: the venue liquidates (auto-deleverages, settles) a 5x long with an order of its
own (Binance's ``autoclose-…`` client ids in ``order`` and ``userTrades``); the periodic
reconciliation finds that order among the account's trades and adopts it: the order is
journaled (SQLite file and PostgreSQL) with origin ``liquidation``, the position closes with
the PnL of the venue's fills, the emulated stop-loss is disarmed, the exit is alerted, and the
engine stays ``active`` (no position mismatch). A trade by hand on the same account that does
not reduce the position (it adds to it) is not adopted: it stays a mismatch that moves the
engine to ``reducing`` (a close by hand, and one that flips the position:
test_trading_futures_venue_close_live.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from cryptomon.clock import LiveClock
from cryptomon.config import load_settings
from cryptomon.events import OrderState, OrderUpdate
from cryptomon.hub import Hub
from cryptomon.notify.alerts import AlertBuilder
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.usdm import UsdmVenue
from cryptomon.store.db import Database
from cryptomon.store.journal import StoreJournal
from cryptomon.store.models import FillRow, OrderRow
from cryptomon.store.writer import StoreWriter
from cryptomon.trading.engine import TradingEngine
from cryptomon.trading.journal import MemoryJournal
from cryptomon.trading.risk import RiskState
from tests.usdm import (
    EX,
    PERP,
    VENUE_ID,
    enter,
    live_engine,
    live_trading,
    start_live,
    top,
    usdm_venue,
)
from tests.util import wait_until

D = Decimal
KEY, SECRET = "liq-key", "liq-secret"
FEE = D("0.0004")
ENTRY, GAP = D(20000), D(16100)  # the venue closes below the 19400 stop (a gap)


@dataclass
class Rig:
    sim: SimExchange
    venue: UsdmVenue
    engine: TradingEngine
    hub: Hub
    updates: list[OrderUpdate]
    db: Database | None = None
    writer: StoreWriter | None = None

    async def stop(self, *, venue: bool = True) -> None:
        await self.engine.stop()
        if self.writer is not None:
            await self.writer.stop()
        if self.db is not None:
            await self.db.stop()
        if venue:
            await self.sim.stop()


async def start(db_url: str | None = None, on: Rig | None = None) -> Rig:
    """A 5x isolated live engine (stop-loss emulated on the book) reconciling every 0.1 s, on
    a new simulator or the one of the rig ``on``."""
    if on is None:
        sim, venue = await usdm_venue(key=KEY, secret=SECRET, seed=7)
    else:
        sim, venue = on.sim, on.venue
    data: dict[str, Any] = {
        "trading": live_trading(
            sim.rest_url,
            key=KEY,
            secret=SECRET,
            native=False,
            margin_mode="isolated",
            allow_short=True,
            reconcile_interval_s=0.1,
        ),
        "storage": {"batch_max_age_s": 0.02},
    }
    if db_url is not None:
        data["database"] = {"url": db_url}
    settings = load_settings(data=data)
    hub, clock = Hub(), LiveClock()
    db = writer = None
    if db_url is not None:
        db = Database(settings.database)
        await db.start()
        writer = StoreWriter(hub=hub, db=db, config=settings.storage, clock=clock)
        await writer.start()
        journal: Any = StoreJournal(db=db)
    else:
        journal = MemoryJournal(hub=hub)
    engine = live_engine(settings.trading, hub=hub, journal=journal, clock=clock)
    updates: list[OrderUpdate] = []
    hub.subscribe(OrderUpdate, updates.append, name="test.updates")
    top(hub, 20000.0)
    await engine.start()
    return Rig(sim, venue, engine, hub, updates, db, writer)


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    r = await start()
    try:
        yield r
    finally:
        await r.stop()


async def some(rows: Callable[[], Awaitable[list[Any]]]) -> bool:
    return bool(await rows())


def forced_updates(rig: Rig, origin: str) -> list[OrderUpdate]:
    ids = {r.intent.client_order_id for r in rig.engine.book.all() if r.intent.origin == origin}
    return [u for u in rig.updates if u.client_order_id in ids and u.state.is_terminal]


@pytest.mark.asyncio
async def test_a_venue_liquidation_is_adopted_and_stored(db_url: str) -> None:
    """0.1 long at 20000; the venue liquidates it at 16100: the engine's trade has the PnL of
    the venue's fills, 0.1 x (16100 - 20000) less both taker fees, which is also what the
    venue's wallet lost; its cash is the wallet; the liquidation order is stored filled with
    its fill; the engine stays active and the next reconciliations find nothing."""
    rig = await start(db_url)
    try:
        engine, venue = rig.engine, rig.venue
        await enter(engine, "buy", stop_loss="19400")
        pos = engine.portfolio.positions[(EX, PERP)]
        assert (EX, PERP) in engine.protection.protections
        liq = venue.force_close(VENUE_ID, GAP)
        assert liq["clientOrderId"].startswith("autoclose-")
        await wait_until(lambda: pos.amount == 0, timeout=30, message="liquidation adopted")
        hand = D("0.1") * (GAP - ENTRY) - D("0.1") * (ENTRY + GAP) * FEE
        assert engine.portfolio.trades[-1].pnl == hand
        assert venue.book.wallet == D(10_000) + hand
        assert engine.risk_state == RiskState.ACTIVE
        assert (EX, PERP) not in engine.protection.protections
        assert await engine.reconciler.run(periodic=True) == []
        assert await engine.reconciler.run(periodic=True) == []
        assert engine.portfolio.cash == venue.book.wallet
        assert engine.risk_state == RiskState.ACTIVE
        assert rig.db is not None

        async def stored() -> list[OrderRow]:
            assert rig.db is not None
            async with rig.db.sessionmaker() as session:
                rows = await session.execute(
                    select(OrderRow).where(OrderRow.origin == "liquidation")
                )
                return [r for r in rows.scalars() if r.state == "filled"]

        await wait_until(lambda: some(stored), timeout=10, message="liquidation order stored")
        (row,) = await stored()
        assert row.client_order_id == liq["clientOrderId"]
        assert row.reason.startswith(f"liquidation: the venue's order {liq['orderId']}")
        assert (row.filled, row.avg_price) == (D("0.1"), GAP)

        async def fills() -> list[FillRow]:
            assert rig.db is not None
            async with rig.db.sessionmaker() as session:
                rows = await session.execute(
                    select(FillRow).where(FillRow.client_order_id == row.client_order_id)
                )
                return list(rows.scalars())

        await wait_until(lambda: some(fills), timeout=10, message="liquidation fill stored")
        (fill,) = await fills()
        assert (fill.amount, fill.price) == (D("0.1"), GAP)
        assert fill.fee == D("0.1") * GAP * FEE
    finally:
        await rig.stop()


@pytest.mark.asyncio
async def test_a_liquidation_while_the_engine_was_down_is_adopted_at_start(db_url: str) -> None:
    """The engine stops with its 0.1 long journaled; the venue liquidates it meanwhile; the
    engine started again on the same database adopts the venue's order in its first
    reconciliation: flat, the trade's PnL from the venue's fills, the cash the wallet,
    ``active``."""
    first = await start(db_url)
    try:
        await enter(first.engine, "buy", stop_loss="19400")
    finally:
        await first.stop(venue=False)
    liq = first.venue.force_close(VENUE_ID, GAP)
    second = await start(db_url, on=first)
    try:
        engine = second.engine
        assert engine.portfolio.open_positions() == []
        assert engine.risk_state == RiskState.ACTIVE
        record = engine.book.get(liq["clientOrderId"])
        assert record is not None
        assert (record.intent.origin, record.state) == ("liquidation", OrderState.FILLED)
        hand = D("0.1") * (GAP - ENTRY) - D("0.1") * (ENTRY + GAP) * FEE
        assert engine.portfolio.trades[-1].pnl == hand
        assert engine.portfolio.cash == first.venue.book.wallet == D(10_000) + hand
    finally:
        await second.stop()


@pytest.mark.asyncio
async def test_the_adopted_liquidation_makes_an_exit_alert(rig: Rig) -> None:
    engine, venue = rig.engine, rig.venue
    await enter(engine, "buy", stop_loss="19400")
    pos = engine.portfolio.positions[(EX, PERP)]
    venue.force_close(VENUE_ID, GAP)
    await wait_until(lambda: pos.amount == 0, timeout=30, message="liquidation adopted")
    (done,) = forced_updates(rig, "liquidation")
    record = engine.book.get(done.client_order_id)
    assert record is not None
    builder = AlertBuilder(api_base_url="http://x")
    builder.build(record.intent)
    alert = builder.build(done)
    assert alert is not None
    assert (alert.event_type, alert.kind) == ("exit", "liquidation")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("kind", "origin", "fee"),
    [("adl", "adl", FEE), ("settlement", "settlement", D(0))],
)
async def test_auto_deleveraging_and_settlement_are_adopted(
    rig: Rig, kind: str, origin: str, fee: Decimal
) -> None:
    """``adl_autoclose`` (one client id for every such order: the journal appends the
    venue's order id) and ``settlement_autoclose-…`` (no fee) close a short at 21000."""
    engine, venue = rig.engine, rig.venue
    await enter(engine, "sell", stop_loss="20600")
    pos = engine.portfolio.positions[(EX, PERP)]
    order = venue.force_close(VENUE_ID, D(21000), kind)
    await wait_until(lambda: pos.amount == 0, timeout=30, message=f"{kind} adopted")
    (done,) = forced_updates(rig, origin)
    if kind == "adl":
        assert done.client_order_id == f"adl_autoclose-{order['orderId']}"
        assert done.reason.startswith("auto-deleveraging: ")
    else:
        assert done.client_order_id.startswith("settlement_autoclose-")
        assert done.reason.startswith("settlement: ")
    hand = D("-0.1") * (D(21000) - ENTRY) - D("0.1") * ENTRY * FEE - D("0.1") * D(21000) * fee
    assert engine.portfolio.trades[-1].pnl == hand
    assert venue.book.wallet == D(10_000) + hand
    assert await engine.reconciler.run(periodic=True) == []
    assert engine.risk_state == RiskState.ACTIVE


@pytest.mark.asyncio
async def test_a_trade_by_hand_that_adds_to_the_position_stays_a_mismatch(rig: Rig) -> None:
    """Someone buys 0.05 by hand on the same account on top of the engine's 0.1 long (a
    venue order, not the engine's): it does not reduce the long, so it is not adopted; the
    position differs from the venue's on two periodic runs in a row and the engine goes to
    ``reducing`` naming it (a trade by hand that flips the position:
    test_trading_futures_venue_close_live.py)."""
    engine, venue = rig.engine, rig.venue
    await enter(engine, "buy", stop_loss="19400")
    pos = engine.portfolio.positions[(EX, PERP)]
    venue.book.new_order(
        {
            "symbol": VENUE_ID,
            "side": "BUY",
            "type": "MARKET",
            "quantity": "0.05",
            "newClientOrderId": "web_by_hand_1",
        }
    )
    first = await engine.reconciler.run(periodic=True)  # a first sighting is not reported
    (mismatch,) = await engine.reconciler.run(periodic=True)
    assert first in ([], [mismatch])  # the engine's own periodic run may have seen it first
    assert mismatch == f"{PERP}: position 0.1 contracts but the venue holds 0.15"
    assert engine.risk_state == RiskState.REDUCING
    assert pos.amount == D("0.1")
    assert "position 0.1 contracts but the venue holds 0.15" in engine.context.state_reason
    assert [r for r in engine.book.all() if r.intent.origin not in ("manual",)] == []


@pytest.mark.asyncio
async def test_a_liquidation_with_venue_legs_leaves_no_order_open() -> None:
    """With the stop-loss and take-profit resting on the venue (conditional orders), the
    venue cancels them when it liquidates: the engine adopts the liquidation and its leg
    records end (none stays open, nothing is an orphan), still ``active``."""
    live = await start_live(key=KEY, secret=SECRET, seed=8, native=True, reconcile_interval_s=0.1)
    try:
        engine, venue = live.engine, live.venue
        await enter(engine, "buy", stop_loss="19400", take_profit="21200")
        await wait_until(
            lambda: len([a for a in venue.book.algos if a["algoStatus"] == "NEW"]) == 2,
            timeout=30,
            message="both legs rest on the venue",
        )
        pos = engine.portfolio.positions[(EX, PERP)]
        venue.force_close(VENUE_ID, GAP)
        await wait_until(lambda: pos.amount == 0, timeout=30, message="liquidation adopted")
        await wait_until(lambda: not engine.book.open(), timeout=30, message="legs ended")
        assert (EX, PERP) not in engine.protection.protections
        hand = D("0.1") * (GAP - ENTRY) - D("0.1") * (ENTRY + GAP) * FEE
        assert engine.portfolio.trades[-1].pnl == hand
        assert await engine.reconciler.run(periodic=True) == []
        assert engine.risk_state == RiskState.ACTIVE
    finally:
        await live.stop()


@pytest.mark.asyncio
async def test_a_stop_loss_fired_into_the_liquidated_position_does_not_count(rig: Rig) -> None:
    """The price gaps through the stop to the liquidation: the engine's emulated stop-loss
    fires too, but the venue refuses it (-2022, nothing left to reduce: ccxt's InvalidOrder,
    rejected at once with the venue's message); the liquidation is the one exit, with one
    trade of the venue's PnL."""
    engine, venue = rig.engine, rig.venue
    await enter(engine, "buy", stop_loss="19400")
    pos = engine.portfolio.positions[(EX, PERP)]
    venue.force_close(VENUE_ID, GAP)
    top(rig.hub, float(GAP))  # the book the emulated stop watches moves there too
    await wait_until(lambda: pos.amount == 0, timeout=30, message="liquidation adopted")
    await wait_until(lambda: not engine.book.open(), timeout=30, message="stop-loss settled")
    by_origin = {r.intent.origin: r for r in engine.book.all()}
    assert by_origin["stop_loss"].state == OrderState.REJECTED
    assert "InvalidOrder" in by_origin["stop_loss"].reason
    assert "ReduceOnly Order is rejected." in by_origin["stop_loss"].reason
    assert by_origin["liquidation"].state == OrderState.FILLED
    hand = D("0.1") * (GAP - ENTRY) - D("0.1") * (ENTRY + GAP) * FEE
    assert [t.pnl for t in engine.portfolio.trades] == [hand]
    assert await engine.reconciler.run(periodic=True) == []
    assert engine.risk_state == RiskState.ACTIVE
