# ruff: noqa: PLR0917  (numba kernels take their state arrays positionally)
"""Volume kernel: bucket volume z-score and buy/sell imbalance (also liquidations)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cryptomon.detect.detectors_nb import fire_nb, level_nb
from cryptomon.detect.kernels_nb import R_MIN, R_N, R_W, mean_nb, push_nb, std_nb

# finding codes
CODE_VOLUME = 0
CODE_IMBALANCE = 1

V_IDX = 0  # current bucket index (NaN before the first event)
V_VOL = 1
V_NOTIONAL = 2
V_BUY = 3
V_SELL = 4
V_TRADES = 5
V_LVL = 6  # fired level + 1 in this bucket (volume)
V_LVL_IMB = 7
V_REF = 8  # mean volume of the completed buckets that had trades (lulls do not lower it)
V_REF_N = 9  # ... how many such buckets it averages (capped at the window length)
V_COLS = 10

# the std behind the z-score is at least this fraction of V_REF: a window that a lull filled
# with zeros (std 0) still scores the next burst, and clipping never freezes the window (small:
# on steady markets, where the std is a fraction of the mean, it must not bind)
STD_FLOOR = 0.1

VOLUME_PARAMS = np.dtype(
    [
        ("bucket_s", np.float64),  # bucket length, s
        ("z", np.float64),  # z-score threshold of the bucket volume
        ("min_ratio", np.float64),  # ... and at least this multiple of the mean bucket (0: none)
        ("imbalance", np.float64),  # |buy - sell| / volume threshold
        ("imbalance_trades", np.float64),  # trades in the bucket before imbalance counts
    ]
)


@njit(cache=True)
def std_eff_nb(state: np.ndarray, window: np.ndarray, s: int) -> float:
    """The window's std, floored at STD_FLOOR x the mean active bucket (NaN during warm-up)."""
    if window[s, R_N] < max(window[s, R_MIN], 1.0):
        return math.nan
    floor = STD_FLOOR * state[s, V_REF]
    std = max(std_nb(window, s), floor)
    return std if std > 0.0 else math.nan


@njit(cache=True)
def fire_level_nb(mean: float, std: float, k: float, ratio: float) -> float:
    """The bucket volume that fires: ``k`` std above the mean and ``ratio`` x the mean."""
    return max(mean + k * std, ratio * mean)


@njit(cache=True)
def _close_nb(
    state: np.ndarray, buf: np.ndarray, window: np.ndarray, s: int, k: float, ratio: float
) -> None:
    """The running bucket is complete: into the window (an anomalous one clipped at the
    firing level, so one burst does not blind the detector to the next; the floored std
    keeps that level above the mean), and into the mean of active buckets."""
    done = state[s, V_VOL]
    if done > 0.0:
        nref = min(state[s, V_REF_N] + 1.0, window[s, R_W])
        state[s, V_REF] += (done - state[s, V_REF]) / nref
        state[s, V_REF_N] = nref
    std = std_eff_nb(state, window, s)
    if not math.isnan(std):
        done = min(done, fire_level_nb(mean_nb(window, s), std, k, ratio))
    push_nb(buf, window, s, done)


@njit(cache=True)
def volume_batch_nb(
    sid: np.ndarray,
    ts: np.ndarray,
    px: np.ndarray,
    amt: np.ndarray,
    buy: np.ndarray,
    state: np.ndarray,
    buf: np.ndarray,
    window: np.ndarray,
    params: np.ndarray,
    fires: np.ndarray,
    m: int,
) -> int:
    """Volume per bucket z-scored against the completed buckets of the lookback (the running
    bucket is tested as it fills; it fires at ``z`` std above the mean and at least
    ``min_ratio`` x the mean bucket: on sparse, heavy-tailed markets the std of a window of
    mostly quiet buckets says little), and buy/sell imbalance of the running bucket."""
    for i in range(sid.shape[0]):
        s = sid[i]
        if not (amt[i] >= 0.0 and px[i] > 0.0 and math.isfinite(ts[i]) and amt[i] < math.inf):
            continue
        b = math.floor(ts[i] / params[s].bucket_s)
        cur = state[s, V_IDX]
        if math.isnan(cur):
            state[s, V_IDX] = b
        elif b > cur:
            _close_nb(state, buf, window, s, params[s].z, params[s].min_ratio)
            gap = min(b - cur - 1.0, window[s, R_W])
            for _ in range(int(gap)):
                push_nb(buf, window, s, 0.0)
            state[s, V_IDX] = b
            for c in range(V_VOL, V_REF):
                state[s, c] = 0.0
        a = amt[i]
        state[s, V_VOL] += a
        state[s, V_NOTIONAL] += a * px[i]
        if buy[i] > 0.0:
            state[s, V_BUY] += a
        else:
            state[s, V_SELL] += a
        state[s, V_TRADES] += 1.0
        vol = state[s, V_VOL]
        std = std_eff_nb(state, window, s)
        if not math.isnan(std):
            mean = mean_nb(window, s)
            z = (vol - mean) / std
            n = window[s, R_N]
            k = params[s].z
            ratio = params[s].min_ratio
            level = fire_level_nb(mean, std, k, ratio)
            if z >= k and vol >= level:
                lvl = level_nb(min(z / k, vol / (ratio * mean) if ratio * mean > 0.0 else z / k))
                if lvl + 1 > state[s, V_LVL]:
                    state[s, V_LVL] = lvl + 1
                    m = fire_nb(
                        fires,
                        m,
                        row=i,
                        code=CODE_VOLUME,
                        value=vol,
                        threshold=level,
                        z=z,
                        mean=mean,
                        std=std,
                        samples=n,
                        level=lvl,
                        aux=state[s, V_NOTIONAL],
                    )
            tot = state[s, V_BUY] + state[s, V_SELL]
            thr = params[s].imbalance
            if tot > 0.0 and vol >= mean and state[s, V_TRADES] >= params[s].imbalance_trades:
                imb = (state[s, V_BUY] - state[s, V_SELL]) / tot
                if abs(imb) >= thr:
                    lvl = level_nb(abs(imb) / thr)
                    if lvl + 1 > state[s, V_LVL_IMB]:
                        state[s, V_LVL_IMB] = lvl + 1
                        m = fire_nb(
                            fires,
                            m,
                            row=i,
                            code=CODE_IMBALANCE,
                            value=imb,
                            threshold=thr,
                            z=z,
                            mean=mean,
                            std=std,
                            samples=n,
                            level=lvl,
                            aux=state[s, V_TRADES],
                        )
    return m
