"""Perpetuals live, end to end through the real ccxt ``binanceusdm`` code on the simulator's
USD-M subset: the engine sets and verifies 5x isolated before the first order, a long and a
short open with their stop-loss and take-profit (emulated by the engine on the book), pay or
receive funding from the venue's income history, close, and end with the PnL of the hand
computation and the venue's positions; a venue that refuses the leverage gets no order."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from cryptomon.sim.usdm import UsdmVenue
from tests.usdm import EX, PERP, VENUE_ID, Live, enter, start_live, top
from tests.util import wait_until

D = Decimal
KEY, SECRET = "usdm-key", "usdm-secret"
FEE = D("0.0004")


@pytest_asyncio.fixture
async def live() -> AsyncIterator[Live]:
    rig = await start_live(
        key=KEY,
        secret=SECRET,
        seed=3,
        native=False,  # the engine watches the book (SL/TP emulated)
        margin_mode="isolated",
        allow_short=True,
        mark_interval_s=0.05,
    )
    try:
        yield rig
    finally:
        await rig.stop()


def order_paths(venue: UsdmVenue) -> list[str]:
    return [path for method, path in venue.requests if method == "POST"]


@pytest.mark.asyncio
async def test_5x_long_sets_leverage_gets_legs_pays_funding_and_takes_profit(live: Live) -> None:
    """Leverage and margin type are set before the order; the cash read from the venue leaves
    out the unrealized PnL; the take-profit closes the long: PnL = 0.1 x (21300 - 20000) -
    funding 0.205 - taker fees, as the venue's wallet says."""
    engine, venue = live.engine, live.venue
    await enter(engine, "buy", stop_loss="19400", take_profit="21200")
    posts = order_paths(venue)
    assert posts[:3] == ["/fapi/v1/marginType", "/fapi/v1/leverage", "/fapi/v1/order"]
    assert venue.book.positions[VENUE_ID].leverage == 5
    assert venue.book.positions[VENUE_ID].margin_type == "ISOLATED"
    pos = engine.portfolio.positions[(EX, PERP)]
    assert (EX, PERP) in engine.protection.protections
    assert pos.event(0.0, 0.0).liquidation_price == D(20000) * (1 - D("0.2") + D("0.004"))
    venue.set_price(VENUE_ID, D(20500))
    top(live.hub, 20500.0)  # the venue's margin balance now holds +50 unrealized
    await wait_until(lambda: pos.mark == D(20500), timeout=10)
    await engine.reconciler.run(periodic=True)
    assert engine.portfolio.cash == venue.book.wallet  # not counting the unrealized PnL twice
    assert engine.portfolio.equity == venue.book.wallet + D(50)
    venue.settle_funding(D("0.0001"))  # 0.1 x 20500 x 0.0001 paid
    assert await engine.funding.sync() == 1
    venue.set_price(VENUE_ID, D(21300))
    top(live.hub, 21300.0)  # the bid crosses the take-profit: a reduce-only market exit
    await wait_until(lambda: pos.amount == 0, timeout=10)
    hand = D("0.1") * (D(21300) - D(20000)) - D("0.205") - D("0.1") * (D(20000) + D(21300)) * FEE
    assert engine.portfolio.trades[-1].pnl == hand
    assert venue.book.wallet == D(10_000) + hand
    assert venue.book.orders[-1]["reduceOnly"] is True
    assert await engine.broker.fetch_positions() == {}  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_5x_short_receives_funding_and_stops_out(live: Live) -> None:
    """The short's stop-loss fires at 20700: PnL = -0.1 x 700 + funding 0.2 - fees."""
    engine, venue = live.engine, live.venue
    await enter(engine, "sell", stop_loss="20600", take_profit="18800")
    pos = engine.portfolio.positions[(EX, PERP)]
    assert pos.amount == D("-0.1")
    assert await engine.broker.fetch_positions() == {PERP: D("-0.1")}  # type: ignore[attr-defined]
    venue.settle_funding(D("0.0001"))
    await engine.funding.sync()
    assert pos.contract is not None
    assert pos.contract.funding == D("0.2")
    venue.set_price(VENUE_ID, D(20700))
    top(live.hub, 20700.0)  # the ask crosses the stop
    await wait_until(lambda: pos.amount == 0, timeout=10)
    hand = D("-0.1") * (D(20700) - D(20000)) + D("0.2") - D("0.1") * (D(20000) + D(20700)) * FEE
    assert engine.portfolio.trades[-1].pnl == hand
    assert venue.book.wallet == D(10_000) + hand


@pytest.mark.asyncio
async def test_refused_leverage_is_a_clear_rejection_and_no_order(live: Live) -> None:
    """A venue refusing the leverage: the order is rejected naming it, nothing is placed."""
    live.venue.refuse_leverage = True
    out = await enter(live.engine, "buy", stop_loss="19400")
    assert out["state"] == "rejected"
    assert "refused leverage 5" in out["reason"]
    assert "/fapi/v1/order" not in order_paths(live.venue)
    assert live.venue.book.orders == []


@pytest.mark.asyncio
async def test_a_margin_type_already_set_by_an_earlier_process_is_not_a_refusal(
    live: Live,
) -> None:
    """The account is already isolated (an earlier process set it; every restart finds it
    so): the venue answers -4046 "No need to change margin type.", which ccxt raises as
    MarginModeAlreadySet. The mode is the wanted one (the read-back checks it), so the
    order goes out; before, it was rejected as a refused margin mode, and so was every later
    order of the symbol in that process (exits included)."""
    live.venue.book.position_of(VENUE_ID).margin_type = "ISOLATED"
    out = await enter(live.engine, "buy", stop_loss="19400")
    assert out["state"] == "filled", out["reason"]
    assert order_paths(live.venue)[:3] == [
        "/fapi/v1/marginType",
        "/fapi/v1/leverage",
        "/fapi/v1/order",
    ]
    assert live.venue.book.positions[VENUE_ID].qty == D("0.1")
    assert live.venue.book.positions[VENUE_ID].leverage == 5


@pytest.mark.asyncio
async def test_leverage_read_back_differently_sends_no_order(live: Live) -> None:
    """The venue accepts 5x but reads back 20x: the order is rejected naming both."""
    live.venue.book.misreport_leverage = 20
    out = await enter(live.engine, "buy", stop_loss="19400")
    assert out["state"] == "rejected"
    assert "read back as 20x, expected 5x" in out["reason"]
    assert live.venue.book.orders == []


@pytest.mark.asyncio
async def test_funding_of_a_long_closed_and_reopened_before_the_sync_lands_on_it(
    live: Live,
) -> None:
    """The venue charges 0.2 of funding on a 0.1 long that is closed, and a new long opened,
    before the engine syncs funding: the sync books the payment on the closed trip (its PnL
    equals the venue's wallet change) and in the cash, once, and not on the new long."""
    engine, venue = live.engine, live.venue
    await enter(engine, "buy", stop_loss="19400")
    pos = engine.portfolio.positions[(EX, PERP)]
    venue.settle_funding(D("0.0001"))  # 0.1 x 20000 x 0.0001 paid
    paid_at = venue.book.incomes[-1]["time"]
    out = await engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="sell", amount="0.1", reduce_only=True
    )
    assert out["state"] == "filled"
    assert pos.amount == 0
    wallet_after_trip = venue.book.wallet
    # the new long opens in a later venue millisecond than the payment
    await wait_until(lambda: time.time() * 1000 > paid_at + 1, timeout=5)
    await enter(engine, "buy", stop_loss="19400")
    assert pos.amount == D("0.1")
    assert await engine.funding.sync() == 1
    trip = engine.portfolio.trades[-1]
    assert trip.pnl == wallet_after_trip - D(10_000)
    assert trip.pnl == -D("0.2") - D("0.1") * D(20000) * FEE * 2
    assert pos.contract is not None
    assert pos.contract.funding == 0
    assert engine.portfolio.cash == venue.book.wallet
    assert await engine.funding.sync() == 0
    assert engine.portfolio.cash == venue.book.wallet


@pytest.mark.asyncio
async def test_the_periodic_step_books_funding_once_before_reading_the_cash(live: Live) -> None:
    """The venue charges 0.2 of funding on a 0.1 long; the engine's periodic step (funding
    sync and reconciliation) books it as realized PnL and its cash equals the venue's wallet
    right after, with no cash change taken from the venue as a non-PnL move (the equity
    history is not shifted). Before, the reconciliation ran first: it took the wallet (the
    payment already in it) as a non-PnL cash change, then the sync took the payment from the
    cash a second time: 0.2 short until the next reconciliation moved it back."""
    engine, venue = live.engine, live.venue
    await enter(engine, "buy", stop_loss="19400")
    await engine.reconciler.run(periodic=True)
    assert engine.portfolio.cash == venue.book.wallet
    pos = engine.portfolio.positions[(EX, PERP)]
    realized = pos.realized_pnl
    venue.settle_funding(D("0.0001"))  # 0.1 x 20000 x 0.0001 paid
    history = list(engine.portfolio.equity_curve)
    await engine.poller.reconcile_step()
    assert engine.portfolio.cash == venue.book.wallet
    assert pos.realized_pnl == realized - D("0.2")
    assert list(engine.portfolio.equity_curve)[: len(history)] == history  # not rebased
