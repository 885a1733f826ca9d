"""Latest market state per (exchange, symbol), kept in memory from the hub.

An inline hub subscriber that remembers the last BookTop, BookSnapshot and Ticker, a bounded
ring of recent trades, and whether the symbol's feed is stale (from ``FeedStatus``). The API
reads it for ``/market/*``; the order engine reads it for marks, paper fills and the
"trading pauses while the feed is stale" rule.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from cryptomon.decimals import decimal_mid, float_decimal
from cryptomon.events import BookSnapshot, BookTop, FeedStatus, Ticker, Trade
from cryptomon.hub import Hub
from cryptomon.market.instruments import InstrumentSpec
from cryptomon.market.registry import InstrumentRegistry

_Key = tuple[str, str]
_STALE_STATES = frozenset({"stale", "disconnected", "error"})


class MarketState:
    """What the daemon currently knows about each market."""

    name = "market-state"

    def __init__(
        self, *, hub: Hub, trades_kept: int = 200, instruments: InstrumentRegistry | None = None
    ) -> None:
        self.trades_kept = trades_kept
        self.instruments = instruments  # specs (None: every market counts as known)
        self._delisted: set[_Key] = set()  # for good: a reconnection does not clear these
        self._tops: dict[_Key, BookTop] = {}
        self._snapshots: dict[_Key, BookSnapshot] = {}
        self._tickers: dict[_Key, Ticker] = {}
        self._trades: dict[_Key, deque[Trade]] = {}
        # stale markers: (exchange, "") marks the whole exchange connection
        self._stale: set[_Key] = set()
        hub.subscribe(BookTop, self._on_top, name="market-state.top")
        hub.subscribe(BookSnapshot, self._on_snapshot, name="market-state.snapshot")
        hub.subscribe(Ticker, self._on_ticker, name="market-state.ticker")
        hub.subscribe(Trade, self._on_trade, name="market-state.trade")
        hub.subscribe(FeedStatus, self._on_status, name="market-state.status")

    # ------------------------------------------------------------------ hub handlers

    def _on_top(self, ev: BookTop) -> None:
        self._tops[(ev.exchange, ev.symbol)] = ev

    def _on_snapshot(self, ev: BookSnapshot) -> None:
        self._snapshots[(ev.exchange, ev.symbol)] = ev

    def _on_ticker(self, ev: Ticker) -> None:
        self._tickers[(ev.exchange, ev.symbol)] = ev

    def _on_trade(self, ev: Trade) -> None:
        key = (ev.exchange, ev.symbol)
        ring = self._trades.get(key)
        if ring is None:
            ring = self._trades[key] = deque(maxlen=self.trades_kept)
        ring.append(ev)

    def _on_status(self, ev: FeedStatus) -> None:
        key = (ev.exchange, ev.symbol)
        if ev.status == "delisted":
            self._delisted.add(key)
        elif ev.status in _STALE_STATES:
            self._stale.add(key)
        elif ev.status == "live":
            # a symbol's own "live" clears its marker; the connection's "live" (a reconnect)
            # clears the connection's only: a symbol still silent stays stale until its data
            self._stale.discard(key)

    # ------------------------------------------------------------------ queries

    def top(self, exchange: str, symbol: str) -> BookTop | None:
        return self._tops.get((exchange, symbol))

    def snapshot(self, exchange: str, symbol: str) -> BookSnapshot | None:
        return self._snapshots.get((exchange, symbol))

    def ticker(self, exchange: str, symbol: str) -> Ticker | None:
        return self._tickers.get((exchange, symbol))

    def trades(self, exchange: str, symbol: str, limit: int = 100) -> list[Trade]:
        """Most recent trades, newest last."""
        ring = self._trades.get((exchange, symbol))
        if not ring:
            return []
        return list(ring)[-limit:]

    def mid(self, exchange: str, symbol: str) -> float | None:
        """Book mid, else ticker mid, else the last trade price."""
        top = self._tops.get((exchange, symbol))
        if top is not None and top.bid > 0 and top.ask > 0:
            return (top.bid + top.ask) / 2
        tick = self._tickers.get((exchange, symbol))
        if tick is not None and tick.bid > 0 and tick.ask > 0:
            return (tick.bid + tick.ask) / 2
        ring = self._trades.get((exchange, symbol))
        return ring[-1].price if ring else None

    def decimal_mid(self, exchange: str, symbol: str) -> Decimal | None:
        """:meth:`mid` as an exact Decimal, the price money is marked, sized and checked
        at: the mid of the bid and ask as quoted (:func:`~cryptomon.decimals.decimal_mid`:
        59976.49 for 59976.48 / 59976.50, where the float mid is 59976.490000000005), else
        the last trade price as it prints."""
        top = self._tops.get((exchange, symbol))
        if top is not None and top.bid > 0 and top.ask > 0:
            return decimal_mid(top.bid, top.ask)
        tick = self._tickers.get((exchange, symbol))
        if tick is not None and tick.bid > 0 and tick.ask > 0:
            return decimal_mid(tick.bid, tick.ask)
        ring = self._trades.get((exchange, symbol))
        return float_decimal(ring[-1].price) if ring else None

    def is_stale(self, exchange: str, symbol: str) -> bool:
        """True while the symbol's feed (or its whole exchange connection) is not live, and
        for good once the symbol is delisted."""
        key = (exchange, symbol)
        return key in self._stale or (exchange, "") in self._stale or key in self._delisted

    def is_delisted(self, exchange: str, symbol: str) -> bool:
        return (exchange, symbol) in self._delisted

    def spec(self, exchange: str, symbol: str) -> InstrumentSpec | None:
        """The market's instrument spec, or None when unknown (risk refuses to size on it)."""
        return None if self.instruments is None else self.instruments.get(exchange, symbol)

    def spec_known(self, exchange: str, symbol: str) -> bool:
        """False only when instruments are tracked and this market has no spec."""
        return self.instruments is None or self.instruments.get(exchange, symbol) is not None

    def markets(self) -> list[tuple[str, str]]:
        """Every (exchange, symbol) seen so far."""
        keys = set(self._tops) | set(self._tickers) | set(self._trades) | set(self._snapshots)
        return sorted(keys)
