"""Differential tests on the real shared recordings: the detector statistics against
pandas / numpy computed on the same trades, replayed with cryptofeed's own playback."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from cryptomon.clock import ManualClock
from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect import rolling_zscore
from cryptomon.detect.engine import DetectorEngine
from cryptomon.detect.kernels_nb import R_N, R_S1, R_S2
from cryptomon.events import Trade
from cryptomon.hub import Hub

EXCHANGES = ("BINANCE", "BINANCE_FUTURES", "BITFINEX", "GATEIO", "KRAKEN", "OKX")
RTOL = 1e-9
Key = tuple[str, str]


@pytest.fixture(scope="module")
def recorded_trades(shared_data: Path) -> dict[Key, list[tuple[float, float, float, str]]]:
    """(exchange, symbol) -> [(ts, price, amount, side)] from cryptofeed's playback."""
    from cryptofeed.raw_data_collection import playback

    out: dict[Key, list[tuple[float, float, float, str]]] = defaultdict(list)
    for name in EXCHANGES:

        async def on_trade(t: Any, receipt: float, name: str = name) -> None:
            ts = float(t.timestamp or receipt)
            out[(name, t.symbol)].append((ts, float(t.price), float(t.amount), t.side))

        files = sorted(str(p) for p in shared_data.glob(f"{name}.*"))
        playback(name, files, callbacks={"trades": on_trade}, config=None)
    assert sum(len(v) for v in out.values()) == 2 + 91 + 210 + 9 + 10 + 74
    return dict(out)


def exact_z(x: np.ndarray, window: int, min_samples: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    for i in range(len(x)):
        w = x[max(0, i - window + 1) : i + 1]
        if len(w) >= min_samples and w.std() > 0:
            out[i] = (x[i] - w.mean()) / w.std()
    return out


def test_rolling_zscore_on_real_prices_and_notionals(recorded_trades: dict) -> None:
    """z of real prices and log notionals (each market, and all of them looped) within 1e-9."""
    series = []
    for trades in recorded_trades.values():
        arr = np.array([(p, a) for _, p, a, _ in trades])
        series += [arr[:, 0], np.log(arr[:, 0] * arr[:, 1])]
    series.append(np.tile(np.concatenate(series[1::2]), 50))  # long: ~20k real notionals
    for x in series:
        for window, min_samples in ((20, 5), (100, 100)):
            z = rolling_zscore(x, window, min_samples)
            ref = exact_z(x, window, min_samples) if len(x) < 2000 else None
            if ref is None:
                ref = np.full(len(x), np.nan)
                ref[: window - 1] = exact_z(x[: window - 1], window, min_samples)
                v = sliding_window_view(x, window)
                sd = v.std(axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    ref[window - 1 :] = np.where(sd > 0, (x[window - 1 :] - v.mean(1)) / sd, np.nan)
            assert np.array_equal(np.isnan(z), np.isnan(ref))
            ok = ~np.isnan(ref)
            err = np.abs(z[ok] - ref[ok]) / np.maximum(1.0, np.abs(ref[ok]))
            assert err.max(initial=0.0) < RTOL


def _pandas_buckets(trades: list[tuple[float, float, float, str]], bucket: float) -> pd.DataFrame:
    df = pd.DataFrame(trades, columns=["ts", "price", "amount", "side"])
    df["b"] = np.floor(df["ts"] / bucket).astype(np.int64)
    g = df.groupby("b")
    out = pd.DataFrame({"volume": g["amount"].sum(), "close": g["price"].last()})
    full = out.reindex(range(out.index.min(), out.index.max() + 1))
    full["volume"] = full["volume"].fillna(0.0)
    full["close"] = full["close"].ffill()
    return full


def winsorized(values: np.ndarray, window: int, min_samples: int, k: float) -> np.ndarray:
    """The volume window as documented: once warm, a bucket enters clipped at mean + k*std,
    the std floored at a tenth of the mean of the buckets that had trades."""
    win: list[float] = []
    ref, nref = 0.0, 0
    for v in values:
        if v > 0:
            nref = min(nref + 1, window)
            ref += (v - ref) / nref
        past = np.array(win[-window:])
        clipped = v
        if len(past) >= min_samples:
            clipped = min(v, past.mean() + k * max(past.std(), 0.1 * ref))
        win.append(float(clipped))
    return np.array(win[-window:])


@pytest.mark.parametrize(
    "key", [("OKX", "BTC-USDT"), ("BINANCE_FUTURES", "SUSHI-USDT-PERP"), ("BITFINEX", "DOG-USD")]
)
def test_volume_and_close_statistics_match_pandas(recorded_trades: dict, key: Key) -> None:
    """Bucket volumes (winsorized) and closes in the engine's windows equal pandas groupby."""
    trades = sorted(recorded_trades[key])
    assert len(trades) >= 30
    cfg = AnomalyDetectionConfig(bucket_seconds=0.25, lookback_window_minutes=0.25, min_samples=2)
    hub = Hub()
    eng = DetectorEngine(hub=hub, clock=ManualClock(), config=cfg)
    for ts, price, amount, side in trades:
        hub.publish(
            Trade(
                exchange=key[0],
                symbol=key[1],
                ts=ts,
                ts_recv=ts,
                price=price,
                amount=amount,
                side=side,
            )
        )
    eng.flush()
    sid = eng.symbol_id(*key)
    ref = _pandas_buckets(trades, 0.25)
    window = 60  # 15 s / 0.25 s
    completed = ref.iloc[:-1]  # the running bucket is not in the window yet
    closes = completed["close"].to_numpy()[-window:]
    volumes = winsorized(completed["volume"].to_numpy(), window, 2, cfg.volume_threshold_multiplier)
    volume, price = eng.detectors["volume"], eng.detectors["price"]
    for past, roll in ((volumes, volume.roll), (closes, price.closes)):
        st = roll.state[sid]
        n = st[R_N]
        assert n == len(past) >= 2
        mean = st[4] + st[R_S1] / n
        var = st[R_S2] / n - (st[R_S1] / n) ** 2
        assert math.isclose(mean, past.mean(), rel_tol=RTOL)
        assert math.isclose(math.sqrt(max(var, 0.0)), past.std(), rel_tol=1e-8, abs_tol=1e-12)
    # running bucket: volume so far, and the price change vs the window's low/high
    assert math.isclose(eng.detectors["volume"].state[sid, 1], ref["volume"].iloc[-1], rel_tol=RTOL)
