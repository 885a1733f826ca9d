# ruff: noqa: PLR0917  (numba kernels take their parameters positionally)
"""The indicator strategy's readings over a whole candle series in one kernel call.

:func:`stream_readings` runs the arithmetic of the streaming
:class:`~cryptomon.trading.signals.indicators.IndicatorSet` (the live path, one close at a
time) over an array of closes: the same operations in the same order on float64, so every
value is bit for bit the one the streaming update gives on the same closes (no fastmath, no
reassociation; ``tests/unit/backtest/test_fastpath.py`` compares them on the shared freqtrade
series). The fast backtest path reads its readings from here instead of updating the
streaming set once per candle, and asks the generator's own scoring and cooldown only on
the candles where a signal can fire (:mod:`cryptomon.backtest.fastpath`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cryptomon.trading.indicators_nb import rsi_of

# rows of the readings array
RSI, MACD, MACD_SIGNAL, PREV_MACD, PREV_MACD_SIGNAL = 0, 1, 2, 3, 4
UPPER, LOWER, SMA_FAST, SMA_SLOW, EMA_FAST, EMA_SLOW = 5, 6, 7, 8, 9, 10
FIELDS = 11


@njit(cache=True, inline="always")
def _ema(x: float, n: int, state: np.ndarray, at: int) -> float:
    # state[at:at + 3] = count, seed, value (Ema.update)
    alpha = 2.0 / (n + 1.0)
    state[at] += 1.0
    count = state[at]
    if count < n:
        state[at + 1] += x
    elif count == n:
        state[at + 2] = (state[at + 1] + x) / n
    else:
        state[at + 2] = alpha * x + (1.0 - alpha) * state[at + 2]
    return state[at + 2]


@njit(cache=True)
def stream_readings(
    x: np.ndarray,
    rsi_n: int,
    macd_fast: int,
    macd_slow: int,
    macd_signal: int,
    bb_n: int,
    bb_k: float,
    sma_fast: int,
    sma_slow: int,
    ema_fast: int,
    ema_slow: int,
) -> np.ndarray:
    """``(FIELDS, len(x))`` readings after each close, from a fresh IndicatorSet."""
    n = x.shape[0]
    out = np.full((FIELDS, n), np.nan)
    nan = np.nan
    # five EMAs: macd fast, macd slow, macd signal, ema fast, ema slow (count, seed, value)
    ema = np.zeros(15)
    for j in range(5):
        ema[3 * j + 2] = nan
    # RSI (Rsi.update)
    prev = nan
    changes = 0
    gain_acc = 0.0
    loss_acc = 0.0
    rsi = nan
    # SMAs (Sma.update): rings of the last n closes, running sums
    ring_f = np.empty(max(sma_fast, 1))
    ring_s = np.empty(max(sma_slow, 1))
    len_f = 0
    len_s = 0
    sum_f = 0.0
    sum_s = 0.0
    # Bollinger (Bollinger.update): ring of shifted closes, running sums
    ring_b = np.empty(max(bb_n, 1))
    len_b = 0
    shift = nan
    sum_b = 0.0
    sumsq_b = 0.0
    upper = nan
    lower = nan
    line = nan
    for i in range(n):
        c = x[i]
        prev_line = line
        prev_signal = ema[8]
        fast = _ema(c, macd_fast, ema, 0)
        slow = _ema(c, macd_slow, ema, 3)
        line = fast - slow
        signal = nan if math.isnan(line) else _ema(line, macd_signal, ema, 6)
        # Bollinger
        if math.isnan(shift):
            shift = c
        y = c - shift
        if len_b == bb_n:
            old = ring_b[i % bb_n]
            sum_b -= old
            sumsq_b -= old * old
        else:
            len_b += 1
        ring_b[i % bb_n] = y
        sum_b += y
        sumsq_b += y * y
        if len_b == bb_n:
            mean = sum_b / bb_n
            var = sumsq_b / bb_n - mean * mean
            sd = math.sqrt(0.0 if var < 0.0 else var)  # max(var, 0.0)
            mid = mean + shift
            upper = mid + bb_k * sd
            lower = mid - bb_k * sd
        # RSI
        if not math.isnan(prev):
            d = c - prev
            g = 0.0 if d < 0.0 else d  # max(d, 0.0)
            lo = 0.0 if -d < 0.0 else -d
            changes += 1
            if changes <= rsi_n:
                gain_acc += g / rsi_n
                loss_acc += lo / rsi_n
            else:
                gain_acc = (gain_acc * (rsi_n - 1) + g) / rsi_n
                loss_acc = (loss_acc * (rsi_n - 1) + lo) / rsi_n
            if changes >= rsi_n:
                rsi = rsi_of(gain_acc, loss_acc)
        prev = c
        # SMAs
        if len_f == sma_fast:
            sum_f -= ring_f[i % sma_fast]
        else:
            len_f += 1
        ring_f[i % sma_fast] = c
        sum_f += c
        if len_s == sma_slow:
            sum_s -= ring_s[i % sma_slow]
        else:
            len_s += 1
        ring_s[i % sma_slow] = c
        sum_s += c
        out[RSI, i] = rsi
        out[MACD, i] = line
        out[MACD_SIGNAL, i] = signal
        out[PREV_MACD, i] = prev_line
        out[PREV_MACD_SIGNAL, i] = prev_signal
        out[UPPER, i] = upper
        out[LOWER, i] = lower
        out[SMA_FAST, i] = sum_f / sma_fast if len_f == sma_fast else nan
        out[SMA_SLOW, i] = sum_s / sma_slow if len_s == sma_slow else nan
        out[EMA_FAST, i] = _ema(c, ema_fast, ema, 9)
        out[EMA_SLOW, i] = _ema(c, ema_slow, ema, 12)
    return out


@njit(cache=True)
def cooldown_fires(
    side: np.ndarray, rank: np.ndarray, end: np.ndarray, cooldown: float
) -> np.ndarray:
    """Where the generator publishes: a side (1 buy, 2 sell; 0 none) fires unless the last
    signal of that side is less than ``cooldown`` old and at least as good (its rank)."""
    fires = np.zeros(side.shape[0], dtype=np.bool_)
    last_end = np.zeros(3)
    last_rank = np.zeros(3, dtype=np.int64)
    seen = np.zeros(3, dtype=np.bool_)
    for i in range(side.shape[0]):
        s = side[i]
        if s == 0:
            continue
        if seen[s] and end[i] - last_end[s] < cooldown and rank[i] <= last_rank[s]:
            continue
        seen[s] = True
        last_end[s] = end[i]
        last_rank[s] = rank[i]
        fires[i] = True
    return fires


@njit(cache=True)
def spec_scores(
    v: np.ndarray,
    closes: np.ndarray,
    oversold: float,
    buy_mild: float,
    overbought: float,
    sell_mild: float,
    near_fraction: float,
    flat_tolerance: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``spec`` scoring's (buy, sell) points of each row of the readings ``v`` (see
    :func:`cryptomon.backtest.fastpath.spec_totals`): ``buy_mild`` is ``oversold`` plus the
    mild RSI band, ``sell_mild`` ``overbought`` less it. The same float64 operations per row
    as the array expressions (a NaN reading compares false: no point)."""
    n = closes.shape[0]
    buy = np.zeros(n, dtype=np.int64)
    sell = np.zeros(n, dtype=np.int64)
    for i in range(n):
        rsi = v[RSI, i]
        close = closes[i]
        b = 2 if rsi < oversold else (1 if rsi < buy_mild else 0)
        s = 2 if rsi > overbought else (1 if rsi > sell_mild else 0)
        tol = flat_tolerance * abs(close)
        prev_cross = v[PREV_MACD, i] - v[PREV_MACD_SIGNAL, i]
        cross = v[MACD, i] - v[MACD_SIGNAL, i]
        sma = v[SMA_FAST, i] - v[SMA_SLOW, i]
        ema = v[EMA_FAST, i] - v[EMA_SLOW, i]
        near = near_fraction * (v[UPPER, i] - v[LOWER, i])
        if prev_cross <= tol and cross > tol:
            b += 1
        if close <= v[LOWER, i] + near:
            b += 1
        if sma > tol:
            b += 1
        if ema > tol:
            b += 1
        if prev_cross >= -tol and cross < -tol:
            s += 1
        if close >= v[UPPER, i] - near:
            s += 1
        if sma < -tol:
            s += 1
        if ema < -tol:
            s += 1
        buy[i] = b
        sell[i] = s
    return buy, sell
