"""In-memory 1-minute candles aggregated from trades (OHLCV, trade count, buy/sell volume).

A bar closes when a trade of a later interval arrives for its market, or when the newest
trade time seen on any market is two intervals past its start (so a market that went quiet
still gets its bar closed; "data time" works the same live and in replay). Open bars are
also handed out while they grow (``closed: false``), so a reader sees the current minute.

A process knows only the trades it received: a restart in the middle of a minute would
replace that minute's stored row with the new run's part of it. The store writer reads the
row a run before stored for the minute its own run started in, once per market, and writes
that minute as :func:`continued` (the earlier part and the new one as one bar):
:class:`StoredBars`; a brain, which skips after a restart what it stored before, continues
any minute that way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cryptomon.events import Trade
from cryptomon.store.types import utc

INTERVAL_S = 60.0
INTERVAL = "1m"


class _Bar:
    __slots__ = (
        "buy",
        "close",
        "count",
        "dirty",
        "end",
        "high",
        "low",
        "open",
        "sell",
        "start",
        "volume",
    )

    def __init__(self, start: float, end: float, price: float) -> None:
        self.start = start
        self.end = end
        self.open = self.high = self.low = self.close = price
        self.volume = self.buy = self.sell = 0.0
        self.count = 0
        self.dirty = True


class CandleAggregator:
    """Per (exchange, symbol) bars; :meth:`take` returns rows for ``repos.upsert_candles``."""

    def __init__(
        self, interval_s: float = INTERVAL_S, interval: str = INTERVAL, max_closed: int = 0
    ) -> None:
        """``max_closed`` (> 0) bounds the closed bars waiting for :meth:`take` (the writer's
        database outage): beyond it the oldest is dropped and counted in ``dropped``. A
        closed bar waits as its own ``_Bar`` (~0.3 kB); the row dict (~0.9 kB with its two
        datetimes) is built by :meth:`take`."""
        self.interval_s = interval_s
        self.interval = interval
        self.max_closed = max_closed
        self._bars: dict[tuple[str, str], _Bar] = {}
        self._closed: deque[tuple[tuple[str, str], _Bar]] = deque()
        self.data_time = 0.0
        self.late = 0
        self.dropped = 0

    def add(self, ev: Trade) -> None:
        """Fold one trade into its market's bar (hot path: one dict lookup, no allocation
        unless a new bar starts)."""
        key = (ev.exchange, ev.symbol)
        ts = ev.ts
        price = ev.price
        bar = self._bars.get(key)
        if bar is None or ts >= bar.end:
            if bar is not None:
                if self.max_closed and len(self._closed) >= self.max_closed:
                    self._closed.popleft()
                    self.dropped += 1
                self._closed.append((key, bar))
            start = ts - ts % self.interval_s
            bar = self._bars[key] = _Bar(start, start + self.interval_s, price)
        elif ts < bar.start:
            self.late += 1
            return
        elif price > bar.high:
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
        bar.dirty = True
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

    def take(self, *, include_open: bool = True) -> list[dict[str, Any]]:
        """Closed bars since the last call, plus (by default) open bars that changed."""
        horizon = self.data_time - 2 * self.interval_s
        for key, bar in list(self._bars.items()):
            if bar.start <= horizon:
                self._closed.append((key, bar))
                del self._bars[key]
        row = self._row
        rows = [row(key, bar, closed=True) for key, bar in self._closed]
        self._closed.clear()
        if include_open:
            for key, bar in self._bars.items():
                if bar.dirty:
                    rows.append(self._row(key, bar, closed=False))
                    bar.dirty = False
        return rows


def _zero(value: Any) -> Any:
    return 0 if value is None else value


def continued(before: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    """``row`` (this run's bar of a minute, from trades) after ``before`` (the same minute's
    row a run before this one stored, from trades): the earlier open, the extremes of both,
    this run's close, volumes and counts summed. A new dict; ``row`` is left as it is (a
    write retried after an outage merges it again from the same two)."""
    out = dict(row)
    out["open"] = before["open"]
    out["high"] = max(before["high"], row["high"])
    out["low"] = min(before["low"], row["low"])
    for key in ("volume", "trade_count", "buy_volume", "sell_volume"):
        out[key] = _zero(before.get(key)) + _zero(row.get(key))
    return out


BarKey = tuple[str, str, datetime]
ReadBars = Callable[
    [AsyncSession, datetime, Iterable[tuple[str, str]]],
    Awaitable[dict[tuple[str, str], dict[str, Any]]],
]


class StoredBars:
    """This run's bars from trades continuing what a run before stored for the same minute
    (a restart mid-minute): the stored row is read once per market and minute, before this
    run first writes it (after, it would read this run's own part back). ``read`` is
    ``repos.stored_trade_bars``."""

    def __init__(self, read: ReadBars) -> None:
        self.read = read
        # the minutes continued: by default none; join() sets the ones a run joined in
        # progress (the one it started in, and those before it for trades that arrive late);
        # None: every minute (a brain that skips what it stored: store.positions)
        self.joined: frozenset[datetime] | None = frozenset()
        self._before: dict[BarKey, dict[str, Any] | None] = {}

    def join(self, now: float, minutes: int) -> None:
        """Continue the ``minutes`` minutes up to the one of ``now``."""
        minute = now - now % INTERVAL_S
        self.joined = frozenset(
            datetime.fromtimestamp(minute - k * INTERVAL_S, UTC) for k in range(minutes)
        )
        self._before = {}

    async def continued(
        self, session: AsyncSession, rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """``rows`` with those of the continued minutes merged into the stored rows."""
        joined = self.joined
        mine = [
            (r["exchange"], r["symbol"], r["open_time"])
            for r in rows
            if r["source"] == "trades" and (joined is None or r["open_time"] in joined)
        ]
        if not mine:
            return rows
        before = self._before
        for minute in {m for _, _, m in mine}:
            unread = {(e, s) for e, s, m in mine if m == minute and (e, s, m) not in before}
            if unread:
                stored = await self.read(session, minute, unread)
                for e, s in unread:  # kept if this transaction fails: the row is unchanged
                    before[e, s, minute] = stored.get((e, s))
        out = []
        for r in rows:
            key = (r["exchange"], r["symbol"], r["open_time"])
            earlier = before.get(key) if r["source"] == "trades" else None
            out.append(r if earlier is None else continued(earlier, r))
        return out

    def written(self, rows: list[dict[str, Any]]) -> None:
        """``rows`` are committed: when every minute is continued, forget the closed bars (a
        closed bar is not written again; one opened again for its minute reads it back)."""
        if self.joined is None:
            for r in rows:
                if r["closed"]:
                    self._before.pop((r["exchange"], r["symbol"], r["open_time"]), None)
