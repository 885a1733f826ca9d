"""Incremental indicators: each closed candle updates every indicator in O(1).

The values equal the batch kernels of :mod:`cryptomon.trading.indicators_nb` on the same
closes (same seeding: an EMA starts at the SMA of its first n values, RSI is Wilder's smoothing
seeded with the mean of the first n changes, the MACD signal is an EMA of the MACD line from
the slow EMA's first value, Bollinger uses the population standard deviation). A value is NaN
until its indicator has enough history.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from cryptomon.config import IndicatorStrategyConfig

NAN = math.nan


class Sma:
    """Simple moving average over the last ``n`` values (running sum)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._ring: deque[float] = deque(maxlen=n)
        self._sum = 0.0
        self.value = NAN

    def update(self, x: float) -> float:
        if len(self._ring) == self.n:
            self._sum -= self._ring[0]
        self._ring.append(x)
        self._sum += x
        self.value = self._sum / self.n if len(self._ring) == self.n else NAN
        return self.value


class Ema:
    """Exponential moving average, alpha = 2 / (n + 1), seeded with the SMA of the first n."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.alpha = 2.0 / (n + 1.0)
        self._count = 0
        self._seed = 0.0
        self.value = NAN

    def update(self, x: float) -> float:
        self._count += 1
        if self._count < self.n:
            self._seed += x
        elif self._count == self.n:
            self.value = (self._seed + x) / self.n
        else:
            self.value = self.alpha * x + (1.0 - self.alpha) * self.value
        return self.value


class Rsi:
    """Wilder's relative strength index in [0, 100]; 50 while the closes never changed."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._prev = NAN
        self._changes = 0
        self._gain = 0.0
        self._loss = 0.0
        self.value = NAN

    def update(self, x: float) -> float:
        prev, self._prev = self._prev, x
        if math.isnan(prev):
            return self.value
        d = x - prev
        gain, loss = max(d, 0.0), max(-d, 0.0)
        self._changes += 1
        n = self.n
        if self._changes <= n:
            self._gain += gain / n
            self._loss += loss / n
            if self._changes < n:
                return self.value
        else:
            self._gain = (self._gain * (n - 1) + gain) / n
            self._loss = (self._loss * (n - 1) + loss) / n
        if self._loss == 0.0:  # 0/0 when the closes never changed: neutral, not 100
            self.value = 50.0 if self._gain == 0.0 else 100.0
        else:
            self.value = 100.0 - 100.0 / (1.0 + self._gain / self._loss)
        return self.value


class Bollinger:
    """SMA(n) +/- k population standard deviations (running sums, shifted for precision)."""

    def __init__(self, n: int, k: float) -> None:
        self.n = n
        self.k = k
        self._ring: deque[float] = deque(maxlen=n)
        self._shift = NAN
        self._sum = 0.0
        self._sumsq = 0.0
        self.upper = self.lower = self.mid = NAN

    def update(self, x: float) -> None:
        if math.isnan(self._shift):
            self._shift = x
        y = x - self._shift
        if len(self._ring) == self.n:
            old = self._ring[0]
            self._sum -= old
            self._sumsq -= old * old
        self._ring.append(y)
        self._sum += y
        self._sumsq += y * y
        if len(self._ring) < self.n:
            return
        mean = self._sum / self.n
        sd = math.sqrt(max(self._sumsq / self.n - mean * mean, 0.0))
        self.mid = mean + self._shift
        self.upper = self.mid + self.k * sd
        self.lower = self.mid - self.k * sd


@dataclass(slots=True)
class Reading:
    """Every indicator after one close (and the MACD before it, for crossings)."""

    close: float
    rsi: float
    macd: float
    macd_signal: float
    prev_macd: float
    prev_macd_signal: float
    upper: float
    lower: float
    sma_fast: float
    sma_slow: float
    ema_fast: float
    ema_slow: float
    count: int

    @property
    def ready(self) -> bool:
        """Every value is defined (the crossing needs one MACD signal value before this)."""
        # NaN != NaN: one comparison per value (the hot path of every candle)
        return (
            self.rsi == self.rsi
            and self.macd_signal == self.macd_signal
            and self.prev_macd_signal == self.prev_macd_signal
            and self.upper == self.upper
            and self.sma_slow == self.sma_slow
            and self.ema_slow == self.ema_slow
        )


class IndicatorSet:
    """The strategy's indicators for one market, updated once per closed candle."""

    def __init__(self, cfg: IndicatorStrategyConfig) -> None:
        self.rsi = Rsi(cfg.rsi_period)
        self.macd_fast = Ema(cfg.macd_fast)
        self.macd_slow = Ema(cfg.macd_slow)
        self.macd_signal = Ema(cfg.macd_signal)
        self.bands = Bollinger(cfg.bb_period, cfg.bb_std)
        self.sma_fast = Sma(cfg.sma_fast)
        self.sma_slow = Sma(cfg.sma_slow)
        self.ema_fast = Ema(cfg.ema_fast)
        self.ema_slow = Ema(cfg.ema_slow)
        self._line = NAN
        self._count = 0

    def update(self, close: float) -> Reading:
        """Add one close; the reading of every indicator on it."""
        self._count += 1
        prev_line, prev_signal = self._line, self.macd_signal.value
        fast, slow = self.macd_fast.update(close), self.macd_slow.update(close)
        self._line = fast - slow
        signal = self.macd_signal.update(self._line) if not math.isnan(self._line) else NAN
        self.bands.update(close)
        return Reading(
            close=close,
            rsi=self.rsi.update(close),
            macd=self._line,
            macd_signal=signal,
            prev_macd=prev_line,
            prev_macd_signal=prev_signal,
            upper=self.bands.upper,
            lower=self.bands.lower,
            sma_fast=self.sma_fast.update(close),
            sma_slow=self.sma_slow.update(close),
            ema_fast=self.ema_fast.update(close),
            ema_slow=self.ema_slow.update(close),
            count=self._count,
        )


def last_reading(closes: Iterable[float], cfg: IndicatorStrategyConfig) -> Reading | None:
    """The reading after the last of ``closes`` (oldest first); None for no closes."""
    state = IndicatorSet(cfg)
    reading = None
    for close in closes:
        reading = state.update(float(close))
    return reading
