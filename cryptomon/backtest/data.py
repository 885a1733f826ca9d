"""Candle series for the backtest: numpy columns per market, parsed from files or rows.

Files (``download --from-file`` and ``backtest FILE``) are read by
:mod:`cryptomon.market.datafiles` (JSON, optionally gzipped, or CSV; trades or candles, told
apart by their rows); this module turns candle rows into a :class:`CandleSeries` and trades
into candles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import numpy as np

from cryptomon.market.datafiles import MAX_EPOCH_S, DataError, TradeRows

TIMEFRAMES = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "4h": 14400,
    "1d": 86400,
}


def timeframe_seconds(timeframe: str) -> int:
    """``1m`` -> 60; an unknown timeframe raises :class:`DataError` listing the known ones."""
    try:
        return TIMEFRAMES[timeframe]
    except KeyError:
        raise DataError(
            f"unknown timeframe {timeframe!r}; expected one of {', '.join(TIMEFRAMES)}"
        ) from None


Column = Sequence[Any]
"""A column of :func:`columns`: read by index, sliced, iterated."""


def columns(values: np.ndarray) -> Column:
    """An array's values as a read-only sequence of Python scalars: each item read by index
    (or slice, or iteration) is the ``int``, ``float`` or ``bool`` that ``values.tolist()``
    holds at that index. A memoryview of a copy (a snapshot, as a tuple was): made in one
    copy instead of a Python object per row (a year-long column took ~10-100 ms to turn
    into a tuple, and a run makes about a dozen), an item costs a few tens of nanoseconds
    more to read, and it holds no Python objects for the garbage collector to walk."""
    return cast(Column, np.array(values, copy=True).data.toreadonly())


@dataclass(frozen=True, slots=True)
class CandleSeries:
    """Candles of one market, oldest first; ``ts`` is the open time in epoch seconds."""

    exchange: str
    symbol: str
    timeframe: str
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @property
    def seconds(self) -> int:
        return timeframe_seconds(self.timeframe)

    def between(self, start: float | None, end: float | None) -> CandleSeries:
        """The candles opening in ``[start, end)`` (None: unbounded)."""
        lo = 0 if start is None else int(np.searchsorted(self.ts, start, side="left"))
        hi = len(self) if end is None else int(np.searchsorted(self.ts, end, side="left"))
        return CandleSeries(
            self.exchange,
            self.symbol,
            self.timeframe,
            self.ts[lo:hi],
            self.open[lo:hi],
            self.high[lo:hi],
            self.low[lo:hi],
            self.close[lo:hi],
            self.volume[lo:hi],
        )


def series_from_rows(
    rows: list[Any], *, exchange: str, symbol: str, timeframe: str
) -> CandleSeries:
    """Rows ``(open_time_s, o, h, l, c, v)`` -> a series sorted by time, duplicates dropped."""
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    _, keep = np.unique(arr[:, 0], return_index=True)
    arr = arr[keep]
    cols = [np.ascontiguousarray(arr[:, i]) for i in range(6)]
    return CandleSeries(exchange, symbol, timeframe, *cols)


def parse_candles(rows: list[Any], *, path: str, exchange: str, symbol: str) -> CandleSeries:
    """Candle rows (ms open time) -> a 1m.. series; the timeframe is the most common step."""
    out: list[tuple[float, ...]] = []
    for n, row in enumerate(rows):
        try:
            vals = tuple(float(v) for v in row[:6])
        except (TypeError, ValueError):
            vals = ()
        if (
            len(vals) != 6
            or not all(math.isfinite(v) for v in vals)
            or not 0 <= vals[0] / 1000.0 <= MAX_EPOCH_S
            or not _possible(*vals[1:])
        ):
            raise DataError(
                f"{path}: row {n + 1} is not a candle; expected "
                "[open_time_ms (1970..3000), open, high, low, close, volume] with prices > 0, "
                f"low <= open, close <= high and volume >= 0, got {str(row)[:80]}"
            )
        out.append((vals[0] / 1000.0, *vals[1:]))
    if not out:
        raise DataError(f"{path}: no rows (expected candles or trades)")
    _check_repeats(out, path)
    series = series_from_rows(out, exchange=exchange, symbol=symbol, timeframe="1m")
    return CandleSeries(
        exchange, symbol, infer_timeframe(series.ts), *(getattr(series, c) for c in _COLS)
    )


_COLS = ("ts", "open", "high", "low", "close", "volume")


def _possible(o: float, h: float, lo: float, c: float, v: float) -> bool:
    """Prices > 0, the low and high bounding the open and close, a volume >= 0."""
    return 0 < lo <= min(o, c) and max(o, c) <= h and v >= 0


def _check_repeats(rows: list[tuple[float, ...]], path: str) -> None:
    """A minute given twice must say the same both times (a repeat is dropped); two
    different candles at one open time are refused, naming both rows (1-based)."""
    seen: dict[float, int] = {}
    for n, row in enumerate(rows):
        first = seen.setdefault(row[0], n)
        if first != n and rows[first] != row:
            raise DataError(
                f"{path}: rows {first + 1} and {n + 1} open at the same time "
                f"({datetime.fromtimestamp(row[0], UTC):%Y-%m-%dT%H:%M:%S}Z) with different "
                "values; keep one of them"
            )


def infer_timeframe(ts: np.ndarray) -> str:
    """The known timeframe equal to the most common gap between open times (default 1m)."""
    if ts.shape[0] < 2:
        return "1m"
    gaps, counts = np.unique(np.diff(ts), return_counts=True)
    step = float(gaps[int(np.argmax(counts))])
    return next((name for name, s in TIMEFRAMES.items() if s == step), "1m")


def candles_from_trades(
    trades: TradeRows, *, exchange: str, symbol: str, timeframe: str = "1m"
) -> CandleSeries:
    """OHLCV buckets of ``timeframe`` from trades (buckets without trades are absent)."""
    step = timeframe_seconds(timeframe)
    bucket = np.floor(trades.ts / step) * step
    starts, first = np.unique(bucket, return_index=True)
    last = np.append(first[1:], len(trades)) - 1
    high = np.maximum.reduceat(trades.price, first)
    low = np.minimum.reduceat(trades.price, first)
    volume = np.add.reduceat(trades.amount, first)
    return CandleSeries(
        exchange,
        symbol,
        timeframe,
        starts,
        trades.price[first],
        high,
        low,
        trades.price[last],
        volume,
    )


def decimals_step(values: np.ndarray, cap: int = 10) -> Decimal:
    """The increment implied by the most decimal places in ``values`` (at most ``cap``)."""
    places = 0
    for v in values[: min(len(values), 5000)]:
        text = f"{float(v):.{cap}f}".rstrip("0")
        places = max(places, len(text.partition(".")[2]))
    return Decimal(1).scaleb(-places)


def infer_instrument(series: CandleSeries) -> tuple[Decimal, Decimal]:
    """(tick, lot) inferred from the data: the finest price and volume increments, spot."""
    prices = np.concatenate([series.open, series.close])
    return decimals_step(prices), decimals_step(series.volume, cap=8)
