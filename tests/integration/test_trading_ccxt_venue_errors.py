"""Venue refusals through the real ccxt code on the simulator are the ccxt exceptions they
are against Binance's own hosts (the rewritten origin is classified as the real one): a
reduce-only order the USD-M venue refuses (-2022) and an order refused for insufficient
margin (-2019) are rejected at once with the venue's message, never settled by a lookup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from tests.usdm import EX, PERP, VENUE_ID, Live, enter, start_live

D = Decimal
KEY, SECRET = "errors-key", "errors-secret"


@pytest_asyncio.fixture
async def live() -> AsyncIterator[Live]:
    rig = await start_live(key=KEY, secret=SECRET, seed=5, native=False, allow_short=True)
    try:
        yield rig
    finally:
        await rig.stop()


def lookups_after_placing(live: Live) -> list[str]:
    """The order lookups the venue saw after the (one) placement."""
    calls = live.venue.requests
    [placed] = [i for i, (m, p) in enumerate(calls) if (m, p) == ("POST", "/fapi/v1/order")]
    return [p for m, p in calls[placed:] if m == "GET" and p == "/fapi/v1/order"]


@pytest.mark.asyncio
async def test_a_reduce_only_order_the_venue_refuses_is_rejected_at_once(live: Live) -> None:
    """The engine holds a 0.1 long the venue no longer has (closed there by hand): the
    reduce-only close is refused with -2022 ReduceOnly Order is rejected, which is ccxt's
    InvalidOrder as on fapi.binance.com; the order is REJECTED at once with the venue's
    message and never looked up (its outcome was never unknown)."""
    await enter(live.engine, "buy", stop_loss="19400")
    live.venue.book.positions[VENUE_ID].qty = D(0)
    live.venue.requests.clear()
    out = await live.engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="sell", amount="0.1", reduce_only=True
    )
    assert out["state"] == "rejected"
    assert "InvalidOrder" in out["reason"]
    assert "ReduceOnly Order is rejected." in out["reason"]
    assert lookups_after_placing(live) == []


@pytest.mark.asyncio
async def test_an_order_the_venue_refuses_for_margin_is_rejected_at_once(live: Live) -> None:
    """The venue's wallet holds 100 USDT: a 0.1 long at 20000 and 5x needs 400 of margin and
    is refused with -2019 Margin is insufficient, which is ccxt's InsufficientFunds as on
    fapi.binance.com; the order is REJECTED at once with the venue's message, no lookup."""
    live.venue.book.wallet = D(100)
    live.venue.requests.clear()
    out = await enter(live.engine, "buy", stop_loss="19400")
    assert out["state"] == "rejected"
    assert "InsufficientFunds" in out["reason"]
    assert "Margin is insufficient." in out["reason"]
    assert lookups_after_placing(live) == []
    assert live.venue.book.orders == []
