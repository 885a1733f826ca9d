"""A safe stretch of one market valued in one pass: the equity its close quotes would mark,
without publishing every quote (the fast candle path, :mod:`cryptomon.backtest.fastlanes`)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from cryptomon.backtest.data import CandleSeries, columns
from cryptomon.trading.context import to_decimal

if TYPE_CHECKING:
    from cryptomon.config import BacktestConfig
    from cryptomon.trading.portfolio import Portfolio


def plain_equity(portfolio: Portfolio, series: CandleSeries) -> bool:
    """The portfolio's equity is its cash plus this market's spot position at its mark:
    no other position holds value, no fee balance or dust (:func:`stretch_equity`)."""
    if portfolio.fee_balances or portfolio.dust:
        return False
    key = (series.exchange, series.symbol)
    for k, pos in portfolio.positions.items():
        if k == key:
            if pos.contract is not None or pos.amount == 0:
                return False
        elif pos.amount != 0 or pos.mark is None:
            return False
    return key in portfolio.positions


def close_mids(
    series: CandleSeries, cfg: BacktestConfig
) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """Per row of ``series``: the mid of its close quote (:meth:`CandlePath.quote`'s float
    arithmetic on the row's arrays, the same IEEE operations in the same order, element by
    element) and, one entry longer, how many rows before each have a close quote with a
    zero bid (prefix counts)."""
    price = series.close
    span = series.high - series.low
    half = np.maximum(price * cfg.slippage_bps / 10_000.0, cfg.slippage_range_fraction * span)
    bid = np.maximum(price - half, 0.0)
    zeros = np.concatenate([[0], np.cumsum(~(bid > 0))])
    return columns((bid + (price + half)) / 2), columns(zeros)


def stretch_equity(
    portfolio: Portfolio,
    series: CandleSeries,
    mids: tuple[tuple[float, ...], tuple[int, ...]],
    lo: int,
    hi: int,
) -> tuple[list[float], Decimal] | None:
    """The equity at the end of rows ``lo:hi`` of a safe stretch of one market (its
    position unchanged, :func:`plain_equity`) as their close quotes would mark it: the
    mid of each quote (``mids``, of :func:`close_mids`) as the Decimal the engine marks
    with, and ``cash + amount * mark`` in Decimal as ``Portfolio.equity`` adds it (the
    other terms are exact zeros). Only the stretch's last quote need be published: every
    reader of a close quote keeps the latest one (the market state, the marks), and a safe
    quote triggers no exit. Returns the floats and the last row's equity as the Decimal
    ``Portfolio.equity`` would give after its quote. None: not such a stretch (another
    holding, a fee balance, dust, a contract, a zero bid)."""
    values, zeros = mids
    if zeros[hi] != zeros[lo] or not plain_equity(portfolio, series):
        return None  # the engine does not mark at a zero bid
    cash = portfolio.cash
    amount = portfolio.positions[(series.exchange, series.symbol)].amount
    out: list[float] = []
    append = out.append
    value = cash
    for mid in values[lo:hi]:
        value = cash + amount * to_decimal(mid)  # as on_top marks its mid
        append(float(value))
    return out, value


def reach_bounds(series: CandleSeries, cfg: BacktestConfig) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per row: the candle's range widened by twice its half spread."""
    span = series.high - series.low
    half = np.maximum(series.high * cfg.slippage_bps / 10_000.0, cfg.slippage_range_fraction * span)
    return series.low - 2 * half, series.high + 2 * half


def safe_until(
    reach: tuple[np.ndarray, np.ndarray], row: int, *, long: bool, stop: float, take: float | None
) -> int:
    """The last row from ``row`` on (``row - 1``: none) whose widened range (``reach``, of
    :func:`reach_bounds`) stays strictly between ``stop`` and ``take``."""
    low, high = reach
    return int(_last_safe(low, high, row, long, stop, math.nan if take is None else take))


@njit(cache=True)
def _last_safe(  # noqa: PLR0917 - a numba kernel takes its parameters positionally
    low: np.ndarray, high: np.ndarray, row: int, long: bool, stop: float, take: float
) -> int:
    """:func:`safe_until`'s scan, one row at a time (a position's levels are usually
    hundreds to thousands of rows away); ``take`` NaN: none (no comparison holds)."""
    n = low.shape[0]
    for i in range(row, n):
        if long:
            if low[i] <= stop or high[i] >= take:
                return i - 1
        elif high[i] >= stop or low[i] <= take:
            return i - 1
    return n - 1
