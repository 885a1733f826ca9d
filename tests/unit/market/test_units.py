"""Units from the spec: base amounts, contracts beside them, quote and USD notionals."""

from __future__ import annotations

from decimal import Decimal

from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.units import MarketUnits, SymbolUnits, UsdRates

USD_LIKE = frozenset({"USD", "USDT"})


def spec(symbol: str, **kw: object) -> InstrumentSpec:
    base, quote = symbol.split("-")[:2]
    kind = InstrumentKind.PERPETUAL if symbol.endswith("-PERP") else InstrumentKind.SPOT
    return InstrumentSpec(exchange="x", symbol=symbol, kind=kind, base=base, quote=quote, **kw)  # type: ignore[arg-type]


def test_inverse_contracts_become_coins_and_usd() -> None:
    """1,000 inverse contracts of 1 USD at 32,175 are 1,000 USD, not 32 million."""
    unit = SymbolUnits(
        spec("BTC-USD-PERP", contract_size=Decimal(1), inverse=True), usd_like=USD_LIKE
    )
    assert unit.notional(1000, 32175.0) == 1000.0
    assert unit.amount(1000, 32175.0) == 1000 / 32175.0
    assert unit.contracts_differ
    assert unit.quote == "USD"
    assert unit.usd


def test_linear_contract_size_scales_amount() -> None:
    """A linear perpetual of 0.01 coin per contract: 200 contracts at 50 are 2 coins, 100 USDT."""
    unit = SymbolUnits(spec("ETH-USDT-PERP", contract_size=Decimal("0.01")), usd_like=USD_LIKE)
    assert (unit.amount(200, 50.0), unit.notional(200, 50.0)) == (2.0, 100.0)


def test_spot_has_no_contract_count() -> None:
    """On spot the amount is the venue quantity and no contract count is kept beside it."""
    unit = SymbolUnits(spec("ETH-BTC"), usd_like=USD_LIKE)
    assert not unit.contracts_differ
    assert not unit.usd


def test_usd_rate_from_a_fresh_mid_and_none_when_old() -> None:
    """A BTC quote converts through the latest BTC-USDT mid no older than max_age_s."""
    rates = UsdRates(usd_quotes=["USDT"], max_age_s=60)
    assert rates.rate("USDT", 0.0) == 1.0
    assert rates.rate("BTC", 0.0) is None
    rates.observe("BTC-USDT-PERP", 30000.0, 100.0)
    assert rates.rate("BTC", 150.0) == 30000.0
    assert rates.rate("BTC", 161.0) is None
    rates.observe("ETH-BTC", 0.05, 100.0)  # not a USD price
    assert rates.rate("ETH", 101.0) is None


def test_unknown_spec_is_reported_once_and_yields_no_units() -> None:
    """A market without spec gets no units and is listed by ``registry.unknown()``."""
    registry = InstrumentRegistry()
    units = MarketUnits(registry=registry)
    assert units.units("x", "NEW-USDT") is None
    assert registry.unknown() == {("x", "NEW-USDT")}
    registry.add([spec("NEW-USDT")])
    units.forget()
    unit = units.units("x", "NEW-USDT")
    assert unit is not None
    assert units.usd(unit, 5.0, 0.0) == 5.0
