"""Trade and candle files as rows: freqtrade's JSON (optionally gzipped) or CSV, read by
``backtest FILE``, ``download --from-file`` and ``evaluate --trades`` alike.

- candles: rows ``[open_time_ms, open, high, low, close, volume]`` (freqtrade's layout);
- trades: rows ``[timestamp_ms, trade_id, order_type, side, price, amount, cost]``
  (freqtrade's), or CSV with a header naming ``timestamp, price, amount`` (``side``, ``id``
  optional).

A bad file raises :class:`DataError` naming the file, the row and what was expected.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"
# times outside 1970..3000 are input errors (a ms value given in us, a garbled column), not
# dates: refused by row, before a datetime conversion overflows
MAX_EPOCH_S = 32_503_680_000.0


class DataError(ValueError):
    """Input data that cannot be used; the message names what and what was expected."""


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
            or a < 0
            or not 0 <= t <= MAX_EPOCH_S
        ):
            raise DataError(
                f"{path}: row {n + 1} is not a trade; expected "
                "[timestamp_ms (1970..3000), id, type, side (buy or sell), price (> 0), "
                "amount (>= 0), cost], "
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
