"""Column building for the detector engine: one micro-batch of events into the numpy columns
the kernels read (:mod:`cryptomon.detect.base`).

Book tops and trades (the hot sources) are read in one list comprehension per batch: each
event's market id and fields (slot attribute reads, which the interpreter specialises) go
straight into a compiled ``struct.Struct.pack`` of one record of doubles (``PyFloat_AsDouble``
per value, arguments passed without a tuple), the records are joined into one buffer and
viewed as one table with a contiguous row per field. Building a tuple per event into a flat
list and packing the list in one call cost ~25 % more (a tuple and eight list slots per
event, and the list copied once more into the call's arguments); reading each field in its
own ``np.fromiter`` pass about twice as much (``fromiter`` converts value by value through
the dtype's generic setter). A batch with a value ``struct`` cannot pack (None, a numeric
string) is converted by numpy instead (:func:`_table`). The rarer sources (tickers) keep one
pass per column (:func:`top_prices`)."""

from __future__ import annotations

import math
import struct
from operator import attrgetter
from typing import Any

import numpy as np

from cryptomon.detect.base import BookCols, TradeCols

_TS = attrgetter("ts")
_BUY = {"buy": 1.0, "sell": 0.0}
_BID = attrgetter("bid")
_ASK = attrgetter("ask")


BOOK_ROWS = 8  # sid, ts, bid, ask, spread_bps, imbalance, bid_size, ask_size
TRADE_ROWS = 7  # sid, ts, price, amount, buy, notional, notional_usd
_PACK_BOOK = struct.Struct(f"{BOOK_ROWS}d").pack
_PACK_TRADE = struct.Struct(f"{TRADE_ROWS}d").pack
_NOT_PACKED = (struct.error, TypeError)  # a value that is no float (None, a string)


def _rows(raw: bytes, rows: int) -> np.ndarray:
    """Records of ``rows`` doubles as a (rows, events) float64 table, each row contiguous."""
    return np.frombuffer(raw, np.float64).reshape(-1, rows).T.copy()


def _table(vals: list[Any], rows: int) -> np.ndarray:
    """A flat list of ``rows`` values per event as a (rows, events) table, converted by
    ``np.array`` (as ``np.fromiter`` did: None is NaN, a numeric string its number), for a
    batch the packed records refuse."""
    return np.array(vals, dtype=np.float64).reshape(-1, rows).T.copy()


def book_table(evs: list[Any], by_symbol: dict[str, dict[str, float]]) -> np.ndarray:
    """Book tops as a (:data:`BOOK_ROWS`, n) table; ``by_symbol[symbol][exchange]`` is the
    market id, a float (packed as it is; an int would be converted value by value), a
    KeyError for a market not registered yet."""
    pack = _PACK_BOOK
    try:
        raw = b"".join(
            [
                pack(
                    by_symbol[e.symbol][e.exchange],
                    e.ts,
                    e.bid,
                    e.ask,
                    e.spread_bps,
                    e.imbalance,
                    e.bid_size,
                    e.ask_size,
                )
                for e in evs
            ]
        )
    except _NOT_PACKED:
        vals: list[Any] = []
        put = vals.extend
        for e in evs:
            put(
                (
                    by_symbol[e.symbol][e.exchange],
                    e.ts,
                    e.bid,
                    e.ask,
                    e.spread_bps,
                    e.imbalance,
                    e.bid_size,
                    e.ask_size,
                )
            )
        return _table(vals, BOOK_ROWS)
    return _rows(raw, BOOK_ROWS)


def book_sid(table: np.ndarray) -> np.ndarray:
    """The market ids of a :func:`book_table` (its row 0) as int64."""
    return table[0].astype(np.int64)


def f64(getter: Any, evs: list[Any]) -> np.ndarray:
    """``getter`` of every event as a float64 column."""
    return np.fromiter(map(getter, evs), np.float64, len(evs))


def nan_column(n: int) -> np.ndarray:
    """A column of ``n`` NaN (a field a source does not carry)."""
    return np.full(n, math.nan)


def trade_table(evs: list[Any], by_symbol: dict[str, dict[str, float]]) -> TradeCols:
    """Trades (or liquidations) as columns in one pass (see :func:`book_table`); buy is 1.0,
    sell 0.0; the venue notionals (``Trade.notional``, ``notional_usd``; often None: NaN)
    are read in the same pass, two more slot reads per trade instead of a ``np.fromiter``
    pass over the cold events each."""
    pack = _PACK_TRADE
    buy = _BUY.get
    nan = math.nan
    try:
        raw = b"".join(
            [
                pack(
                    by_symbol[e.symbol][e.exchange],
                    e.ts,
                    e.price,
                    e.amount,
                    buy(e.side),
                    nan if (q := e.notional) is None else q,
                    nan if (u := e.notional_usd) is None else u,
                )
                for e in evs
            ]
        )
        table = _rows(raw, TRADE_ROWS)
    except _NOT_PACKED:
        vals: list[Any] = []
        put = vals.extend
        for e in evs:
            put(
                (
                    by_symbol[e.symbol][e.exchange],
                    e.ts,
                    e.price,
                    e.amount,
                    buy(e.side),
                    e.notional,
                    e.notional_usd,
                )
            )
        table = _table(vals, TRADE_ROWS)
    sid, ts, px, amt, side, notional, usd = table
    return TradeCols(
        sid=sid.astype(np.int64),
        ts=ts,
        px=px,
        amt=amt,
        buy=side,
        events=evs,
        _notional=notional,
        _usd=usd,
    )


def top_prices(evs: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts, bid, ask) columns of book tops or tickers."""
    return f64(_TS, evs), f64(_BID, evs), f64(_ASK, evs)


def mid_columns(sid: np.ndarray, ts: np.ndarray, bid: np.ndarray, ask: np.ndarray) -> BookCols:
    """Mid prices as book columns (spread and imbalance NaN); a bad quote becomes NaN."""
    with np.errstate(invalid="ignore", over="ignore"):  # bad quotes become NaN, skipped
        mid = (bid + ask) * 0.5
    nan = nan_column(len(sid))
    return BookCols(sid=sid, ts=ts, spread=nan, imb=nan, mid=mid)
