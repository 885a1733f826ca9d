"""A live account's position closed by an order the engine did not send and that carries no
mark of the venue's own (someone's order on the venue's website: Binance's ``web_…`` client
id), through the real ccxt ``binanceusdm`` code on the simulator's USD-M subset. The
reconciliation adopts it as a ``venue`` order like a liquidation: journaled (SQLite file and
PostgreSQL) as ``venue-<order id>``, the position closed (or reduced) with the PnL of the
venue's fills in Decimal, the protection disarmed and the position's venue legs canceled, an
exit alert, the engine ``active`` (no position mismatch). A stop-loss leg of the engine's that
fired at the venue (an order of the venue's own id too) stays the engine's stop-loss. A trade
by hand that flips the position is adopted for the part that closed it; the rest is left to
the account's owner as an unmanaged position: named in a RiskEvent, no entry on that market
until it is flat, the engine not held in ``reducing``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from cryptomon.errors import RiskRejected
from cryptomon.events import OrderState, RiskEvent
from cryptomon.notify.alerts import AlertBuilder
from cryptomon.store.models import FillRow, OrderRow
from cryptomon.trading.risk import RiskState
from tests.integration.test_trading_futures_liquidation_live import (
    ENTRY,
    FEE,
    KEY,
    SECRET,
    Rig,
    forced_updates,
    start,
)
from tests.usdm import EX, PERP, VENUE_ID, enter, start_live
from tests.util import wait_until

D = Decimal
HAND = D(19500)  # above the 19400 stop: the engine's own exit never fires


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    r = await start()
    try:
        yield r
    finally:
        await r.stop()


async def some(rows: Callable[[], Awaitable[list[Any]]]) -> bool:
    return bool(await rows())


def pnl(amount: str, exit_price: Decimal) -> Decimal:
    """The round trip of a long of ``amount`` from ENTRY: realized less both taker fees."""
    qty = D(amount)
    return qty * (exit_price - ENTRY) - qty * (ENTRY + exit_price) * FEE


@pytest.mark.asyncio
async def test_a_close_by_hand_is_adopted_and_stored(db_url: str) -> None:
    """0.1 long at 20000 sold at 19500 on the venue's website: the engine's trade has the PnL
    of the venue's fill, which is also what the wallet lost; its cash is the wallet; the
    order is stored filled with origin ``venue``, its fill with the venue's fee; the engine
    stays active and the next reconciliations find nothing."""
    rig = await start(db_url)
    try:
        engine, venue = rig.engine, rig.venue
        await enter(engine, "buy", stop_loss="19400")
        pos = engine.portfolio.positions[(EX, PERP)]
        assert (EX, PERP) in engine.protection.protections
        order = venue.close_by_hand(VENUE_ID, HAND)
        assert order["clientOrderId"].startswith("web_")
        await wait_until(lambda: pos.amount == 0, timeout=30, message="close by hand adopted")
        assert engine.portfolio.trades[-1].pnl == pnl("0.1", HAND)
        assert venue.book.wallet == D(10_000) + pnl("0.1", HAND)
        assert engine.risk_state == RiskState.ACTIVE
        assert (EX, PERP) not in engine.protection.protections
        assert await engine.reconciler.run(periodic=True) == []
        assert await engine.reconciler.run(periodic=True) == []
        assert engine.portfolio.cash == venue.book.wallet
        assert engine.risk_state == RiskState.ACTIVE

        async def stored() -> list[OrderRow]:
            assert rig.db is not None
            async with rig.db.sessionmaker() as session:
                rows = await session.execute(select(OrderRow).where(OrderRow.origin == "venue"))
                return [r for r in rows.scalars() if r.state == "filled"]

        await wait_until(lambda: some(stored), timeout=10, message="venue order stored")
        (row,) = await stored()
        assert row.client_order_id == f"venue-{order['orderId']}"
        assert row.reason.startswith(
            f"venue order: the venue's order {order['orderId']} ({order['clientOrderId']}) "
            f"sell 0.1 {PERP} at 19500.0, fee 0.78 USDT (not sent by cryptomon"
        )
        assert (row.filled, row.avg_price, row.reduce_only) == (D("0.1"), HAND, True)

        async def fills() -> list[FillRow]:
            assert rig.db is not None
            async with rig.db.sessionmaker() as session:
                rows = await session.execute(
                    select(FillRow).where(FillRow.client_order_id == row.client_order_id)
                )
                return list(rows.scalars())

        await wait_until(lambda: some(fills), timeout=10, message="venue order fill stored")
        (fill,) = await fills()
        assert (fill.amount, fill.price) == (D("0.1"), HAND)
        assert fill.fee == D("0.1") * HAND * FEE
    finally:
        await rig.stop()


@pytest.mark.asyncio
async def test_the_adopted_close_by_hand_makes_an_exit_alert(rig: Rig) -> None:
    engine, venue = rig.engine, rig.venue
    await enter(engine, "buy", stop_loss="19400")
    pos = engine.portfolio.positions[(EX, PERP)]
    venue.close_by_hand(VENUE_ID, HAND)
    await wait_until(lambda: pos.amount == 0, timeout=30, message="close by hand adopted")
    (done,) = forced_updates(rig, "venue")
    record = engine.book.get(done.client_order_id)
    assert record is not None
    builder = AlertBuilder(api_base_url="http://x")
    builder.build(record.intent)
    alert = builder.build(done)
    assert alert is not None
    assert (alert.event_type, alert.kind) == ("exit", "venue_order")
    assert alert.fields["exit_kind"] == "venue order"
    assert alert.fields["reason"].startswith("venue order: the venue's order ")


@pytest.mark.asyncio
async def test_a_partial_close_by_hand_leaves_the_rest_protected(rig: Rig) -> None:
    """0.04 of the 0.1 long sold by hand: adopted, 0.06 left with its stop-loss armed, the
    realized PnL of the 0.04, no mismatch."""
    engine, venue = rig.engine, rig.venue
    await enter(engine, "buy", stop_loss="19400")
    pos = engine.portfolio.positions[(EX, PERP)]
    venue.close_by_hand(VENUE_ID, HAND, D("0.04"))
    await wait_until(lambda: pos.amount == D("0.06"), timeout=30, message="reduce adopted")
    assert pos.realized_pnl == D("0.04") * (HAND - ENTRY)
    assert engine.protection.protections[(EX, PERP)].stop == D(19400)
    (done,) = forced_updates(rig, "venue")
    assert (done.state, done.filled) == (OrderState.FILLED, D("0.04"))
    assert await engine.reconciler.run(periodic=True) == []
    assert await engine.reconciler.run(periodic=True) == []
    assert engine.risk_state == RiskState.ACTIVE
    assert venue.book.positions[VENUE_ID].qty == pos.amount


@pytest.mark.asyncio
async def test_a_close_by_hand_while_the_engine_was_down_is_adopted_at_start(db_url: str) -> None:
    """The engine stops with its 0.1 long journaled; someone closes it by hand meanwhile; the
    engine started again on the same database adopts that order in its first
    reconciliation: flat, the trade's PnL from the venue's fill, the cash the wallet,
    ``active``."""
    first = await start(db_url)
    try:
        await enter(first.engine, "buy", stop_loss="19400")
    finally:
        await first.stop(venue=False)
    order = first.venue.close_by_hand(VENUE_ID, HAND)
    second = await start(db_url, on=first)
    try:
        engine = second.engine
        assert engine.portfolio.open_positions() == []
        assert engine.risk_state == RiskState.ACTIVE
        record = engine.book.get(f"venue-{order['orderId']}")
        assert record is not None
        assert (record.intent.origin, record.state) == ("venue", OrderState.FILLED)
        assert engine.portfolio.trades[-1].pnl == pnl("0.1", HAND)
        assert engine.portfolio.cash == first.venue.book.wallet == D(10_000) + pnl("0.1", HAND)
    finally:
        await second.stop()


@pytest.mark.asyncio
async def test_a_close_by_hand_cancels_the_venue_legs() -> None:
    """With the stop-loss and take-profit resting on the venue, a close by hand leaves them
    there (the venue cancels a position's orders only when it closes it itself): the engine
    adopts the close and cancels both legs; no order stays open at the venue or here."""
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
        venue.close_by_hand(VENUE_ID, HAND)
        await wait_until(lambda: pos.amount == 0, timeout=30, message="close by hand adopted")
        await wait_until(
            lambda: all(a["algoStatus"] == "CANCELED" for a in venue.book.algos),
            timeout=30,
            message="both legs canceled at the venue",
        )
        await wait_until(lambda: not engine.book.open(), timeout=30, message="legs ended")
        assert (EX, PERP) not in engine.protection.protections
        assert engine.portfolio.trades[-1].pnl == pnl("0.1", HAND)
        assert await engine.reconciler.run(periodic=True) == []
        assert engine.risk_state == RiskState.ACTIVE
    finally:
        await live.stop()


@pytest.mark.asyncio
async def test_a_fired_stop_loss_leg_is_not_taken_for_a_venue_order() -> None:
    """The stop-loss leg resting on the venue fires (an order of the venue's own id, not
    marked) before the engine has looked the leg up (no polling here): the reconciliation
    sees that order's trade and a position the venue no longer holds, looks the engine's
    open orders up first, finds the leg filled with those very fills and adopts nothing;
    the stop-loss is the one exit, with one trade of the venue's PnL."""
    live = await start_live(
        key=KEY,
        secret=SECRET,
        seed=9,
        native=True,
        poll_interval_s=3600,
        reconcile_interval_s=3600,
    )
    try:
        engine, venue = live.engine, live.venue
        await enter(engine, "buy", stop_loss="19400", take_profit="21200")
        await wait_until(
            lambda: len([a for a in venue.book.algos if a["algoStatus"] == "NEW"]) == 2,
            timeout=30,
            message="both legs rest on the venue",
        )
        venue.set_price(VENUE_ID, D(19300))  # the stop-loss leg fires at the venue
        assert venue.book.positions[VENUE_ID].qty == 0
        assert await engine.reconciler.run(periodic=True) == []
        pos = engine.portfolio.positions[(EX, PERP)]
        assert pos.amount == 0
        by_origin = {r.intent.origin: r for r in engine.book.all()}
        assert "venue" not in by_origin
        assert by_origin["stop_loss"].state == OrderState.FILLED
        assert [t.pnl for t in engine.portfolio.trades] == [pnl("0.1", D(19300))]
        assert engine.risk_state == RiskState.ACTIVE
    finally:
        await live.stop()


@pytest.mark.asyncio
async def test_a_trade_by_hand_that_flips_the_position_closes_it_and_leaves_the_rest_unmanaged(
    rig: Rig,
) -> None:
    """0.1 long; someone sells 0.3 by hand at 19500: the venue now holds a 0.2 short. The
    0.1 that closed the long is adopted (the PnL and fee of that part of the venue's fill),
    the protection is disarmed; the 0.2 beyond zero is not taken over: the reconciliation
    names it with what to do, a RiskEvent tells it, entries on the market are refused, the
    engine stays ``active``; once the owner closes that short on the venue, entries are
    allowed again."""
    engine, venue = rig.engine, rig.venue
    risks: list[RiskEvent] = []
    rig.hub.subscribe(RiskEvent, risks.append, name="test.risks")
    await enter(engine, "buy", stop_loss="19400")
    pos = engine.portfolio.positions[(EX, PERP)]
    order = venue.close_by_hand(VENUE_ID, HAND, D("0.3"))
    assert venue.book.positions[VENUE_ID].qty == D("-0.2")
    await wait_until(lambda: pos.amount == 0, timeout=30, message="the closing part adopted")
    assert engine.portfolio.trades[-1].pnl == pnl("0.1", HAND)
    assert (EX, PERP) not in engine.protection.protections
    (done,) = forced_updates(rig, "venue")
    assert (done.state, done.filled) == (OrderState.FILLED, D("0.1"))
    assert done.client_order_id == f"venue-{order['orderId']}"
    assert "0.1 of the order's 0.3 adopted: the rest went beyond the 0.1 contracts" in (done.reason)
    unmanaged = await engine.reconciler.run(periodic=True)
    assert len(unmanaged) == 1
    assert unmanaged[0].startswith(
        f"{PERP}: the venue holds -0.2 contracts that cryptomon did not open and does not manage"
    )
    assert "close that position on the venue" in unmanaged[0]
    assert engine.risk_state == RiskState.ACTIVE
    assert pos.amount == 0
    assert (EX, PERP) not in engine.protection.protections
    await wait_until(
        lambda: any(r.check == "unmanaged_position" for r in risks),
        timeout=10,
        message="the unmanaged position told",
    )
    (told,) = [r for r in risks if r.check == "unmanaged_position"]
    assert (told.symbol, told.reason, told.state) == (PERP, unmanaged[0], "active")
    alert = AlertBuilder(api_base_url="http://x").build(told)
    assert alert is not None
    assert (alert.kind, alert.fields["check"]) == ("risk_limit", "unmanaged_position")
    assert alert.fields["reason"] == unmanaged[0]
    assert engine.stats()["unmanaged_positions"] == {PERP: unmanaged[0]}
    with pytest.raises(RiskRejected) as refused:
        await enter(engine, "buy", stop_loss="19400")
    assert refused.value.check == "unmanaged_position"
    assert venue.book.positions[VENUE_ID].qty == D("-0.2")
    venue.close_by_hand(VENUE_ID, HAND)  # the owner closes the short on the venue
    await wait_until(lambda: not engine.context.unmanaged, timeout=30, message="the short is gone")
    assert await engine.reconciler.run(periodic=True) == []
    assert engine.risk_state == RiskState.ACTIVE
    assert engine.stats()["unmanaged_positions"] == {}
    assert [t.pnl for t in engine.portfolio.trades] == [pnl("0.1", HAND)]
    await enter(engine, "buy", stop_loss="19400")
    assert pos.amount == D("0.1")


@pytest.mark.asyncio
async def test_a_flip_by_hand_while_the_engine_was_down_is_adopted_at_start(db_url: str) -> None:
    """The engine stops with its 0.1 long journaled; someone sells 0.25 by hand meanwhile:
    the engine started again adopts the 0.1 that closed its long in its first
    reconciliation, starts ``active`` with the 0.15 short named as unmanaged."""
    first = await start(db_url)
    try:
        await enter(first.engine, "buy", stop_loss="19400")
    finally:
        await first.stop(venue=False)
    order = first.venue.close_by_hand(VENUE_ID, HAND, D("0.25"))
    second = await start(db_url, on=first)
    try:
        engine = second.engine
        assert engine.portfolio.open_positions() == []
        assert engine.risk_state == RiskState.ACTIVE
        record = engine.book.get(f"venue-{order['orderId']}")
        assert record is not None
        assert (record.intent.origin, record.filled) == ("venue", D("0.1"))
        assert engine.portfolio.trades[-1].pnl == pnl("0.1", HAND)
        assert list(engine.context.unmanaged) == [PERP]
        assert "the venue holds -0.15 contracts" in engine.context.unmanaged[PERP]
        assert (EX, PERP) not in engine.protection.protections
    finally:
        await second.stop()
