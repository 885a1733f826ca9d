"""Stored 1-minute candles as the price and volume detectors' warm-up at start.

(``DetectorEngine.warm_from_candles`` through ``cryptomon.detect.history``, called by
``cryptomon.app.warmstart``.)

A candle reproduces exactly what the price and volume detectors keep of a completed bucket
when the bucket is a whole number of minutes: the traded volume (the sum of the candles'
volumes), the high, the low and the close (the last candle's). Each candle becomes three
rows at its open time (its high, its low, then its close, carrying the candle's volume on
the first) that run through those kernels as trades would; buckets without a candle had no
trade and get the kernels' own gap handling. What a candle cannot reproduce stays out: the
whale detector reads single taker orders (a candle's volume is no order size), and the
running bucket (counts of trades and buy/sell volume by the minute, needed for the volume
imbalance) is left to the live trades: only buckets completed before ``now`` are used.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from cryptomon.detect.base import TradeCols
from cryptomon.events import Candle

CANDLE_INTERVAL = "1m"
CANDLE_S = 60.0


def warms_from_candles(det: object) -> bool:
    """Whether a detector declares that 1-minute candles reproduce its bucket statistics
    (``warms_from_candles = True`` on the class; the price and volume detectors)."""
    return bool(getattr(det, "warms_from_candles", False))


def whole_minutes(bucket_s: float) -> bool:
    """A bucket of a whole number of minutes: its edges are minute edges."""
    return bucket_s >= CANDLE_S and math.isclose(bucket_s % CANDLE_S, 0.0, abs_tol=1e-9)


@dataclass(slots=True)
class MarketCandles:
    """The candles of one market that warm it: rows of the three columns per candle."""

    sid: int
    samples: int = 0  # trades the candles stand for (a candle without a count: 1)
    first: float = math.inf  # open time of the earliest candle
    until: float = -math.inf  # end of the last bucket they fill
    candles: int = 0


@dataclass(slots=True)
class CandlePlan:
    """What :func:`candle_plan` made of a set of candles."""

    cols: TradeCols
    markets: dict[int, MarketCandles] = field(default_factory=dict)
    # "exchange:symbol" of markets left out: a bucket that is no whole number of minutes
    skipped: list[str] = field(default_factory=list)


def candle_plan(
    candles: Sequence[Candle],
    now: float,
    *,
    sid_of: Callable[[str, str], int],
    bucket_of: Callable[[int], float],
) -> CandlePlan:
    """The rows of ``candles`` (1-minute ones, any order) for markets whose bucket is a whole
    number of minutes, in time order per market, up to the bucket ``now`` is in (excluded);
    ``sid_of(exchange, symbol)`` gives a market's id, ``bucket_of(sid)`` its bucket length."""
    by_market: dict[tuple[str, str], list[Candle]] = {}
    for c in candles:
        if c.interval == CANDLE_INTERVAL:
            by_market.setdefault((c.exchange, c.symbol), []).append(c)
    sid_rows: list[int] = []
    ts: list[float] = []
    px: list[float] = []
    amt: list[float] = []
    plan = CandlePlan(cols=_cols([], [], [], []))
    for (exchange, symbol), rows in by_market.items():
        sid = sid_of(exchange, symbol)
        bucket = bucket_of(sid)
        if not whole_minutes(bucket):
            plan.skipped.append(f"{exchange}:{symbol}")
            continue
        current = math.floor(now / bucket)
        market = MarketCandles(sid=sid)
        for c in sorted(rows, key=lambda c: c.start):
            b = math.floor(c.start / bucket)
            usable = c.high >= c.low > 0.0 and c.close > 0.0 and c.volume >= 0.0
            if b >= current or not (usable and math.isfinite(c.volume)):
                continue
            sid_rows += (sid, sid, sid)
            ts += (c.start, c.start, c.start)
            px += (c.high, c.low, c.close)
            amt += (c.volume, 0.0, 0.0)
            market.samples += c.trades if c.trades else 1
            market.first = min(market.first, c.start)
            market.until = (b + 1) * bucket
            market.candles += 1
        if market.candles:
            plan.markets[sid] = market
    plan.cols = _cols(sid_rows, ts, px, amt)
    return plan


def _cols(sid: list[int], ts: list[float], px: list[float], amt: list[float]) -> TradeCols:
    n = len(sid)
    return TradeCols(
        sid=np.array(sid, dtype=np.int64),
        ts=np.array(ts, dtype=np.float64),
        px=np.array(px, dtype=np.float64),
        amt=np.array(amt, dtype=np.float64),
        buy=np.zeros(n, dtype=np.float64),
    )


def chunks(cols: TradeCols, size: int) -> list[TradeCols]:
    """``cols`` in consecutive batches of at most ``size`` rows (the engine's findings array
    is sized for one batch)."""
    n = cols.sid.shape[0]
    return [
        TradeCols(
            sid=cols.sid[i : i + size],
            ts=cols.ts[i : i + size],
            px=cols.px[i : i + size],
            amt=cols.amt[i : i + size],
            buy=cols.buy[i : i + size],
        )
        for i in range(0, n, size)
    ]


def after_candles(cols: TradeCols, until: dict[int, float]) -> TradeCols | None:
    """The rows of ``cols`` at or after ``until[sid]``, the end of the candles that warmed
    their market (None: every row). Venue history older than that is in the candles."""
    if not until:
        return None
    ends = np.array([until.get(s, -math.inf) for s in cols.sid.tolist()])
    keep = np.flatnonzero(cols.ts >= ends)
    if keep.shape[0] == cols.sid.shape[0]:
        return None
    return TradeCols(
        sid=cols.sid[keep],
        ts=cols.ts[keep],
        px=cols.px[keep],
        amt=cols.amt[keep],
        buy=cols.buy[keep],
    )
