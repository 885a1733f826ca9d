"""Column building for the detector engine: one micro-batch of events into the numpy columns
the kernels read (:mod:`cryptomon.detect.base`). Each field is read from the events once, one
C-level pass per column (``attrgetter`` mapped by ``np.fromiter``); the getters are bound once
at import, so a batch costs no lookup per event beyond the field itself."""

from __future__ import annotations

import math
from operator import attrgetter
from typing import Any

import numpy as np

from cryptomon.detect.base import BookCols, QuoteCols, TradeCols

_TS = attrgetter("ts")
_PRICE = attrgetter("price")
_AMOUNT = attrgetter("amount")
_SIDE = attrgetter("side")
_BUY = {"buy": 1.0, "sell": 0.0}
_SPREAD = attrgetter("spread_bps")
_IMB = attrgetter("imbalance")
_BID = attrgetter("bid")
_ASK = attrgetter("ask")
_BID_SIZE = attrgetter("bid_size")
_ASK_SIZE = attrgetter("ask_size")


def f64(getter: Any, evs: list[Any]) -> np.ndarray:
    """``getter`` of every event as a float64 column."""
    return np.fromiter(map(getter, evs), np.float64, len(evs))


def nan_column(n: int) -> np.ndarray:
    """A column of ``n`` NaN (a field a source does not carry)."""
    return np.full(n, math.nan)


def trade_columns(sid: np.ndarray, evs: list[Any]) -> TradeCols:
    """Trades (or liquidations) of the market ids ``sid`` as columns; buy is 1.0, sell 0.0."""
    return TradeCols(
        sid=sid,
        ts=f64(_TS, evs),
        px=f64(_PRICE, evs),
        amt=f64(_AMOUNT, evs),
        buy=np.fromiter(map(_BUY.get, map(_SIDE, evs)), np.float64, len(evs)),
        events=evs,
    )


def top_prices(evs: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ts, bid, ask) columns of book tops or tickers."""
    return f64(_TS, evs), f64(_BID, evs), f64(_ASK, evs)


def book_columns(
    sid: np.ndarray, ts: np.ndarray, bid: np.ndarray, ask: np.ndarray, evs: list[Any]
) -> BookCols:
    """Book tops as columns from their :func:`top_prices` (``mid`` NaN: the book detectors
    do not read it)."""
    return BookCols(
        sid=sid,
        ts=ts,
        spread=f64(_SPREAD, evs),
        imb=f64(_IMB, evs),
        mid=nan_column(len(evs)),
        bid=bid,
        ask=ask,
    )


def quote_columns(
    sid: np.ndarray, ts: np.ndarray, bid: np.ndarray, ask: np.ndarray, evs: list[Any]
) -> QuoteCols:
    """Book tops as quotes (their sizes read here, the rest reused from the book columns)."""
    return QuoteCols(
        sid=sid,
        ts=ts,
        bid=bid,
        ask=ask,
        bid_size=f64(_BID_SIZE, evs),
        ask_size=f64(_ASK_SIZE, evs),
    )


def mid_columns(sid: np.ndarray, ts: np.ndarray, bid: np.ndarray, ask: np.ndarray) -> BookCols:
    """Mid prices as book columns (spread and imbalance NaN); a bad quote becomes NaN."""
    with np.errstate(invalid="ignore", over="ignore"):  # bad quotes become NaN, skipped
        mid = (bid + ask) * 0.5
    nan = nan_column(len(sid))
    return BookCols(sid=sid, ts=ts, spread=nan, imb=nan, mid=mid)
