"""Funding stamped after the close: the venue pays the position it held at the funding time
and its income history stamps the payment at or slightly after that time. A position closed
in between (closed just after the funding time, the stamp a moment later) still gets the
payment, booked on its round trip. The live ccxt ``binanceusdm`` broker on the simulator's
USD-M venue (its ``/fapi/v1/income``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from cryptomon.sim.usdm import UsdmVenue, now_ms
from tests.usdm import EX, PERP, VENUE_ID, Live, enter, start_live
from tests.util import wait_until

D = Decimal
KEY, SECRET = "lag-key", "lag-secret"


@pytest_asyncio.fixture
async def live() -> AsyncIterator[Live]:
    rig = await start_live(
        key=KEY, secret=SECRET, seed=3, native=False, margin_mode="isolated", allow_short=True
    )
    try:
        yield rig
    finally:
        await rig.stop()


def funding_of(venue: UsdmVenue) -> list[dict[str, object]]:
    return [i for i in venue.book.incomes if i["incomeType"] == "FUNDING_FEE"]


@pytest.mark.asyncio
async def test_funding_stamped_just_after_the_close_lands_on_the_closed_trip(
    live: Live,
) -> None:
    """Long 0.1 at 20000 is paid funding (0.2), stamped 2 s after the funding time; the long
    closes in between. The sync books the 0.2 on the closed trip, the realized PnL and the
    cash (the venue's wallet). Before, the payment, stamped after the close, was skipped."""
    engine, venue = live.engine, live.venue
    await enter(engine, "buy", stop_loss="19400")
    pos = engine.portfolio.positions[(EX, PERP)]
    assert pos.amount == D("0.1")
    venue.settle_funding(D("0.0001"), stamp_lag_ms=2000)  # the funding time: now
    await engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="sell", amount="0.1", reduce_only=True
    )
    await wait_until(lambda: pos.amount == 0, timeout=10)
    [paid] = funding_of(venue)
    assert int(paid["time"]) / 1000 > pos.updated  # type: ignore[call-overload]  # stamped after the close
    trip = engine.portfolio.trades[-1]
    realized = pos.realized_pnl
    assert await engine.funding.sync() == 1
    assert pos.realized_pnl == realized + D(str(paid["income"]))
    assert engine.portfolio.trades[-1].pnl == trip.pnl + D(str(paid["income"]))
    assert engine.portfolio.cash == venue.book.wallet
    assert await engine.funding.sync() == 0  # once


@pytest.mark.asyncio
async def test_funding_stamped_long_after_the_close_is_not_ours(live: Live) -> None:
    """A payment stamped more than the venue's stamp lag after the flat position's close (a
    position opened on the account outside the engine) is not booked on the closed trip."""
    engine, venue = live.engine, live.venue
    await enter(engine, "buy", stop_loss="19400")
    pos = engine.portfolio.positions[(EX, PERP)]
    venue.settle_funding(D("0.0001"), stamp_lag_ms=600_000)
    await engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="sell", amount="0.1", reduce_only=True
    )
    await wait_until(lambda: pos.amount == 0, timeout=10)
    trip = engine.portfolio.trades[-1]
    assert await engine.funding.sync() == 0
    assert engine.portfolio.trades[-1] == trip


@pytest.mark.asyncio
async def test_funding_recorded_after_a_sync_that_followed_the_close_still_lands(
    live: Live,
) -> None:
    """The long closes just after the funding time and a sync runs before the venue has
    written the payment into its income history; the payment appears (stamped 2 s after the
    funding time) before the next sync, which still asks for the closed trip and books it."""
    engine, venue = live.engine, live.venue
    await enter(engine, "buy", stop_loss="19400")
    pos = engine.portfolio.positions[(EX, PERP)]
    funding_time = now_ms()
    await engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="sell", amount="0.1", reduce_only=True
    )
    await wait_until(lambda: pos.amount == 0, timeout=10)
    assert await engine.funding.sync() == 0  # not in the income history yet
    paid = D("-0.2")  # what the venue pays the long it held at the funding time
    venue.book.wallet += paid
    venue.book.add_income(VENUE_ID, "FUNDING_FEE", paid, funding_time + 2000)
    trip = engine.portfolio.trades[-1]
    assert await engine.funding.sync() == 1
    assert engine.portfolio.trades[-1].pnl == trip.pnl + paid
    assert engine.portfolio.cash == venue.book.wallet
