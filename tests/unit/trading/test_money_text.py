"""Money as the API, the CLI and the notifications show it: plain digits, one spelling per
value, never ``-0``, never an exponent, never rounded to the Decimal context's 28 digits."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cryptomon.notify.templates import plain_number
from cryptomon.trading.position import money
from tests.unit.trading.test_futures_paper import EX, PERP, build, quote
from tests.util import wait_until

D = Decimal


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (D("-0"), "0"),
        (D("-0.00"), "0"),
        (D("0E-8"), "0"),
        (D("-0E+3"), "0"),
        (D("1E+2"), "100"),
        (D("65000.10000000"), "65000.1"),
        (D("-1.50"), "-1.5"),
        (D("1E-8"), "0.00000001"),
        # 30 and 36 significant digits (NUMERIC(36, 18) holds 36): kept, not rounded to 28
        (D("123456789012345678901234567890.123"), "123456789012345678901234567890.123"),
        (D("123456789012345678.123456789012345678"), "123456789012345678.123456789012345678"),
        (D("-1.0000000000000000000000000001"), "-1.0000000000000000000000000001"),
    ],
)
def test_money_spells_each_value_one_way_exactly(value: Decimal, text: str) -> None:
    assert money(value) == text
    assert plain_number(value) == text  # the notifications' Decimals alike


@pytest.mark.asyncio
async def test_a_short_at_its_entry_price_shows_zero_pnl_not_minus_zero() -> None:
    """A paper short whose mark comes back to its entry: its unrealized PnL is 0 (the
    product of a negative amount and a zero move is Decimal -0), shown "0" by the API's
    positions, not "-0"."""
    engine, _broker, hub, clock = build()
    quote(hub, clock, 20000)
    await engine.start()
    await engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="sell", amount="0.1", stop_loss="20600"
    )
    pos = engine.portfolio.positions[(EX, PERP)]
    quote(hub, clock, float(pos.avg_price))
    await wait_until(lambda: pos.mark == pos.avg_price, message="marked at the entry")
    [shown] = engine.positions()
    assert shown["unrealized_pnl"] == "0"
    assert all(v != "-0" for v in shown.values())
    await engine.stop()
