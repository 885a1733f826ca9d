"""Shared pieces of the detectors: symbol ids, column batches, growable state arrays.

Every (exchange, symbol) gets a small integer id; the detectors keep their state in 2-D
arrays whose row is that id and grow them by reallocating when new symbols appear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import numpy as np

from cryptomon.config import AnomalyDetectionConfig, split_symbol
from cryptomon.detect.kernels_nb import R_COLS, R_MIN, R_W, grow


@dataclass(slots=True)
class SymbolInfo:
    """One market known to the engine."""

    sid: int
    exchange: str
    symbol: str
    quote: str
    cfg: AnomalyDetectionConfig
    # the instrument's price tick when known (0.0: unknown; the book detector then infers it
    # from the price grid it observes)
    tick_size: float = 0.0


@dataclass(frozen=True, slots=True)
class Warmup:
    """What a detector must have seen of one market before it may report on it: ``samples``
    input events (trades, book updates, ...) and ``seconds`` of event time since the first.
    The engine drops findings of a market that has not passed both. ``kinds``: (finding
    code, warm-up) of a kind that needs more of the market than the detector's other kinds
    (the price detector's volatility: a bucket more); its findings also wait for that one."""

    samples: int
    seconds: float
    kinds: tuple[tuple[int, Warmup], ...] = ()


def bucket_warmup(cfg: AnomalyDetectionConfig) -> Warmup:
    """The warm-up of the bucketed statistics: ``min_samples`` events and ``min_samples``
    buckets of time (the default of a detector that declares none)."""
    return Warmup(samples=cfg.min_samples, seconds=cfg.min_samples * cfg.bucket_seconds)


def quote_of(symbol: str) -> str:
    """``BTC-USDT`` -> ``USDT``; ``BTC-USD-PERP`` -> ``USD``."""
    return split_symbol(symbol)[1]


def buckets(cfg: AnomalyDetectionConfig) -> int:
    """Completed buckets in the lookback window."""
    return max(2, math.ceil(cfg.lookback_window_minutes * 60.0 / cfg.bucket_seconds))


_NOTIONAL = attrgetter("notional")
_NOTIONAL_USD = attrgetter("notional_usd")


def _or_nan(getter: Any, evs: list[Any]) -> np.ndarray:
    """A float column of an optional field (None -> NaN, as numpy converts None)."""
    return np.fromiter(map(getter, evs), np.float64, len(evs))


@dataclass(slots=True)
class TradeCols:
    """A micro-batch of trades as columns (row i = the i-th buffered event). The venue's own
    notionals (``Trade.notional`` in the quote, ``notional_usd``; NaN where the instrument
    spec or the USD rate is unknown) are built on first use from ``events`` unless given
    (:func:`~cryptomon.detect.columns.trade_table` reads them in its one pass)."""

    sid: np.ndarray
    ts: np.ndarray
    px: np.ndarray
    amt: np.ndarray
    buy: np.ndarray
    events: list[Any] | None = None
    _notional: np.ndarray | None = None
    _usd: np.ndarray | None = None

    def notional(self) -> np.ndarray:
        """``Trade.notional`` per row (NaN: unknown spec)."""
        if self._notional is None:
            evs = self.events
            self._notional = (
                np.full(self.sid.shape[0], np.nan) if evs is None else _or_nan(_NOTIONAL, evs)
            )
        return self._notional

    def notional_usd(self) -> np.ndarray:
        """``Trade.notional_usd`` per row (NaN: unknown spec or no fresh USD rate)."""
        if self._usd is None:
            evs = self.events
            self._usd = (
                np.full(self.sid.shape[0], np.nan) if evs is None else _or_nan(_NOTIONAL_USD, evs)
            )
        return self._usd


@dataclass(slots=True)
class FundingCols:
    """Funding rate updates (rare: handled one event at a time, as they come)."""

    sid: np.ndarray
    ts: np.ndarray
    rate: np.ndarray


@dataclass(slots=True)
class BookCols:
    """A micro-batch of book tops (spread in bps, depth imbalance, mid; best bid and ask
    for the BOOKS source, None for MIDS)."""

    sid: np.ndarray
    ts: np.ndarray
    spread: np.ndarray
    imb: np.ndarray
    mid: np.ndarray
    bid: np.ndarray | None = None
    ask: np.ndarray | None = None


@dataclass(slots=True)
class QuoteCols:
    """A micro-batch of book tops as quotes: best bid/ask and their sizes (base units)."""

    sid: np.ndarray
    ts: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray


class Rolling:
    """Ring buffers + state (columns ``R_*``) of one rolling window per symbol id (see
    kernels_nb)."""

    __slots__ = ("buf", "state")

    def __init__(self) -> None:
        self.buf = np.zeros((0, 1))
        self.state = np.zeros((0, R_COLS))

    def resize(self, n: int) -> None:
        self.buf = grow(self.buf, n)
        self.state = grow(self.state, n)

    def configure(self, sid: int, window: int, min_samples: int) -> None:
        self.buf = grow(self.buf, sid + 1, window)
        self.state = grow(self.state, sid + 1)
        self.state[sid, :] = 0.0
        self.state[sid, R_W] = window
        self.state[sid, R_MIN] = min_samples


def grow_rows(arr: np.ndarray, n: int, fill: float = 0.0) -> np.ndarray:
    """Rows up to ``n``; new rows filled with ``fill``."""
    return grow(arr, n, fill=fill)


def grow_records(arr: np.ndarray, n: int) -> np.ndarray:
    """A structured (parameter) array enlarged to at least ``n`` records, zeros appended (by
    doubling, as :func:`~cryptomon.detect.kernels_nb.grow` grows rows)."""
    if n <= arr.shape[0]:
        return arr
    out = np.zeros(max(n, 2 * arr.shape[0]), dtype=arr.dtype)
    out[: arr.shape[0]] = arr
    return out
