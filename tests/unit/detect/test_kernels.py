"""Differential tests of the rolling kernels against pandas / numpy references."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect import book_nb, rolling_zscore, whale_nb
from cryptomon.detect.base import SymbolInfo, TradeCols
from cryptomon.detect.book import BookDetector
from cryptomon.detect.detectors_nb import count_seen_nb, new_findings, rows_before_nb
from cryptomon.detect.kernels_nb import (
    E_COLS,
    R_COLS,
    R_MIN,
    R_N,
    R_W,
    ewma_batch_nb,
    ewma_push_nb,
    log_returns_nb,
    new_rolling,
    ring_minmax_nb,
    rolling_batch_nb,
)

RTOL = 1e-9


def exact_z(x: np.ndarray, window: int, min_samples: int) -> np.ndarray:
    """Two-pass numpy reference: z of x[i] against x[max(0, i-window+1): i+1]."""
    out = np.full(len(x), np.nan)
    for i in range(min_samples - 1, min(window - 1, len(x))):
        w = x[: i + 1]
        sd = w.std()
        out[i] = (x[i] - w.mean()) / sd if sd > 0 else np.nan
    if len(x) >= window:
        v = sliding_window_view(x, window)
        mean = v.mean(axis=1)
        sd = v.std(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (x[window - 1 :] - mean) / sd
        z[sd == 0] = np.nan
        out[window - 1 :] = z
    return out


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float = RTOL) -> None:
    assert np.array_equal(np.isnan(actual), np.isnan(expected))
    ok = ~np.isnan(expected)
    err = np.abs(actual[ok] - expected[ok]) / np.maximum(1.0, np.abs(expected[ok]))
    assert err.max(initial=0.0) < rtol, f"max relative error {err.max()}"


SERIES = {
    "normal": lambda rng, n: rng.normal(0.0, 1.0, n),
    "offset_random_walk": lambda rng, n: 60_000.0 + np.cumsum(rng.normal(0.0, 5.0, n)),
    "heavy_tailed": lambda rng, n: rng.standard_t(2, n) * 1e3,
    "lognormal_sizes": lambda rng, n: rng.lognormal(0.0, 1.5, n),
    "regime_switch": lambda rng, n: np.concatenate(
        [rng.normal(0, 1e3, n // 2), rng.normal(5.0, 1e-3, n - n // 2)]
    ),
}


@pytest.mark.parametrize("kind", sorted(SERIES))
@pytest.mark.parametrize(("window", "min_samples"), [(60, 30), (1000, 1000), (7, 2)])
def test_rolling_zscore_matches_exact_reference(kind: str, window: int, min_samples: int) -> None:
    """rolling_zscore equals a two-pass numpy computation within 1e-9 on long random series."""
    rng = np.random.default_rng(abs(hash((kind, window))) % 2**32)
    x = SERIES[kind](rng, 50_000)
    assert_close(rolling_zscore(x, window, min_samples), exact_z(x, window, min_samples))


def test_rolling_zscore_matches_pandas_on_well_conditioned_data() -> None:
    """Same result as pandas rolling mean / std(ddof=0) where pandas itself is accurate."""
    rng = np.random.default_rng(7)
    x = rng.normal(0.0, 1.0, 100_000)
    s = pd.Series(x)
    ref = (s - s.rolling(100, min_periods=20).mean()) / s.rolling(100, min_periods=20).std(ddof=0)
    assert_close(rolling_zscore(x, 100, 20), ref.to_numpy())


def test_rolling_batch_per_symbol_matches_reference() -> None:
    """Interleaved symbols in one batch: each value's (z, mean, std, n) against its own past."""
    rng = np.random.default_rng(3)
    n = 30_000
    ids = rng.integers(0, 3, n).astype(np.int64)
    vals = rng.normal(100.0, 2.0, n) * (1 + ids)
    buf, state = new_rolling(3, 50)
    state[:, R_W] = 50
    state[:, R_MIN] = 10
    out = np.empty((n, 4))
    # two calls: state carries over between batches
    rolling_batch_nb(ids[: n // 2], vals[: n // 2], buf, state, out[: n // 2])
    rolling_batch_nb(ids[n // 2 :], vals[n // 2 :], buf, state, out[n // 2 :])
    for sym in range(3):
        idx = np.flatnonzero(ids == sym)
        x = vals[idx]
        for j in (10, 11, 49, 50, 51, 777, len(x) - 1):
            past = x[max(0, j - 50) : j]
            assert out[idx[j], 3] == len(past)
            assert math.isclose(out[idx[j], 1], past.mean(), rel_tol=RTOL)
            assert math.isclose(out[idx[j], 2], past.std(), rel_tol=1e-8)
            z = (x[j] - past.mean()) / past.std()
            assert math.isclose(out[idx[j], 0], z, rel_tol=1e-8, abs_tol=1e-9)
        assert np.isnan(out[idx[:10], 0]).all()


def test_drift_stays_below_1e9_over_a_million_updates() -> None:
    """No drift after 1e6 window updates on a series whose mean is 1e6 times its std."""
    rng = np.random.default_rng(11)
    x = 1e6 + rng.normal(0.0, 1.0, 1_000_000)
    z = rolling_zscore(x, 500, 500)
    tail = x[-500:]
    expected = (x[-1] - tail.mean()) / tail.std()
    assert math.isclose(z[-1], expected, rel_tol=RTOL, abs_tol=RTOL)
    assert_close(z[-5000:], exact_z(x[-5499:], 500, 500)[-5000:])


def test_ewma_matches_recursive_reference_and_pandas_mean() -> None:
    """Time-aware EWMA equals the textbook recursion and, at a constant step, pandas ewm."""
    rng = np.random.default_rng(5)
    n = 20_000
    x = rng.normal(10.0, 3.0, n)
    t = np.arange(n, dtype=np.float64)
    ewma = np.zeros((1, E_COLS))
    out = np.empty((n, 2))
    hl = 30.0
    ewma_batch_nb(np.zeros(n, np.int64), x, t, np.array([hl]), ewma, out)
    a = 1.0 - math.exp(-math.log(2) / hl)
    ref_mean = pd.Series(x).ewm(alpha=a, adjust=False).mean().to_numpy()
    assert_close(out[:, 0], ref_mean)
    mean, var = x[0], 0.0
    for v in x[1:]:
        d = v - mean
        mean += a * d
        var = (1 - a) * (var + a * d * d)
    assert math.isclose(out[-1, 1], math.sqrt(var), rel_tol=RTOL)


def test_log_returns_and_minmax_match_numpy() -> None:
    """log_returns_nb equals np.diff(np.log(p)); ring_minmax_nb equals min/max."""
    rng = np.random.default_rng(9)
    p = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 10_000)))
    r = log_returns_nb(p)
    assert np.isnan(r[0])
    assert_close(r[1:], np.diff(np.log(p)), rtol=1e-12)
    lo, hi = ring_minmax_nb(p, 5000)
    assert (lo, hi) == (p[:5000].min(), p[:5000].max())


@pytest.mark.parametrize(
    ("values", "window", "min_samples", "needle"),
    [
        (np.zeros(5), 0, 1, "window"),
        (np.zeros(5), 3, 4, "min_samples"),
        (np.zeros(5), 3, 0, "min_samples"),
        (np.zeros((2, 2)), 3, 1, "one-dimensional"),
    ],
)
def test_rolling_zscore_rejects_bad_arguments(
    values: np.ndarray, window: int, min_samples: int, needle: str
) -> None:
    """Bad arguments raise a ValueError naming the argument."""
    with pytest.raises(ValueError, match=needle):
        rolling_zscore(values, window, min_samples)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 999, 1000])
@pytest.mark.parametrize("q", [0.0, 0.5, 0.9, 0.995, 1.0])
def test_whale_quantile_by_partition_equals_the_sorted_one(n: int, q: float) -> None:
    """The whale window's median and quantile come from a selection: the same values a full
    sort gives, bit for bit, ties, repeated values and presorted orders included."""
    rng = np.random.default_rng(n)
    random = rng.lognormal(5.0, 2.0, n)
    orders = (
        random,
        np.round(rng.lognormal(1.0, 1.0, n)),  # ties
        np.sort(random),  # orders a selection handles worst, and a sort fallback
        np.sort(random)[::-1],
        np.full(n, 7.0),
        np.arange(n) % 2 + 1.0,
        np.concatenate([np.sort(random)[::2], np.sort(random)[1::2][::-1]]),  # organ pipe
    )
    for vals in orders:
        buf = vals.reshape(1, n).copy()
        window = np.zeros((1, R_COLS))
        window[0, R_N] = n
        state = np.zeros((1, whale_nb.W_COLS))
        whale_nb._refresh_nb(buf, window, state, 0, q)
        ordered = np.sort(vals)
        assert state[0, whale_nb.W_MEDIAN] == whale_nb._at_nb(ordered, 0.5)
        assert state[0, whale_nb.W_QUANTILE] == whale_nb._at_nb(ordered, q)
        assert buf[0].tolist() == vals.tolist()  # the window itself is left as it was


def test_count_seen_matches_the_numpy_counting() -> None:
    """The warm-up counting kernel: counts per market, the earliest time (NaN never replaces
    a time; a first NaN takes one) and the time of each market's last row."""
    sid = np.array([2, 0, 2, 1, 0, 2, 1], dtype=np.int64)
    ts = np.array([5.0, 3.0, math.nan, 9.0, 1.0, 4.0, math.nan])
    count = np.array([0, 4, 1], dtype=np.int64)
    first = np.array([math.nan, 2.0, 7.0])
    last = np.full(3, math.nan)
    want_count = count + np.bincount(sid, minlength=3)
    want_first = first.copy()
    earlier = ~(ts >= first[sid])
    np.fmin.at(want_first, sid[earlier], ts[earlier])
    want_last = last.copy()
    want_last[sid] = ts
    short = (np.zeros(2, dtype=np.int64), np.full(2, math.nan), np.full(2, math.nan))
    assert count_seen_nb(sid, ts, *short) == 3  # market 2 does not fit: the length needed
    assert short[0].tolist() == [0, 0]  # ... and nothing counted
    assert count_seen_nb(sid, ts, count, first, last) == 0
    assert count.tolist() == want_count.tolist() == [2, 6, 4]
    assert np.array_equal(first, want_first, equal_nan=True)
    assert first.tolist() == [1.0, 2.0, 4.0]
    assert np.array_equal(last, want_last, equal_nan=True)
    rows, earliest = rows_before_nb(sid, ts, 5)  # market 2 up to row 5: one time is NaN
    assert rows == 3
    assert math.isnan(earliest)
    assert rows_before_nb(sid, ts, 4) == (2, 1.0)
    assert rows_before_nb(sid, ts, 0) == (1, 5.0)


def test_book_kernel_ewmas_equal_one_push_per_row() -> None:
    """The book kernel shares one weight between its spread and imbalance EWMAs (same
    half-life) when both step from the same time: every EWMA stays bit for bit what
    ``ewma_push_nb`` per row gives, also where a NaN spread or imbalance makes the steps
    differ."""
    rng = np.random.default_rng(7)
    n = 400
    sid = rng.integers(0, 3, n).astype(np.int64)
    ts = np.cumsum(rng.exponential(0.3, n))
    ts[rng.random(n) < 0.2] -= 0.5  # steps back in time: clamped at 0
    spread = rng.lognormal(1.0, 0.5, n)
    spread[rng.random(n) < 0.15] = math.nan
    imb = rng.uniform(-1.0, 1.0, n)
    imb[rng.random(n) < 0.15] = math.nan
    bid = 100.0 + rng.normal(0.0, 0.1, n)
    ask = bid + 0.01
    det = BookDetector()
    cfg = AnomalyDetectionConfig()
    for s in range(3):
        det.configure(SymbolInfo(sid=s, exchange="x", symbol=f"S{s}-USD", quote="USD", cfg=cfg))
    book_nb.book_batch_nb(
        sid, ts, spread, imb, bid, ask, det.state, det.spread_ewma, det.imbalance_ewma,
        det.imbalance_smooth, det.params, new_findings(4 * n), 0,
    )  # fmt: skip
    want = {name: np.zeros((3, E_COLS)) for name in ("spread", "imb", "smooth")}
    for i in range(n):
        s, t = int(sid[i]), float(ts[i])
        if math.isfinite(spread[i]) and spread[i] >= 0.0:
            ewma_push_nb(want["spread"], s, spread[i], t, cfg.spread_halflife_s)
        if math.isfinite(imb[i]):
            ewma_push_nb(want["smooth"], s, imb[i], t, cfg.book_imbalance_smoothing_s)
            ewma_push_nb(want["imb"], s, imb[i], t, cfg.spread_halflife_s)
    # the rows of the three markets (state arrays grow by doubling: a fourth, unused row)
    assert det.spread_ewma[:3].tobytes() == want["spread"].tobytes()
    assert det.imbalance_ewma[:3].tobytes() == want["imb"].tobytes()
    assert det.imbalance_smooth[:3].tobytes() == want["smooth"].tobytes()


def test_price_kernel_keeps_each_rows_change_after_it() -> None:
    """With ``pct_rows`` (a slot per row), the price detector keeps the price change of each
    row's market after that row: what ``change_pct`` answers after one-row batches (an
    invalid price keeps the market's last change); the findings are the same as without."""
    from cryptomon.detect.detectors_nb import new_findings, read_findings
    from cryptomon.detect.price import NO_ROWS, PriceDetector

    cfg = AnomalyDetectionConfig(bucket_seconds=1.0, lookback_window_minutes=1.0, min_samples=5)
    rng = np.random.default_rng(4)
    n = 600
    sid = rng.integers(0, 3, n)
    ts = 1_700_000_000.0 + np.cumsum(rng.exponential(0.3, n))
    px = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    px[::97] = math.nan

    def detector() -> PriceDetector:
        det = PriceDetector()
        for s in range(3):
            det.configure(SymbolInfo(sid=s, exchange="x", symbol=f"S{s}-USD", quote="USD", cfg=cfg))
        return det

    def cols(rows: slice) -> TradeCols:
        k = len(sid[rows])
        return TradeCols(sid=sid[rows], ts=ts[rows], px=px[rows], amt=np.ones(k), buy=np.ones(k))

    kept, plain, one_by_one = detector(), detector(), detector()
    kept.pct_rows = np.full(n, -1.0)
    fires_kept, fires_plain = new_findings(4 * n), new_findings(4 * n)
    m_kept = kept.process(cols(slice(0, n)), fires_kept, 0)
    m_plain = plain.process(cols(slice(0, n)), fires_plain, 0)
    assert plain.pct_rows is NO_ROWS
    assert m_kept > 0
    assert read_findings(fires_kept, m_kept) == read_findings(fires_plain, m_plain)
    after = []
    for i in range(n):
        one_by_one.process(cols(slice(i, i + 1)), new_findings(8), 0)
        after.append(one_by_one.change_pct(int(sid[i])))
    np.testing.assert_array_equal(kept.pct_rows, np.array(after))
