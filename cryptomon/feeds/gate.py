"""The converter's market collaborator: units from the instrument specs and the quality
guard's verdicts (DESIGN.md section 1: ``raw -> market/``), for one exchange feed.

:class:`MarketGate` caches each symbol's :class:`~cryptomon.market.units.SymbolUnits` (looked
up once; None = unknown spec), publishes trades per the guard's verdict (as is, flagged
``bad_print``, held to the end of the loop turn and flagged ``historical`` oldest first, or
dropped as a duplicate), and judges and publishes the conflated book tops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptomon.events import Event, FlaggedTrade, Trade
from cryptomon.feeds.booktop import BookState, book_top
from cryptomon.feeds.fastevents import factory
from cryptomon.market.quality import QualityGuard
from cryptomon.market.units import MarketUnits, SymbolUnits

UNRESOLVED: Any = object()


# the order in which ``flagged`` passes the fields (checked by ``factory``)
_new_flagged = factory(FlaggedTrade, ("exchange", "symbol", "ts", "ts_recv", "trade", "flag"))


def flagged(event: Trade, flag: str) -> FlaggedTrade:
    """``event`` kept away from detectors and brokers, with why."""
    return _new_flagged(event.exchange, event.symbol, event.ts, event.ts_recv, event, flag)


def _trade_ts(event: Trade) -> float:
    return event.ts


class MarketGate:
    """Units and quality for one feed; see the module docstring."""

    def __init__(
        self,
        exchange: str,
        *,
        publish: Callable[[Event], None],
        schedule_flush: Callable[[], None],
        units: MarketUnits | None = None,
        quality: QualityGuard | None = None,
    ) -> None:
        self.exchange = exchange
        self.units = units
        self.quality = quality
        self.unit_of: dict[str, SymbolUnits | None] = {}  # read inline by the converter
        self.history: list[Trade] = []  # historical trades of this loop turn
        # a symbol's current book mid, read only by the rare channels (an inverse contract's
        # open interest in base units is counted at it); set by the converter
        self.mid_of: Callable[[str], float | None] = lambda _symbol: None
        self._publish = publish
        self._schedule_flush = schedule_flush

    @property
    def active(self) -> bool:
        """False when there is neither a registry nor a guard (raw venue data)."""
        return self.units is not None or self.quality is not None

    def unit(self, symbol: str) -> SymbolUnits | None:
        """``symbol``'s units from the registry, looked up once (None: unknown spec)."""
        units = self.units
        unit = None if units is None else units.units(self.exchange, symbol)
        self.unit_of[symbol] = unit
        return unit

    def forget_units(self) -> None:
        """Look every symbol's units up again (the specs were refreshed)."""
        self.unit_of.clear()

    def usd(self, unit: SymbolUnits, notional: float, now: float) -> float | None:
        units = self.units
        return None if units is None else units.usd(unit, notional, now)

    def values(
        self, symbol: str, qty: float, price: float, now: float
    ) -> tuple[float, float | None, float | None, float | None]:
        """``(amount, contracts, notional, notional_usd)`` of ``qty`` venue units (off the
        trade hot path: liquidations)."""
        unit = self.unit_of.get(symbol, UNRESOLVED)
        if unit is UNRESOLVED:
            unit = self.unit(symbol)
        if unit is None:
            return qty, None, None, None
        notional = unit.notional(qty, price)
        usd = notional if unit.usd else self.usd(unit, notional, now)
        return unit.amount(qty, price), qty if unit.contracts_differ else None, notional, usd

    def open_interest(self, symbol: str, qty: float) -> tuple[float, float | None, float | None]:
        """``(open_interest, contracts, notional)`` of ``qty`` venue units of open interest:
        base units by the spec (linear: no price needed; inverse: at the current book mid, NaN
        before a book was seen), the contracts where they differ, the quote value (an
        inverse contract's is its face value; a linear one's at the latest mid, else None)."""
        unit = self.unit_of.get(symbol, UNRESOLVED)
        if unit is UNRESOLVED:
            unit = self.unit(symbol)
        if unit is None:
            return qty, None, None
        mid = self.mid_of(symbol)
        contracts = qty if unit.contracts_differ else None
        if unit.inverse:
            base = unit.amount(qty, mid) if mid else float("nan")
            return base, contracts, unit.notional(qty, 1.0)
        return unit.amount(qty, 1.0), contracts, None if mid is None else unit.notional(qty, mid)

    def judged(self, event: Trade, verdict: str) -> bool:
        """Publish a trade per the quality verdict: as is, flagged, later (history: True, it is
        sorted with the rest of its batch at the end of the loop turn) or not at all."""
        if verdict == "ok":
            self._publish(event)
        elif verdict == "historical":
            self.history.append(event)
            self._schedule_flush()
            return True
        elif verdict == "bad_print":
            self._publish(flagged(event, "bad_print"))
        # "duplicate": dropped (counted by the guard)
        return False

    def flush_history(self) -> None:
        """Publish this turn's historical trades flagged, oldest first (venues send
        newest-first batches)."""
        history, self.history = self.history, []
        history.sort(key=_trade_ts)
        for event in history:
            self._publish(flagged(event, "historical"))

    def publish_tops(self, dirty: dict[str, BookState]) -> int:
        """One BookTop per dirty symbol, in base units, unless the guard quarantines it;
        feeds the USD rates. Returns how many were published."""
        published = 0
        exchange = self.exchange
        quality = self.quality
        judge = None if quality is None else quality.book
        units = self.units
        observe = None if units is None else units.rates.observe
        unit_of = self.unit_of
        publish = self._publish
        for symbol, state in dirty.items():
            unit = unit_of.get(symbol, UNRESOLVED)
            if unit is UNRESOLVED:
                unit = self.unit(symbol)
            top = book_top(state, exchange, symbol, unit)
            state.pending = 0
            if judge is not None and not judge(symbol, top.bid, top.ask, top.ts_recv):
                continue  # quarantined: counted by the guard
            if observe is not None:
                observe(symbol, (top.bid + top.ask) * 0.5, top.ts_recv)
            publish(top)
            published += 1
        return published
