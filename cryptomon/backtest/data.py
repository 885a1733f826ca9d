"""Candle series for the backtest: numpy columns per market, parsed from files or rows.

Files (``download --from-file`` and ``backtest FILE``): JSON (optionally gzipped) or CSV.

- candles: rows ``[open_time_ms, open, high, low, close, volume]`` (freqtrade's layout);
- trades: rows ``[timestamp_ms, trade_id, order_type, side, price, amount, cost]``
  (freqtrade's), or CSV with a header naming ``timestamp, price, amount`` (``side``, ``id``
  optional).

Which of the two a file holds is read from its rows (6 numbers: candles; a side string: trades).
A bad file raises :class:`DataError` naming the file, the row and what was expected.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

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


GZIP_MAGIC = b"\x1f\x8b"
# open times outside 1970..3000 are input errors (a ms value given in us, a garbled column),
# not dates: refused by row, before a datetime conversion overflows
MAX_EPOCH_S = 32_503_680_000.0


class DataError(ValueError):
    """Input data that cannot be used; the message names what and what was expected."""


def timeframe_seconds(timeframe: str) -> int:
    """``1m`` -> 60; an unknown timeframe raises :class:`DataError` listing the known ones."""
    try:
        return TIMEFRAMES[timeframe]
    except KeyError:
        raise DataError(
            f"unknown timeframe {timeframe!r}; expected one of {', '.join(TIMEFRAMES)}"
        ) from None


def columns(values: np.ndarray) -> tuple[Any, ...]:
    """An array's values as a tuple of Python scalars: read by index as fast as a list, and,
    holding only numbers, untracked by the garbage collector once it has seen it (every
    collection of the old generation would walk a list of a year of rows)."""
    return tuple(values.tolist())


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


@dataclass(frozen=True, slots=True)
class TradeRows:
    """Public trades of one market, oldest first (epoch seconds, floats, ``buy``/``sell``)."""

    ts: np.ndarray
    price: np.ndarray
    amount: np.ndarray
    side: list[str]
    ids: list[str]

    def __len__(self) -> int:
        return int(self.ts.shape[0])


def series_from_rows(
    rows: list[Any], *, exchange: str, symbol: str, timeframe: str
) -> CandleSeries:
    """Rows ``(open_time_s, o, h, l, c, v)`` -> a series sorted by time, duplicates dropped."""
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    _, keep = np.unique(arr[:, 0], return_index=True)
    arr = arr[keep]
    cols = [np.ascontiguousarray(arr[:, i]) for i in range(6)]
    return CandleSeries(exchange, symbol, timeframe, *cols)


def read_rows(path: str | Path) -> list[Any]:
    """The rows of a JSON (``.gz`` too) or CSV file; :class:`DataError` when unreadable."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if raw[:2] != GZIP_MAGIC and p.name.lower().endswith(".gz"):
        raise DataError(
            f"cannot read {path}: not gzip data (the name ends in .gz; expected gzip-compressed "
            "JSON or CSV, or the file named without .gz)"
        )
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"cannot read {path}: corrupt gzip data ({exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"cannot read {path}: not UTF-8 text (expected JSON or CSV)") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"cannot read {path}: invalid JSON ({exc.msg}, line {exc.lineno})"
            ) from None
        if not isinstance(data, list):
            raise DataError(f"cannot read {path}: expected a JSON list of rows")
        return data
    return _csv_rows(path, text)


def _csv_rows(path: str | Path, text: str) -> list[Any]:
    reader = csv.reader(io.StringIO(text))
    rows = [r for r in reader if r]
    if not rows:
        raise DataError(f"cannot read {path}: empty file (expected candle or trade rows)")
    header = [h.strip().lower() for h in rows[0]]
    if "price" in header and "amount" in header:
        ts_col = next((c for c in ("timestamp", "ts", "time") if c in header), None)
        if ts_col is None:
            raise DataError(f"cannot read {path}: a trades CSV needs a timestamp column")
        idx = {name: header.index(name) for name in header}
        return [
            [
                r[idx[ts_col]],
                r[idx["id"]] if "id" in idx else str(n),
                None,
                r[idx["side"]] if "side" in idx else "buy",
                r[idx["price"]],
                r[idx["amount"]],
            ]
            for n, r in enumerate(rows[1:])
        ]
    body = rows[1:] if not _is_number(rows[0][0]) else rows
    return [list(r) for r in body]


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def is_trade_rows(rows: list[Any]) -> bool:
    """True when the rows look like trades (a side string in the 4th column)."""
    first = rows[0] if rows else None
    return isinstance(first, list) and len(first) >= 6 and str(first[3]).lower() in ("buy", "sell")


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
        ):
            raise DataError(
                f"{path}: row {n + 1} is not a candle; expected "
                f"[open_time_ms (1970..3000), open, high, low, close, volume], got {str(row)[:80]}"
            )
        out.append((vals[0] / 1000.0, *vals[1:]))
    if not out:
        raise DataError(f"{path}: no rows (expected candles or trades)")
    series = series_from_rows(out, exchange=exchange, symbol=symbol, timeframe="1m")
    return CandleSeries(
        exchange, symbol, infer_timeframe(series.ts), *(getattr(series, c) for c in _COLS)
    )


_COLS = ("ts", "open", "high", "low", "close", "volume")


def infer_timeframe(ts: np.ndarray) -> str:
    """The known timeframe equal to the most common gap between open times (default 1m)."""
    if ts.shape[0] < 2:
        return "1m"
    gaps, counts = np.unique(np.diff(ts), return_counts=True)
    step = float(gaps[int(np.argmax(counts))])
    return next((name for name, s in TIMEFRAMES.items() if s == step), "1m")


def parse_trades(rows: list[Any], *, path: str) -> TradeRows:
    """Trade rows ``[ts_ms, id, type, side, price, amount, ...]`` -> columns, oldest first."""
    ts: list[float] = []
    price: list[float] = []
    amount: list[float] = []
    side: list[str] = []
    ids: list[str] = []
    for n, row in enumerate(rows):
        try:
            t, p, a = float(row[0]) / 1000.0, float(row[4]), float(row[5])
            s = str(row[3]).lower()
        except (TypeError, ValueError, IndexError):
            t, p, a, s = math.nan, math.nan, math.nan, ""
        if (
            s not in ("buy", "sell")
            or not all(map(math.isfinite, (t, p, a)))
            or p <= 0
            or not 0 <= t <= MAX_EPOCH_S
        ):
            raise DataError(
                f"{path}: row {n + 1} is not a trade; expected "
                "[timestamp_ms (1970..3000), id, type, side, price, amount, cost], "
                f"got {str(row)[:80]}"
            )
        ts.append(t)
        price.append(p)
        amount.append(a)
        side.append(s)
        ids.append(str(row[1]))
    order = np.argsort(np.asarray(ts), kind="stable")
    return TradeRows(
        ts=np.asarray(ts)[order],
        price=np.asarray(price)[order],
        amount=np.asarray(amount)[order],
        side=[side[i] for i in order],
        ids=[ids[i] for i in order],
    )


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
