"""Venue refusals through the real ccxt code on the simulator are the ccxt exceptions they
are against Binance's own hosts (the rewritten origin is classified as the real one): a
reduce-only order the USD-M venue refuses (-2022), an order refused for insufficient margin
(-2019) and the refusals ccxt raises as OperationRejected whose code says no order exists
(-4131 PERCENT_PRICE, -4045 stop order limit) are rejected at once with the venue's message,
never settled by a lookup; a busy answer ccxt also raises as OperationRejected (-1004) is an
unknown outcome, settled by lookup. A refused exit or venue leg leaves the position protected
by the book watch."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest
import pytest_asyncio

from cryptomon.events import OrderState, OrderUpdate
from cryptomon.sim.usdm import MAX_STOP_ORDERS, PERCENT_PRICE, SERVER_BUSY
from cryptomon.trading.orders import OrderRecord
from cryptomon.trading.risk_model import RiskState
from tests.usdm import EX, PERP, VENUE_ID, Live, enter, start_live, top
from tests.util import wait_until

D = Decimal
S = OrderState
KEY, SECRET = "errors-key", "errors-secret"
ORDER, ALGO = "/fapi/v1/order", "/fapi/v1/algoOrder"


@pytest_asyncio.fixture
async def live() -> AsyncIterator[Live]:
    rig = await start_live(key=KEY, secret=SECRET, seed=5, native=False, allow_short=True)
    try:
        yield rig
    finally:
        await rig.stop()


@pytest_asyncio.fixture
async def native() -> AsyncIterator[Live]:
    """The rig with venue-side stop-loss and take-profit legs."""
    rig = await start_live(key=KEY, secret=SECRET, seed=6, native=True, allow_short=True)
    try:
        yield rig
    finally:
        await rig.stop()


def order_states(live: Live) -> Callable[[str], list[OrderState]]:
    """From now on, the states each order is published in, by client order id. An order
    whose outcome is unknown is published ``unknown`` before it is settled by lookup; the
    venue's request log cannot tell (the poller also asks about an order still on its way)."""
    seen: list[OrderUpdate] = []
    live.hub.subscribe(OrderUpdate, seen.append, name="test.order-updates")
    return lambda coid: [u.state for u in seen if u.client_order_id == coid]


@pytest.mark.asyncio
async def test_a_reduce_only_order_the_venue_refuses_is_rejected_at_once(live: Live) -> None:
    """The engine holds a 0.1 long the venue no longer has (closed there by hand): the
    reduce-only close is refused with -2022 ReduceOnly Order is rejected, which is ccxt's
    InvalidOrder as on fapi.binance.com; the order is REJECTED at once with the venue's
    message and never looked up (its outcome was never unknown)."""
    await enter(live.engine, "buy", stop_loss="19400")
    live.venue.book.positions[VENUE_ID].qty = D(0)
    states = order_states(live)
    out = await live.engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="sell", amount="0.1", reduce_only=True
    )
    assert out["state"] == "rejected"
    assert "InvalidOrder" in out["reason"]
    assert "ReduceOnly Order is rejected." in out["reason"]
    assert states(out["client_order_id"]) == [S.NEW, S.REJECTED]


@pytest.mark.asyncio
async def test_an_order_the_venue_refuses_for_margin_is_rejected_at_once(live: Live) -> None:
    """The venue's wallet holds 100 USDT: a 0.1 long at 20000 and 5x needs 400 of margin and
    is refused with -2019 Margin is insufficient, which is ccxt's InsufficientFunds as on
    fapi.binance.com; the order is REJECTED at once with the venue's message, no lookup."""
    live.venue.book.wallet = D(100)
    states = order_states(live)
    out = await enter(live.engine, "buy", stop_loss="19400")
    assert out["state"] == "rejected"
    assert "InsufficientFunds" in out["reason"]
    assert "Margin is insufficient." in out["reason"]
    assert states(out["client_order_id"]) == [S.NEW, S.REJECTED]
    assert live.venue.book.orders == []


def posts(live: Live, path: str = ORDER) -> int:
    """The placements (``POST path``) the venue saw."""
    return live.venue.requests.count(("POST", path))


@pytest.mark.asyncio
async def test_an_entry_outside_the_percent_price_band_is_rejected_at_once(live: Live) -> None:
    """The venue refuses the market entry with -4131 (the counterparty's best price is
    outside PERCENT_PRICE), which ccxt raises as OperationRejected as on fapi.binance.com:
    the order is REJECTED at once with the venue's message, never unknown nor looked up;
    nothing is held or protected and the engine stays active."""
    states = order_states(live)
    live.venue.refuse("POST", ORDER, PERCENT_PRICE)
    out = await enter(live.engine, "buy", stop_loss="19400")
    assert out["state"] == "rejected"
    assert "OperationRejected" in out["reason"]
    assert PERCENT_PRICE.msg in out["reason"]
    assert states(out["client_order_id"]) == [S.NEW, S.REJECTED]
    assert live.venue.book.orders == []
    assert live.engine.portfolio.amount(EX, PERP) == 0
    assert (EX, PERP) not in live.engine.protection.protections
    assert live.engine.risk_state == RiskState.ACTIVE
    assert not live.engine.book.open()


@pytest.mark.asyncio
async def test_a_refused_stop_loss_exit_keeps_the_position_protected(live: Live) -> None:
    """The emulated stop-loss fires at 19300 and its reduce-only market exit is refused with
    -4131: the exit is REJECTED at once (never unknown), the position stays open and
    protected (the trigger re-armed, not exiting), the next try waits the exit backoff
    instead of going out on every book top, and once it has passed the stop closes the
    position."""
    engine, venue = live.engine, live.venue
    await enter(engine, "buy", stop_loss="19400")
    prot = engine.protection.protections[(EX, PERP)]
    states = order_states(live)
    venue.refuse("POST", ORDER, PERCENT_PRICE)
    venue.set_price(VENUE_ID, D(19300))
    top(live.hub, 19300.0)

    def exits() -> list[OrderRecord]:
        return [r for r in engine.book.all() if r.intent.origin == "stop_loss"]

    await wait_until(lambda: [r.state for r in exits()] == [S.REJECTED], message="refused")
    [refused] = exits()
    assert PERCENT_PRICE.msg in refused.reason
    assert states(refused.client_order_id) == [S.NEW, S.REJECTED]
    assert engine.portfolio.amount(EX, PERP) == D("0.1")
    assert engine.protection.protections[(EX, PERP)] is prot
    assert not prot.native
    assert not prot.exiting
    assert engine.clock.monotonic() < prot.retry_at  # backed off
    top(live.hub, 19300.0)  # inside the backoff: no new exit
    assert not prot.exiting
    assert posts(live) == 2  # the entry and the refused exit
    assert engine.risk_state == RiskState.ACTIVE

    def closed() -> bool:
        top(live.hub, 19300.0)
        return engine.portfolio.amount(EX, PERP) == 0

    await wait_until(closed, message="closed by the next try")
    assert [r.state for r in exits()] == [S.REJECTED, S.FILLED]
    assert posts(live) == 3
    assert venue.book.positions[VENUE_ID].qty == 0
    assert (EX, PERP) not in engine.protection.protections
    assert engine.risk_state == RiskState.ACTIVE


@pytest.mark.asyncio
async def test_a_busy_answer_to_an_order_is_settled_by_lookup(live: Live) -> None:
    """The venue takes the entry but answers -1004 Server is busy, which ccxt raises as
    OperationRejected on fapi.binance.com too: the outcome is unknown, the order is looked
    up (never resent) and found filled, and the engine holds what the venue holds."""
    engine, venue = live.engine, live.venue
    states = order_states(live)
    venue.refuse("POST", ORDER, SERVER_BUSY, carried_out=True)
    out = await enter(engine, "buy", stop_loss="19400")
    assert out["state"] == "unknown"
    assert "Server is busy" in out["reason"]
    record = engine.book.get(out["client_order_id"])
    assert record is not None
    await wait_until(lambda: record.state == S.FILLED, message="settled by lookup")
    assert states(record.client_order_id) == [S.NEW, S.UNKNOWN, S.FILLED]
    assert posts(live) == 1
    assert engine.portfolio.amount(EX, PERP) == venue.book.positions[VENUE_ID].qty == D("0.1")
    assert (EX, PERP) in engine.protection.protections
    assert engine.risk_state == RiskState.ACTIVE


@pytest.mark.asyncio
async def test_a_busy_answer_to_a_lookup_is_retried(live: Live) -> None:
    """A lookup answered -1004 Server is busy (OperationRejected in ccxt) is asked again,
    like a 5xx, instead of failing as a refusal."""
    out = await enter(live.engine, "buy", stop_loss="19400")
    live.venue.refuse("GET", ORDER, SERVER_BUSY)
    live.venue.requests.clear()
    found = await live.engine.broker.fetch_order(PERP, out["client_order_id"])
    assert found is not None
    assert found.state == S.FILLED
    assert live.venue.requests.count(("GET", ORDER)) >= 2  # the busy answer, then the order


@pytest.mark.asyncio
async def test_a_refused_venue_stop_leg_falls_back_to_the_book_watch(native: Live) -> None:
    """With venue-side legs the stop leg is refused with -4045 Reach max stop order limit
    (ccxt's OperationRejected): it is REJECTED at once, never unknown, so the position is
    not left to a leg that does not exist: the engine watches the book again (no take-profit
    leg is placed alone) and its emulated stop closes the position."""
    engine, venue = native.engine, native.venue
    states = order_states(native)
    venue.refuse("POST", ALGO, MAX_STOP_ORDERS)
    await enter(engine, "buy", stop_loss="19400", take_profit="21200")
    prot = engine.protection.protections[(EX, PERP)]

    def legs() -> list[OrderRecord]:
        return [r for r in engine.book.all() if r.intent.origin in ("stop_loss", "take_profit")]

    await wait_until(lambda: [r.state for r in legs()] == [S.REJECTED], message="leg refused")
    [leg] = legs()
    assert leg.intent.type == "stop_market"
    assert MAX_STOP_ORDERS.msg in leg.reason
    assert states(leg.client_order_id) == [S.NEW, S.REJECTED]
    await wait_until(lambda: not prot.native, message="back on the book watch")
    assert venue.book.algos == []
    assert posts(native, ALGO) == 1  # the take-profit leg was not placed alone
    assert engine.risk_state == RiskState.ACTIVE
    venue.set_price(VENUE_ID, D(19300))

    def closed() -> bool:
        top(native.hub, 19300.0)
        return engine.portfolio.amount(EX, PERP) == 0

    await wait_until(closed, message="closed by the emulated stop")
    assert venue.book.positions[VENUE_ID].qty == 0
