"""In-memory 1-minute candles aggregated from trades (OHLCV, trade count, buy/sell volume).

A bar closes when a trade of a later interval arrives for its market, or when the newest
trade time seen on any market is two intervals past its start (so a market that went quiet
still gets its bar closed; "data time" works the same live and in replay). Open bars are
also handed out while they grow (``closed: false``), so a reader sees the current minute.
"""

from __future__ import annotations

from typing import Any

from cryptomon.events import Trade
from cryptomon.store.types import utc

INTERVAL_S = 60.0
INTERVAL = "1m"


class _Bar:
    __slots__ = ("buy", "close", "count", "high", "low", "open", "sell", "start", "volume")

    def __init__(self, start: float, price: float) -> None:
        self.start = start
        self.open = self.high = self.low = self.close = price
        self.volume = self.buy = self.sell = 0.0
        self.count = 0


class CandleAggregator:
    """Per (exchange, symbol) bars; :meth:`take` returns rows for ``repos.upsert_candles``."""

    def __init__(self, interval_s: float = INTERVAL_S, interval: str = INTERVAL) -> None:
        self.interval_s = interval_s
        self.interval = interval
        self._bars: dict[tuple[str, str], _Bar] = {}
        self._closed: list[dict[str, Any]] = []
        self._dirty: set[tuple[str, str]] = set()
        self.data_time = 0.0
        self.late = 0

    def add(self, ev: Trade) -> None:
        key = (ev.exchange, ev.symbol)
        ts = ev.ts
        start = ts - ts % self.interval_s
        bar = self._bars.get(key)
        price = ev.price
        if bar is None or start > bar.start:
            if bar is not None:
                self._closed.append(self._row(key, bar, closed=True))
            bar = self._bars[key] = _Bar(start, price)
        elif start < bar.start:
            self.late += 1
            return
        if price > bar.high:
            bar.high = price
        elif price < bar.low:
            bar.low = price
        bar.close = price
        amount = ev.amount
        bar.volume += amount
        if ev.side == "buy":
            bar.buy += amount
        else:
            bar.sell += amount
        bar.count += 1
        self._dirty.add(key)
        if ts > self.data_time:  # noqa: PLR1730 - hot path: a branch is cheaper than max()
            self.data_time = ts

    def _row(self, key: tuple[str, str], bar: _Bar, *, closed: bool) -> dict[str, Any]:
        return {
            "exchange": key[0],
            "symbol": key[1],
            "interval": self.interval,
            "open_time": utc(bar.start),
            "close_time": utc(bar.start + self.interval_s),
            "open": bar.open,
            "high": bar.high,
            "low": bar.low,
            "close": bar.close,
            "volume": bar.volume,
            "trade_count": bar.count,
            "buy_volume": bar.buy,
            "sell_volume": bar.sell,
            "closed": closed,
            "source": "trades",
        }

    @property
    def pending(self) -> int:
        return len(self._closed) + len(self._dirty)

    def take(self, *, include_open: bool = True) -> list[dict[str, Any]]:
        """Closed bars since the last call, plus (by default) open bars that changed."""
        horizon = self.data_time - 2 * self.interval_s
        for key, bar in list(self._bars.items()):
            if bar.start <= horizon:
                self._closed.append(self._row(key, bar, closed=True))
                del self._bars[key]
                self._dirty.discard(key)
        rows, self._closed = self._closed, []
        if include_open:
            rows.extend(
                self._row(k, self._bars[k], closed=False) for k in self._dirty if k in self._bars
            )
            self._dirty.clear()
        return rows

    def restore(self, rows: list[dict[str, Any]]) -> None:
        """Put back rows a failed write took (they are re-sent on the next take)."""
        self._closed[:0] = [r for r in rows if r["closed"]]
        for r in rows:
            if not r["closed"]:
                self._dirty.add((r["exchange"], r["symbol"]))
