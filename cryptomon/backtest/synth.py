"""The events a backtest makes up for what history does not record: the quote around a
candle's or trade's price (a one-level book of unbounded size) and the closed candle of a
series row.

A candle quote's bid and ask are on the paper venue's tick (``trading.paper.tick_size``, by
default inferred from the data: ``backtest.infer_instrument``), the bid rounded down and the
ask up (:func:`grid_quote`, :func:`grid_quotes`): a venue quotes on its tick, so fills and
marks are prices the market could print (a half spread under one tick still leaves one tick
between bid and ask), and the exact Decimal mid of two grid prices is short (the fast path
values a stretch from exact integers, :mod:`cryptomon.backtest.stretch`).
"""

from __future__ import annotations

import math

import numpy as np

from cryptomon.backtest.data import CandleSeries
from cryptomon.events import BookTop, Candle

GRID_SLACK = 1e-6
"""A price within this fraction of a grid step of a grid price is on it: ``price * unit`` of
a price on the grid misses the integer by float rounding only (~1e-10 of a step)."""
MAX_UNIT = 1e12
"""The finest grid (a tick of 1e-12); a finer tick, or one that is not a whole fraction of 1
(0.3, 5), quotes off the grid."""


def grid_unit(tick: float) -> float:
    """The steps of ``tick`` in 1 (100.0 for 0.01, 2.0 for 0.5), the unit of :func:`grid_quote`;
    0.0 (no grid) when ``tick`` is not a whole fraction of 1 or finer than 1e-12."""
    if not tick > 0:
        return 0.0
    unit = round(1.0 / tick)
    if unit < 1 or unit > MAX_UNIT or abs(unit * tick - 1.0) > 1e-9:
        return 0.0
    return float(unit)


def grid_quote(price: float, half: float, unit: float) -> tuple[float, float]:
    """The bid and ask ``half`` around ``price``, the bid rounded down and the ask up to the
    grid of ``unit`` (:func:`grid_unit`; 0.0: not rounded), the bid at least 0. The same
    IEEE operations in the same order as :func:`grid_quotes`, element by element."""
    bid, ask = price - half, price + half
    if unit:
        bid = math.floor(bid * unit + GRID_SLACK) / unit
        ask = math.ceil(ask * unit - GRID_SLACK) / unit
    return max(bid, 0.0), ask


def grid_quotes(price: np.ndarray, half: np.ndarray, unit: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`grid_quote` of whole columns."""
    bid, ask = price - half, price + half
    if unit:
        bid = np.floor(bid * unit + GRID_SLACK) / unit
        ask = np.ceil(ask * unit - GRID_SLACK) / unit
    return np.maximum(bid, 0.0), ask


def grid_up(level: float, unit: float) -> float:
    """The first grid price at or above ``level`` (``level`` itself without a grid)."""
    return math.ceil(level * unit - GRID_SLACK) / unit if unit else level


def grid_down(level: float, unit: float) -> float:
    """The last grid price at or below ``level`` (``level`` itself without a grid)."""
    return math.floor(level * unit + GRID_SLACK) / unit if unit else level


def quote_top(
    exchange: str, symbol: str, now: float, *, bid: float, ask: float, ref: float
) -> BookTop:
    """A one-level top ``bid``/``ask`` with unbounded sizes; ``spread_bps`` relative to ``ref``."""
    return BookTop(
        exchange=exchange,
        symbol=symbol,
        ts=now,
        ts_recv=now,
        bid=bid,
        bid_size=1e12,
        ask=ask,
        ask_size=1e12,
        spread=ask - bid,
        spread_bps=(ask - bid) / ref * 10_000.0,
        bid_depth=1e12,
        ask_depth=1e12,
        imbalance=0.0,
        levels=1,
    )


def series_candle(
    series: CandleSeries, row: int, *, start: float, now: float, close: float, volume: float
) -> Candle:
    """Row ``row`` of ``series`` as the candle that closed at ``now`` (opened at ``start``)."""
    return Candle(
        exchange=series.exchange,
        symbol=series.symbol,
        ts=now,
        ts_recv=now,
        interval=series.timeframe,
        start=start,
        end=now,
        open=float(series.open[row]),
        high=float(series.high[row]),
        low=float(series.low[row]),
        close=close,
        volume=volume,
    )
