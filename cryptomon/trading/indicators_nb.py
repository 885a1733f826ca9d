"""Technical indicators as numba kernels (DESIGN.md 3.6): pure numpy-in, numpy-out functions.

Every kernel takes a float64 array of closes (oldest first) and returns arrays of the same
length; positions without enough history hold NaN. They are compiled once per process
(``cache=True`` keeps the machine code on disk) for the one signature they are called with.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def sma_nb(x: np.ndarray, n: int) -> np.ndarray:
    """Simple moving average over ``n`` values."""
    out = np.full(x.shape[0], np.nan)
    if n <= 0 or x.shape[0] < n:
        return out
    acc = 0.0
    for i in range(x.shape[0]):
        acc += x[i]
        if i >= n:
            acc -= x[i - n]
        if i >= n - 1:
            out[i] = acc / n
    return out


@njit(cache=True)
def ema_nb(x: np.ndarray, n: int) -> np.ndarray:
    """Exponential moving average, alpha = 2 / (n + 1), seeded with the SMA of the first n."""
    out = np.full(x.shape[0], np.nan)
    if n <= 0 or x.shape[0] < n:
        return out
    alpha = 2.0 / (n + 1.0)
    acc = 0.0
    for i in range(n):
        acc += x[i]
    prev = acc / n
    out[n - 1] = prev
    for i in range(n, x.shape[0]):
        prev = alpha * x[i] + (1.0 - alpha) * prev
        out[i] = prev
    return out


@njit(cache=True, inline="always")
def rsi_of(gain: float, loss: float) -> float:
    """RSI of Wilder's mean gain and loss; 50 (neutral) for no change at all: RS is 0/0
    there, and 100 would read a flat series as only gains (overbought)."""
    if loss == 0.0:
        return 50.0 if gain == 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + gain / loss)


@njit(cache=True)
def rsi_nb(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder's relative strength index in [0, 100]; 50 while the closes never changed."""
    out = np.full(x.shape[0], np.nan)
    if n <= 0 or x.shape[0] <= n:
        return out
    gain = 0.0
    loss = 0.0
    for i in range(1, n + 1):
        d = x[i] - x[i - 1]
        if d > 0:
            gain += d
        else:
            loss -= d
    gain /= n
    loss /= n
    out[n] = rsi_of(gain, loss)
    for i in range(n + 1, x.shape[0]):
        d = x[i] - x[i - 1]
        g = d if d > 0 else 0.0
        lo = -d if d < 0 else 0.0
        gain = (gain * (n - 1) + g) / n
        loss = (loss * (n - 1) + lo) / n
        out[i] = rsi_of(gain, loss)
    return out


@njit(cache=True)
def macd_nb(
    x: np.ndarray, fast: int, slow: int, signal: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD line (EMA fast - EMA slow), its signal EMA and the histogram."""
    line = ema_nb(x, fast) - ema_nb(x, slow)
    sig = np.full(x.shape[0], np.nan)
    start = slow - 1
    if x.shape[0] - start >= signal:
        sig[start:] = ema_nb(line[start:], signal)
    return line, sig, line - sig


@njit(cache=True)
def bollinger_nb(x: np.ndarray, n: int, k: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger bands: SMA(n) and SMA +/- k population standard deviations."""
    mid = sma_nb(x, n)
    upper = np.full(x.shape[0], np.nan)
    lower = np.full(x.shape[0], np.nan)
    for i in range(n - 1, x.shape[0]):
        m = mid[i]
        acc = 0.0
        for j in range(i - n + 1, i + 1):
            d = x[j] - m
            acc += d * d
        sd = np.sqrt(acc / n)
        upper[i] = m + k * sd
        lower[i] = m - k * sd
    return mid, upper, lower
