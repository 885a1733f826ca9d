"""The simulator's own instrument specs: ``BASE-QUOTE`` is a spot market, ``BASE-QUOTE-PERP``
a USD-M style linear perpetual (one base unit per contract, settled in the quote); tick and
lot as the SimExchange publishes them, the minimum order value as its ``NOTIONAL`` filter."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
from cryptomon.sim.market import DEFAULT_SPECS, default_spec

PERP_SUFFIX = "-PERP"
SIM_MIN_NOTIONAL = Decimal(5)  # the default of cryptomon.sim.venue.install(min_notional=)


def simulator_spec(symbol: str, *, exchange: str = "simulator") -> InstrumentSpec:
    """The spec of one simulated market (a symbol without a built-in spec gets the generic
    one the SimExchange would serve)."""
    perpetual = symbol.endswith(PERP_SUFFIX)
    pair = symbol.removesuffix(PERP_SUFFIX)
    model = default_spec(pair)
    base, quote = model.base, model.quote
    return InstrumentSpec(
        exchange=exchange,
        symbol=symbol,
        kind=InstrumentKind.PERPETUAL if perpetual else InstrumentKind.SPOT,
        base=base,
        quote=quote,
        settle=quote if perpetual else None,
        tick_size=Decimal(str(model.tick)),
        lot_size=Decimal(f"{model.lot:.8f}").normalize(),
        min_qty=Decimal(f"{model.lot:.8f}").normalize(),
        min_notional=SIM_MIN_NOTIONAL,
    )


def simulator_specs(
    symbols: Iterable[str] | None = None, *, exchange: str = "simulator"
) -> list[InstrumentSpec]:
    """Specs of ``symbols`` (default: every built-in market, spot and perpetual)."""
    if symbols is None:
        pairs = [spec.symbol for spec in DEFAULT_SPECS]
        symbols = pairs + [pair + PERP_SUFFIX for pair in pairs]
    return [simulator_spec(symbol, exchange=exchange) for symbol in symbols]
