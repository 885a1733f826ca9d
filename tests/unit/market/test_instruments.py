"""InstrumentSpec: units of linear and inverse markets, order sizing, symbols, validation."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cryptomon.market.instruments import (
    InstrumentKind,
    InstrumentSpec,
    decimal_or_none,
    expiry_code,
    normalized_symbol,
    step_from_decimals,
)

SPOT = InstrumentSpec(
    exchange="binance",
    symbol="BTC-USDT",
    kind=InstrumentKind.SPOT,
    base="BTC",
    quote="USDT",
    tick_size=Decimal("0.01"),
    lot_size=Decimal("0.00001"),
    min_qty=Decimal("0.00001"),
    min_notional=Decimal(5),
)
LINEAR = InstrumentSpec(
    exchange="huobi_swap",
    symbol="BTC-USDT-PERP",
    kind=InstrumentKind.PERPETUAL,
    base="BTC",
    quote="USDT",
    settle="USDT",
    contract_size=Decimal("0.001"),
    tick_size=Decimal("0.1"),
    lot_size=Decimal(1),
    min_qty=Decimal(1),
)
INVERSE = InstrumentSpec(
    exchange="okx",
    symbol="BTC-USD-PERP",
    kind=InstrumentKind.PERPETUAL,
    base="BTC",
    quote="USD",
    settle="BTC",
    contract_size=Decimal(100),
    inverse=True,
    tick_size=Decimal("0.1"),
    lot_size=Decimal(1),
    min_qty=Decimal(1),
)


def test_spot_amount_is_the_quantity_and_notional_is_price_times_amount() -> None:
    """On spot the venue quantity is base units; notional = amount x price."""
    assert SPOT.base_amount(0.5, 60_000.0) == 0.5
    assert SPOT.notional(0.5, 60_000.0) == 30_000.0


def test_linear_contracts_scale_by_contract_size() -> None:
    """A linear contract is contract_size base units: 2,000 contracts of 0.001 BTC = 2 BTC."""
    assert LINEAR.base_amount(2000, 40_000.0) == pytest.approx(2.0)
    assert LINEAR.notional(2000, 40_000.0) == pytest.approx(80_000.0)


def test_inverse_contracts_are_quote_units() -> None:
    """1,000 inverse contracts of 100 USD are worth 100,000 USD, i.e. 2.5 BTC at 40,000."""
    assert INVERSE.notional(1000, 40_000.0) == 100_000.0
    assert INVERSE.base_amount(1000, 40_000.0) == pytest.approx(2.5)


def test_decimal_units_match_float_units() -> None:
    """The exact Decimal units of fills agree with the float units of market data."""
    for spec in (SPOT, LINEAR, INVERSE):
        qty, price = Decimal(37), Decimal("41234.5")
        assert float(spec.amount_of(qty, price)) == pytest.approx(spec.base_amount(37, 41234.5))
        assert float(spec.notional_of(qty, price)) == pytest.approx(spec.notional(37, 41234.5))


def test_order_sizing_is_the_reverse_rounded_down_to_the_lot() -> None:
    """qty_for_amount / qty_for_notional invert the units and never round up."""
    price = Decimal(40_000)
    assert SPOT.qty_for_notional(Decimal(1000), price) == Decimal("0.025")
    assert SPOT.qty_for_amount(Decimal("0.0250099"), price) == Decimal("0.02500")
    assert LINEAR.qty_for_amount(Decimal("2.0009"), price) == Decimal(2000)
    assert LINEAR.qty_for_notional(Decimal(80_000), price) == Decimal(2000)
    assert INVERSE.qty_for_notional(Decimal(100_050), price) == Decimal(1000)
    assert INVERSE.qty_for_amount(Decimal("2.5"), price) == Decimal(1000)


def test_round_price_snaps_to_the_tick() -> None:
    """Prices snap to the nearest tick; a spec without a tick leaves them alone."""
    assert SPOT.round_price(Decimal("60000.126")) == Decimal("60000.13")
    no_tick = InstrumentSpec(
        exchange="x", symbol="A-B", kind=InstrumentKind.SPOT, base="A", quote="B"
    )
    assert no_tick.round_price(Decimal("1.23456")) == Decimal("1.23456")
    assert no_tick.round_qty(Decimal("1.23456")) == Decimal("1.23456")


def test_order_problem_names_the_violated_limit() -> None:
    """An order below min_qty or min_notional is explained; a valid one is not."""
    assert SPOT.order_problem(Decimal("0.000001"), Decimal(60_000)) == (
        "quantity 0.000001 is below the minimum 0.00001 of BTC-USDT"
    )
    problem = SPOT.order_problem(Decimal("0.00005"), Decimal(60_000))
    assert problem is not None
    assert "order value 3.00000 USDT is below the minimum 5 USDT" in problem
    assert SPOT.order_problem(Decimal("0.001"), Decimal(60_000)) is None


def test_bad_contract_size_is_rejected_with_its_market() -> None:
    """A zero contract size or a contract-sized spot market is a clear error."""
    with pytest.raises(ValueError, match="okx BTC-USD-PERP: contract_size 0; expected a positive"):
        InstrumentSpec(
            exchange="okx",
            symbol="BTC-USD-PERP",
            kind=InstrumentKind.PERPETUAL,
            base="BTC",
            quote="USD",
            contract_size=Decimal(0),
        )
    with pytest.raises(ValueError, match="spot market is linear with contract_size 1"):
        InstrumentSpec(
            exchange="x",
            symbol="A-B",
            kind=InstrumentKind.SPOT,
            base="A",
            quote="B",
            inverse=True,
        )


def test_normalized_symbols_follow_cryptofeed() -> None:
    """Spot, perpetual, dated future and option symbols are spelled as cryptofeed does."""
    may27 = datetime(2022, 5, 27, 8, tzinfo=UTC).timestamp()
    assert normalized_symbol("BTC", "USDT", InstrumentKind.SPOT) == "BTC-USDT"
    assert normalized_symbol("BTC", "USD", InstrumentKind.PERPETUAL) == "BTC-USD-PERP"
    assert normalized_symbol("BTC", "USD", InstrumentKind.FUTURE, expiry=may27) == "BTC-USD-22K27"
    option = normalized_symbol(
        "BTC", "USD", InstrumentKind.OPTION, expiry=may27, strike="22000", option_type="C"
    )
    assert option == "BTC-USD-22000-22K27-C"
    assert expiry_code(datetime(2023, 1, 6, tzinfo=UTC).timestamp()) == "23F06"
    with pytest.raises(ValueError, match="BTC-USD: a future needs an expiry"):
        normalized_symbol("BTC", "USD", InstrumentKind.FUTURE)


def test_venue_numbers_become_plain_decimals() -> None:
    """Venue strings and floats become exact Decimals; empty or zero means unknown."""
    assert decimal_or_none("0.00010000") == Decimal("0.0001")
    assert str(decimal_or_none(100.0)) == "100"
    assert decimal_or_none(0.001) == Decimal("0.001")
    assert decimal_or_none("") is None
    assert decimal_or_none("0") is None
    assert step_from_decimals(3) == Decimal("0.001")
    assert step_from_decimals(None) is None
