"""Comparable markets on other venues: the bad-print guard's last-resort price reference.

A :class:`VenueBoard` is shared by every feed of the process (one per
:class:`~cryptomon.market.inputs.MarketInputs`). Each guard's per-market state joins it once,
when the guard first sees the market, under the market's **comparison key**: its base and
quote currency from the cryptofeed-normalized symbol (``BTC-USDT`` and ``BTC-USDT-PERP``:
``("BTC", "USDT")``; an inverse ``BTC-USD-PERP`` quotes its price in USD per BTC as
``BTC-USD`` spot does). Spot and perpetual markets only: a dated future's basis and an option's
premium are no reference, and a renamed multiple (``1000SHIB``) is another base, so another
key. A venue's own spot and perpetual of a pair are comparable too. The board gives the state
the dict of its comparable markets (every venue's state under the key, by
``(exchange, symbol)``); reading a reference is then a walk over those few other venues' last
accepted prices, on the guard's slow path only (a print outside its band, or a market's first
prints), never per event.
"""

from __future__ import annotations

from typing import Any

Peers = dict[tuple[str, str], Any]  # (exchange, symbol) -> that venue's SymbolQuality


def comparison_key(symbol: str) -> tuple[str, str] | None:
    """``(base, quote)`` of a spot or perpetual market's normalized symbol; None for the rest
    (dated futures, options, names that are not ``BASE-QUOTE[-PERP]``)."""
    parts = symbol.split("-")
    pair = len(parts) == 2 or (len(parts) == 3 and parts[2] == "PERP")
    return (parts[0], parts[1]) if pair and parts[0] and parts[1] else None


class VenueBoard:
    """Every guard's markets grouped by comparison key (see the module docstring)."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], Peers] = {}

    def join(self, exchange: str, symbol: str, state: Any) -> Peers | None:
        """Register ``state`` (a guard's market) and return its group (None: no comparable
        key). A guard rebuilt for the same exchange (config reload) replaces its markets."""
        key = comparison_key(symbol)
        if key is None:
            return None
        group = self._groups.setdefault(key, {})
        group[exchange, symbol] = state
        return group

    def group(self, symbol: str) -> Peers:
        """The markets comparable to ``symbol`` (empty: none, or no comparable key)."""
        key = comparison_key(symbol)
        return {} if key is None else dict(self._groups.get(key, {}))
