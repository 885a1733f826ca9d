"""What the fast candle path knows before it drives a candle: the indicator readings of a
whole series (one kernel call) and the candles where the indicator strategy publishes.

- :class:`SeriesIndicators` is the signal generator's indicator state for one backtested
  market: its ``update`` returns the reading of the row the runner is about to close, taken
  from :func:`~cryptomon.backtest.indicators_nb.stream_readings` (bit for bit the streaming
  values), so candles on which nothing can happen need not be fed to it one by one.
- :func:`indicator_fires` is the generator's scoring, grading and cooldown as array
  arithmetic: the rows where ``SignalGenerator.on_candle`` publishes a signal. The runner
  still publishes those candles to the real generator, which decides for itself; a row
  missing from this set would be a candle the fast path skips, which the fast-vs-slow test
  (``tests/unit/backtest/test_fastpath.py``) would catch as a different run.
"""

from __future__ import annotations

import numpy as np

from cryptomon.backtest.indicators_nb import (
    EMA_FAST,
    EMA_SLOW,
    LOWER,
    MACD,
    MACD_SIGNAL,
    PREV_MACD,
    PREV_MACD_SIGNAL,
    RSI,
    SMA_FAST,
    SMA_SLOW,
    UPPER,
    cooldown_fires,
    spec_scores,
    stream_readings,
)
from cryptomon.config import IndicatorStrategyConfig, TradingConfig
from cryptomon.kinds import SignalGrade
from cryptomon.trading.signals.grades import GRADE_RANK, grade_for
from cryptomon.trading.signals.indicators import IndicatorSet, Reading
from cryptomon.trading.signals.scoring import (
    FLAT_TOLERANCE,
    RSI_MILD_BAND,
    SPEC_MIN_STRENGTH,
    SPEC_STRONG_SCORE,
)


def readings(closes: np.ndarray, cfg: IndicatorStrategyConfig) -> np.ndarray:
    """The ``(FIELDS, n)`` readings of ``closes`` (see :mod:`.indicators_nb`)."""
    return stream_readings(
        np.ascontiguousarray(closes, dtype=np.float64),
        cfg.rsi_period,
        cfg.macd_fast,
        cfg.macd_slow,
        cfg.macd_signal,
        cfg.bb_period,
        float(cfg.bb_std),
        cfg.sma_fast,
        cfg.sma_slow,
        cfg.ema_fast,
        cfg.ema_slow,
    )


def reading_at(values: np.ndarray, closes: np.ndarray, row: int) -> Reading:
    """The :class:`Reading` after close ``row``."""
    v = values[:, row].tolist()
    return Reading(
        close=float(closes[row]),
        rsi=v[RSI],
        macd=v[MACD],
        macd_signal=v[MACD_SIGNAL],
        prev_macd=v[PREV_MACD],
        prev_macd_signal=v[PREV_MACD_SIGNAL],
        upper=v[UPPER],
        lower=v[LOWER],
        sma_fast=v[SMA_FAST],
        sma_slow=v[SMA_SLOW],
        ema_fast=v[EMA_FAST],
        ema_slow=v[EMA_SLOW],
        count=row + 1,
    )


class SeriesIndicators(IndicatorSet):
    """The generator's indicator state of one market whose closes are known in advance:
    ``update`` answers the reading of :attr:`row` (set by the runner before it publishes
    that row's candle) and checks that the close is that row's."""

    def __init__(self, cfg: IndicatorStrategyConfig, closes: np.ndarray) -> None:
        super().__init__(cfg)
        self.closes = np.ascontiguousarray(closes, dtype=np.float64)
        self.values = readings(self.closes, cfg)
        self.row = -1

    def update(self, close: float) -> Reading:
        row = self.row
        if row < 0 or float(self.closes[row]) != close:
            raise ValueError(f"SeriesIndicators: close {close} is not the close of row {row}")
        reading = reading_at(self.values, self.closes, row)
        self.rsi.value = reading.rsi  # the generator's reason reads it
        return reading


def _sign(x: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """``scoring._sign`` per value: 1.0 above ``tol``, -1.0 below ``-tol``, else 0.0 (NaN
    included)."""
    return np.where(x > tol, 1.0, np.where(x < -tol, -1.0, 0.0))


def spec_totals(
    v: np.ndarray, closes: np.ndarray, cfg: IndicatorStrategyConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The ``spec`` scoring's (buy score, sell score) per row: the sums of
    :func:`~cryptomon.trading.signals.scoring.spec_score`'s points (``spec_outcome`` of a
    row's two totals is the generator's outcome of that close), in one kernel pass
    (:func:`~cryptomon.backtest.indicators_nb.spec_scores`)."""
    over, under = float(cfg.rsi_overbought), float(cfg.rsi_oversold)
    return spec_scores(
        np.ascontiguousarray(v, dtype=np.float64),
        np.ascontiguousarray(closes, dtype=np.float64),
        under,
        under + RSI_MILD_BAND,
        over,
        over - RSI_MILD_BAND,
        float(cfg.near_band_fraction),
        FLAT_TOLERANCE,
    )


def _outcomes(
    v: np.ndarray,
    closes: np.ndarray,
    cfg: IndicatorStrategyConfig,
    totals: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(side 0/1 buy/2 sell, strength, grade floor 0 none/2 medium/3 strong) per row, as
    :func:`~cryptomon.trading.signals.scoring.spec_score` / ``votes_score`` decide;
    ``totals``: :func:`spec_totals` of the same readings, if the caller has them."""
    n = closes.shape[0]
    with np.errstate(invalid="ignore"):
        ready = ~(
            np.isnan(v[RSI])
            | np.isnan(v[MACD_SIGNAL])
            | np.isnan(v[PREV_MACD_SIGNAL])
            | np.isnan(v[UPPER])
            | np.isnan(v[SMA_SLOW])
            | np.isnan(v[EMA_SLOW])
        )
        side = np.zeros(n, dtype=np.int64)
        strength = np.zeros(n)
        floor = np.zeros(n, dtype=np.int64)
        rsi, close = v[RSI], closes
        if cfg.scoring == "spec":
            ready &= np.arange(1, n + 1) >= min(cfg.min_candles, cfg.max_candles)
            buy, sell = spec_totals(v, closes, cfg) if totals is None else totals
            total = buy + sell
            safe = np.where(total == 0, 1, total)
            s_buy, s_sell = buy / safe, sell / safe
            is_buy = ready & (total > 0) & (s_buy >= SPEC_MIN_STRENGTH) & (buy > sell)
            is_sell = ready & (total > 0) & ~is_buy & (s_sell >= SPEC_MIN_STRENGTH) & (sell > buy)
            side[is_buy], side[is_sell] = 1, 2
            strength[is_buy], strength[is_sell] = s_buy[is_buy], s_sell[is_sell]
            strong = np.where(is_buy, buy, sell) >= SPEC_STRONG_SCORE
            floor[is_buy | is_sell] = np.where(strong, 3, 2)[is_buy | is_sell]
        else:
            vote_rsi = np.where(
                rsi <= cfg.rsi_oversold, 1.0, np.where(rsi >= cfg.rsi_overbought, -1.0, 0.0)
            )
            band = np.where(close < v[LOWER], 1.0, np.where(close > v[UPPER], -1.0, 0.0))
            tol = FLAT_TOLERANCE * np.abs(close)
            trend = (
                0.0 + _sign(v[SMA_FAST] - v[SMA_SLOW], tol) + _sign(v[EMA_FAST] - v[EMA_SLOW], tol)
            ) + _sign(v[MACD], tol)
            trend = trend / 3
            osc = (0.0 + vote_rsi + band) / 2
            fire = ready & (trend != 0) & ~(trend * osc < 0)
            side[fire & (trend > 0)], side[fire & (trend < 0)] = 1, 2
            strength[fire] = np.minimum(1.0, (np.abs(trend) + np.abs(osc)) / 2)[fire]
    return side, strength, floor


_FLOORS = {0: None, 2: SignalGrade.MEDIUM, 3: SignalGrade.STRONG}


def indicator_signals(
    closes: np.ndarray,
    ends: np.ndarray,
    values: np.ndarray,
    trading: TradingConfig,
    totals: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(fires, side 1 buy / 2 sell, strength, grade rank) per row: ``fires`` where the
    generator publishes an indicator signal on the closed candle (``ends``: each candle's
    ``end``, the close time the runner gives it), the rest what that signal carries.
    ``totals``: :func:`spec_totals` of ``values`` and ``closes`` (the ``spec`` scoring's
    scores), if the caller has them (computed here otherwise)."""
    cfg = trading.indicators
    n = closes.shape[0]
    if not cfg.enabled or n == 0:
        zeros = np.zeros(n, dtype=np.int64)
        return np.zeros(n, dtype=np.bool_), zeros, np.zeros(n), zeros
    side, strength, floor = _outcomes(values, closes, cfg, totals)
    rank = np.zeros(n, dtype=np.int64)
    # each distinct (strength, grade floor) graded once: per floor (a few), the distinct
    # strengths (a 1-D unique, much cheaper than the unique pairs of a 2-D array)
    for f in np.unique(floor[side != 0]).tolist():
        rows = np.flatnonzero((side != 0) & (floor == f))
        uniq, inverse = np.unique(strength[rows], return_inverse=True)
        at_least = _FLOORS[int(f)]
        ranks = [GRADE_RANK[grade_for(s, trading.grades, at_least=at_least)] for s in uniq.tolist()]
        rank[rows] = np.asarray(ranks, dtype=np.int64)[np.ravel(inverse)]
    ends = np.ascontiguousarray(ends, dtype=np.float64)
    return cooldown_fires(side, rank, ends, cfg.cooldown_s), side, strength, rank


def indicator_fires(
    closes: np.ndarray, ends: np.ndarray, values: np.ndarray, trading: TradingConfig
) -> np.ndarray:
    """Rows whose closed candle makes the generator publish an indicator signal."""
    return indicator_signals(closes, ends, values, trading)[0]
