"""Hypothesis properties of the rolling z-score and the detectors."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptomon.clock import ManualClock
from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect import rolling_zscore
from cryptomon.detect.engine import DetectorEngine
from cryptomon.events import Anomaly, BookTop, Trade
from cryptomon.hub import Hub

windows = st.tuples(st.integers(2, 40), st.integers(1, 40)).map(lambda t: (t[0], min(t[0], t[1])))
ints = st.lists(st.integers(-1000, 1000), min_size=1, max_size=300)


@settings(max_examples=150, deadline=None)
@given(value=st.floats(-1e12, 1e12, allow_nan=False), n=st.integers(1, 400), w=windows)
def test_constant_series_never_fires(value: float, n: int, w: tuple[int, int]) -> None:
    """A constant series has std 0 everywhere: every z is NaN (nothing can fire)."""
    z = rolling_zscore(np.full(n, value), w[0], w[1])
    assert np.isnan(z).all()


@settings(max_examples=150, deadline=None)
@given(
    xs=ints,
    w=windows,
    scale=st.floats(0.01, 100.0),
    shift=st.floats(-1e4, 1e4),
)
def test_z_is_invariant_to_shift_and_positive_scaling(
    xs: list[int], w: tuple[int, int], scale: float, shift: float
) -> None:
    """z(a*x + b) == z(x) for a > 0 (same NaNs; values within 1e-6)."""
    x = np.array(xs, dtype=np.float64)
    z1 = rolling_zscore(x, *w)
    z2 = rolling_zscore(x * scale + shift, *w)
    assert np.array_equal(np.isnan(z1), np.isnan(z2))
    ok = ~np.isnan(z1)
    np.testing.assert_allclose(z2[ok], z1[ok], rtol=1e-6, atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(xs=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200), w=windows)
def test_warm_up_emits_nothing(xs: list[float], w: tuple[int, int]) -> None:
    """The first min_samples - 1 values never get a z-score."""
    z = rolling_zscore(np.array(xs), *w)
    assert np.isnan(z[: w[1] - 1]).all()


def _engine(**overrides: object) -> tuple[DetectorEngine, list[Anomaly]]:
    hub = Hub()
    got: list[Anomaly] = []
    hub.subscribe(Anomaly, got.append)
    cfg = AnomalyDetectionConfig(
        bucket_seconds=1, lookback_window_minutes=1, min_samples=5, **overrides
    )
    return DetectorEngine(hub=hub, clock=ManualClock(), config=cfg), got


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    price=st.floats(0.001, 1e6),
    amount=st.floats(1e-6, 1e4),
    spread=st.floats(0.01, 100.0),
    imbalance=st.floats(-0.49, 0.49),
    n=st.integers(1, 400),
)
def test_constant_market_never_fires(
    price: float, amount: float, spread: float, imbalance: float, n: int
) -> None:
    """Identical trades and book tops, one per second, never produce an anomaly (quote XYZ
    has no absolute whale threshold)."""
    eng, got = _engine()
    hub = eng.hub
    for i in range(n):
        t = 1_700_000_000.0 + i
        hub.publish(
            Trade(
                exchange="x",
                symbol="A-XYZ",
                ts=t,
                ts_recv=t,
                price=price,
                amount=amount,
                side="buy" if i % 2 else "sell",
            )
        )
        hub.publish(
            BookTop(
                exchange="x",
                symbol="A-XYZ",
                ts=t,
                ts_recv=t,
                bid=price,
                bid_size=1.0,
                ask=price * (1 + spread / 1e4),
                ask_size=1.0,
                spread=price * spread / 1e4,
                spread_bps=spread,
                bid_depth=1 + imbalance,
                ask_depth=1 - imbalance,
                imbalance=imbalance,
                levels=10,
            )
        )
    eng.flush()
    assert got == []
