"""Instrument specs from ccxt's unified market structure (``exchange.load_markets()``).

ccxt documents each market as a dict with ``base``, ``quote``, ``settle``, ``type``
(spot/swap/future/option), ``linear``/``inverse``, ``contractSize``, ``expiry`` (ms),
``strike``/``optionType``, ``precision`` (``amount``/``price``: a step or a number of decimals
depending on the exchange's ``precisionMode``) and ``limits`` (``amount.min`` in contracts,
``cost.min`` in quote). Its symbols (``BTC/USD:BTC-220527``) become cryptofeed-normalized
ones (``BTC-USD-22K27``). cryptofeed keeps the venue's currency codes where ccxt renames them
(its ``commonCurrencies``: Binance ``YOYO`` is ccxt's ``YOYOW``), so that renaming is undone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

from cryptomon.market.instruments import (
    ONE,
    InstrumentKind,
    InstrumentSpec,
    decimal_or_none,
    normalized_symbol,
    step_from_decimals,
)

# ccxt.base.decimal_to_precision constants (ccxt documents them as these numbers)
DECIMAL_PLACES = 2
SIGNIFICANT_DIGITS = 3
TICK_SIZE = 4

_CCXT_KINDS = {
    "spot": InstrumentKind.SPOT,
    "swap": InstrumentKind.PERPETUAL,
    "future": InstrumentKind.FUTURE,
    "option": InstrumentKind.OPTION,
}
_OPTION_TYPES = {"call": "C", "put": "P"}


def _step(value: Any, precision_mode: int) -> Decimal | None:
    if value is None:
        return None
    if precision_mode == TICK_SIZE:
        return decimal_or_none(value)
    if precision_mode == DECIMAL_PLACES:
        return step_from_decimals(int(value))
    return None  # significant digits: no fixed step


def _strike(value: Any) -> str | None:
    if value is None:
        return None
    number = Decimal(str(value))
    return str(number.quantize(ONE) if number == number.to_integral_value() else number)


def _venue_code(market: dict[str, Any], side: str, renamed: Mapping[str, str]) -> str:
    """ccxt's currency code, or the venue's own where ccxt renamed it."""
    code, venue_id = market[side], market.get(f"{side}Id")
    if venue_id and venue_id != code and renamed.get(venue_id) == code:
        return str(venue_id)
    return str(code)


def spec_from_ccxt(
    exchange: str,
    market: dict[str, Any],
    *,
    precision_mode: int = TICK_SIZE,
    renamed: Mapping[str, str] | None = None,
) -> InstrumentSpec | None:
    """The spec of one ccxt market, or None for a kind this project does not trade
    (margin-only, index) or a contract without a size. ``renamed`` is the client's
    ``commonCurrencies`` (venue code -> ccxt code)."""
    kind = _CCXT_KINDS.get(market.get("type") or "")
    if kind is None:
        return None
    base = _venue_code(market, "base", renamed or {})
    quote = _venue_code(market, "quote", renamed or {})
    contract = kind is not InstrumentKind.SPOT
    size = decimal_or_none(market.get("contractSize")) if contract else ONE
    if size is None:
        return None
    expiry = market["expiry"] / 1000 if market.get("expiry") else None
    symbol = normalized_symbol(
        base,
        quote,
        kind,
        expiry=expiry,
        strike=_strike(market.get("strike")),
        option_type=_OPTION_TYPES.get(market.get("optionType") or ""),
    )
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    return InstrumentSpec(
        exchange=exchange,
        symbol=symbol,
        kind=kind,
        base=base,
        quote=quote,
        settle=market.get("settle") if contract else None,
        contract_size=size,
        inverse=bool(market.get("inverse")) and contract,
        tick_size=_step(precision.get("price"), precision_mode),
        lot_size=_step(precision.get("amount"), precision_mode),
        min_qty=decimal_or_none((limits.get("amount") or {}).get("min")),
        min_notional=decimal_or_none((limits.get("cost") or {}).get("min")),
        expiry=expiry,
    )


def specs_from_ccxt(
    exchange: str,
    markets: dict[str, dict[str, Any]],
    *,
    precision_mode: int = TICK_SIZE,
    renamed: Mapping[str, str] | None = None,
) -> list[InstrumentSpec]:
    """Specs of every tradable market of a ccxt ``markets`` dict (inactive ones left out)."""
    out: list[InstrumentSpec] = []
    for market in markets.values():
        if market.get("active") is False:
            continue
        spec = spec_from_ccxt(exchange, market, precision_mode=precision_mode, renamed=renamed)
        if spec is not None:
            out.append(spec)
    return out


def ccxt_loader(exchange: str, client: Any) -> Callable[[], Awaitable[list[InstrumentSpec]]]:
    """A venue loader for :class:`~cryptomon.market.registry.InstrumentRegistry`: calls
    ``await client.load_markets(True)`` on a ``ccxt.async_support`` exchange."""

    async def load() -> list[InstrumentSpec]:
        markets = await client.load_markets(True)
        return specs_from_ccxt(
            exchange,
            markets,
            precision_mode=client.precisionMode,
            renamed=client.commonCurrencies,
        )

    return load
