"""The numba indicator kernels agree with pandas reference computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cryptomon.backtest.fastpath import readings
from cryptomon.backtest.indicators_nb import RSI
from cryptomon.config import IndicatorStrategyConfig
from cryptomon.trading.indicators_nb import bollinger_nb, ema_nb, macd_nb, rsi_nb, sma_nb
from cryptomon.trading.signals import IndicatorSet


@pytest.fixture(scope="module")
def closes() -> np.ndarray:
    rng = np.random.default_rng(7)
    return 100 + np.cumsum(rng.normal(0, 1, 300))


def _ema_ref(x: pd.Series, n: int) -> pd.Series:
    seeded = x.copy()
    seeded.iloc[: n - 1] = np.nan
    seeded.iloc[n - 1] = x.iloc[:n].mean()
    return (
        seeded.ewm(alpha=2 / (n + 1), adjust=False, ignore_na=True)
        .mean()
        .where(np.arange(len(x)) >= n - 1)
    )


def test_sma_matches_pandas_rolling_mean(closes: np.ndarray) -> None:
    """SMA(20) equals pandas rolling(20).mean(), NaN during warm-up."""
    got = sma_nb(closes, 20)
    ref = pd.Series(closes).rolling(20).mean().to_numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-9, equal_nan=True)


def test_ema_matches_sma_seeded_pandas_ewm(closes: np.ndarray) -> None:
    """EMA(12) equals an SMA-seeded pandas ewm with alpha 2/(n+1)."""
    got = ema_nb(closes, 12)
    ref = _ema_ref(pd.Series(closes), 12).to_numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-9, equal_nan=True)


def test_rsi_matches_wilder_smoothing(closes: np.ndarray) -> None:
    """RSI(14) equals Wilder's smoothing computed with pandas, and stays within [0, 100]."""
    got = rsi_nb(closes, 14)
    delta = pd.Series(closes).diff()
    gain = delta.clip(lower=0)
    loss = -delta.clip(upper=0)
    n = 14
    ag = gain.copy() * np.nan
    al = loss.copy() * np.nan
    ag.iloc[n] = gain.iloc[1 : n + 1].mean()
    al.iloc[n] = loss.iloc[1 : n + 1].mean()
    for i in range(n + 1, len(closes)):
        ag.iloc[i] = (ag.iloc[i - 1] * (n - 1) + gain.iloc[i]) / n
        al.iloc[i] = (al.iloc[i - 1] * (n - 1) + loss.iloc[i]) / n
    ref = (100 - 100 / (1 + ag / al)).to_numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-9, equal_nan=True)
    assert np.nanmin(got) >= 0
    assert np.nanmax(got) <= 100


def test_rsi_of_a_rising_series_is_100() -> None:
    """Only gains: RSI is 100 (no division by zero)."""
    assert rsi_nb(np.arange(1.0, 40.0), 14)[-1] == 100.0


def test_rsi_of_a_flat_series_is_50_everywhere_it_is_computed() -> None:
    """No change at all: gain and loss are both 0 and RSI is neutral 50 (was 100, read as
    overbought: +2 to the sell score of a market that never moved), in the batch kernel, the
    live incremental set and the backtest's stream; the first change moves it off 50."""
    closes = np.concatenate([np.full(40, 1.0), [1.01]])
    cfg = IndicatorStrategyConfig()
    want = np.full(41, np.nan)
    want[14:40] = 50.0
    want[40] = 100.0
    np.testing.assert_array_equal(rsi_nb(closes, 14), want)
    state = IndicatorSet(cfg)
    np.testing.assert_array_equal([state.update(float(c)).rsi for c in closes], want)
    np.testing.assert_array_equal(readings(closes, cfg)[RSI], want)


def test_macd_line_signal_and_histogram(closes: np.ndarray) -> None:
    """MACD(12,26,9): line = EMA12 - EMA26, signal = EMA9 of the line, hist = line - signal."""
    line, sig, hist = macd_nb(closes, 12, 26, 9)
    s = pd.Series(closes)
    ref_line = (_ema_ref(s, 12) - _ema_ref(s, 26)).to_numpy()
    np.testing.assert_allclose(line, ref_line, rtol=1e-9, equal_nan=True)
    ref_sig = np.full(len(closes), np.nan)
    ref_sig[25:] = _ema_ref(pd.Series(ref_line[25:]), 9).to_numpy()
    np.testing.assert_allclose(sig, ref_sig, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(hist, line - sig, equal_nan=True)
    assert np.isnan(sig[32])
    assert not np.isnan(sig[33])


def test_bollinger_bands_use_population_std(closes: np.ndarray) -> None:
    """Bollinger(20, 2): SMA +/- 2 population standard deviations."""
    mid, upper, lower = bollinger_nb(closes, 20, 2.0)
    roll = pd.Series(closes).rolling(20)
    np.testing.assert_allclose(mid, roll.mean().to_numpy(), rtol=1e-9, equal_nan=True)
    std = roll.std(ddof=0).to_numpy()
    np.testing.assert_allclose(upper, mid + 2 * std, rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(lower, mid - 2 * std, rtol=1e-9, equal_nan=True)


def test_short_input_is_all_nan() -> None:
    """Fewer values than the period: every output is NaN, nothing raises."""
    x = np.array([1.0, 2.0, 3.0])
    assert np.isnan(sma_nb(x, 20)).all()
    assert np.isnan(ema_nb(x, 12)).all()
    assert np.isnan(rsi_nb(x, 14)).all()
    assert np.isnan(macd_nb(x, 12, 26, 9)[1]).all()
    assert np.isnan(bollinger_nb(x, 20, 2.0)[1]).all()
