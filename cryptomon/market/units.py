"""Units on market data (DESIGN.md convention 15): the per-symbol conversion the feed
converter applies to every Trade, BookTop and Liquidation, and the USD rates behind
``notional_usd``.

:class:`MarketUnits` is shared by every feed of the process. Per (exchange, symbol) it builds a
:class:`SymbolUnits` once from the instrument registry (a dict read, no I/O) and keeps it; a
market without a spec gets None (its events keep the venue quantity, ``notional`` None).
:class:`UsdRates` holds the latest mid of every ``QUOTE-USDT`` / ``QUOTE-USD`` market seen on
any venue; a quote that is not USD-like converts through one no older than ``max_age_s``.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptomon.config.market import DEFAULT_USD_QUOTES
from cryptomon.market.instruments import InstrumentSpec
from cryptomon.market.registry import InstrumentRegistry

_USD_LEGS = ("USDT", "USD")


class UsdRates:
    """USD value of one unit of a quote currency: 1 for USD-like quotes, else the latest fresh
    mid of ``QUOTE-USDT`` or ``QUOTE-USD`` (spot or perpetual, any venue)."""

    def __init__(self, *, usd_quotes: Iterable[str] = DEFAULT_USD_QUOTES, max_age_s: float = 60):
        self.usd_like = frozenset(quote.upper() for quote in usd_quotes)
        self.max_age_s = max_age_s
        self._mids: dict[str, tuple[float, float]] = {}  # base -> (mid, ts_recv)
        self._pairs: dict[str, str | None] = {}  # symbol -> base it prices in USD, or None

    def base_priced(self, symbol: str) -> str | None:
        """The base whose USD price ``symbol``'s mid gives (``ETH-USDT-PERP`` -> ``ETH``)."""
        base = self._pairs.get(symbol, "")
        if base == "":
            parts = symbol.split("-")
            ok = len(parts) >= 2 and parts[1] in _USD_LEGS and parts[0] not in self.usd_like
            ok = ok and (len(parts) == 2 or parts[2:] == ["PERP"])
            base = self._pairs[symbol] = parts[0] if ok else None
        return base

    def observe(self, symbol: str, mid: float, ts_recv: float) -> None:
        """Remember ``symbol``'s mid if it prices a currency in USD."""
        base = self._pairs.get(symbol, "")
        if base == "":
            base = self.base_priced(symbol)
        if base is not None and mid > 0:
            self._mids[base] = (mid, ts_recv)

    def rate(self, quote: str, now: float) -> float | None:
        """USD per unit of ``quote`` at ``now``, or None (no fresh mid)."""
        if quote in self.usd_like:
            return 1.0
        seen = self._mids.get(quote)
        if seen is None or now - seen[1] > self.max_age_s:
            return None
        return seen[0]


class SymbolUnits:
    """The float conversion of one market: venue quantity -> base amount and quote notional."""

    __slots__ = ("contracts_differ", "inverse", "quote", "size", "usd")

    def __init__(self, spec: InstrumentSpec, *, usd_like: frozenset[str]) -> None:
        self.size = float(spec.contract_size)
        self.inverse = spec.inverse
        self.quote = spec.quote
        self.usd = spec.quote in usd_like
        self.contracts_differ = spec.inverse or self.size != 1.0

    def amount(self, qty: float, price: float) -> float:
        """Base units of ``qty`` venue units at ``price``."""
        if self.inverse:
            return qty * self.size / price if price else 0.0
        return qty * self.size

    def notional(self, qty: float, price: float) -> float:
        """Quote value of ``qty`` venue units at ``price``."""
        if self.inverse:
            return qty * self.size
        return qty * self.size * price


class MarketUnits:
    """Per-symbol units from the registry plus the USD rates; see the module docstring."""

    def __init__(self, *, registry: InstrumentRegistry, rates: UsdRates | None = None) -> None:
        self.registry = registry
        self.rates = rates or UsdRates()
        self._units: dict[tuple[str, str], SymbolUnits | None] = {}

    def units(self, exchange: str, symbol: str) -> SymbolUnits | None:
        """The market's conversion, or None when its spec is unknown (asked again after
        :meth:`forget`, e.g. when a refresh brought new specs)."""
        key = (exchange, symbol)
        if key in self._units:
            return self._units[key]
        spec = self.registry.get(exchange, symbol)
        unit = None if spec is None else SymbolUnits(spec, usd_like=self.rates.usd_like)
        if spec is None:
            self.registry.note_unknown(exchange, symbol)
        self._units[key] = unit
        return unit

    def forget(self) -> None:
        """Drop the cached conversions (specs changed)."""
        self._units.clear()

    def usd(self, unit: SymbolUnits, notional: float, now: float) -> float | None:
        """``notional`` (in ``unit``'s quote) in USD, or None."""
        if unit.usd:
            return notional
        rate = self.rates.rate(unit.quote, now)
        return None if rate is None else notional * rate
