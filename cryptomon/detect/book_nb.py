# ruff: noqa: PLR0917  (numba kernels take their state arrays positionally)
"""Book kernel: spread blow-out and persistent depth imbalance."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cryptomon.detect.detectors_nb import REARM, fire_nb, level_nb
from cryptomon.detect.kernels_nb import E_MEAN, E_N, E_VAR, ewma_push_nb

# finding codes
CODE_IMBALANCE = 0
CODE_SPREAD = 1

B_START = 0  # start of the running imbalance excursion (NaN = none)
B_SIGN = 1
B_LVL_IMB = 2
B_LVL_SPREAD = 3
B_COLS = 4

BOOK_PARAMS = np.dtype(
    [
        ("imbalance", np.float64),  # |smoothed depth imbalance| threshold
        ("imbalance_min_s", np.float64),  # ... held for at least this long
        ("spread_z", np.float64),  # z threshold of the spread against its EWMA
        ("spread_ratio", np.float64),  # spread must also be this multiple of its mean
        ("halflife_s", np.float64),  # half-life of the spread and imbalance EWMAs
        ("min_samples", np.float64),  # spread updates before the spread rule counts
        ("smoothing_s", np.float64),  # half-life of the smoothed imbalance
    ]
)


@njit(cache=True)
def book_batch_nb(
    sid: np.ndarray,
    ts: np.ndarray,
    spread: np.ndarray,
    imb: np.ndarray,
    state: np.ndarray,
    spread_ewma: np.ndarray,
    imbalance_ewma: np.ndarray,
    imbalance_smooth: np.ndarray,
    params: np.ndarray,
    fires: np.ndarray,
    m: int,
) -> int:
    """Spread blow-out: z of the spread against its time-decayed EWMA (std floored at
    (ratio - 1) * mean / z, so a constant spread still gives a finite z) and at least ``ratio``
    times that mean. Depth imbalance: its short EWMA (``smoothing_s`` half-life) beyond a
    threshold, with the same sign, for a minimum time."""
    for i in range(sid.shape[0]):
        s = sid[i]
        t = ts[i]
        if not math.isfinite(t):
            continue
        sp = spread[i]
        if math.isfinite(sp) and sp >= 0.0:
            n = spread_ewma[s, E_N]
            mean = spread_ewma[s, E_MEAN]
            std = math.sqrt(spread_ewma[s, E_VAR])
            zthr = params[s].spread_z
            ratio = params[s].spread_ratio
            if n >= params[s].min_samples:
                excess = sp - mean
                std_eff = max(std, (ratio - 1.0) * abs(mean) / zthr, 1e-12)
                z = excess / std_eff
                if z >= zthr and sp >= ratio * mean:
                    lvl = level_nb(z / zthr)
                    if lvl + 1 > state[s, B_LVL_SPREAD]:
                        state[s, B_LVL_SPREAD] = lvl + 1
                        m = fire_nb(
                            fires,
                            m,
                            row=i,
                            code=CODE_SPREAD,
                            value=sp,
                            threshold=mean + zthr * std_eff,
                            z=z,
                            mean=mean,
                            std=std,
                            samples=n,
                            level=lvl,
                            aux=sp / mean if mean > 0.0 else math.inf,
                        )
                elif z < REARM * zthr:
                    state[s, B_LVL_SPREAD] = 0.0
            ewma_push_nb(spread_ewma, s, sp, t, params[s].halflife_s)
        x = imb[i]
        if not math.isfinite(x):
            continue
        ewma_push_nb(imbalance_smooth, s, x, t, params[s].smoothing_s)
        ewma_push_nb(imbalance_ewma, s, x, t, params[s].halflife_s)
        xs = imbalance_smooth[s, E_MEAN]
        thr = params[s].imbalance
        if abs(xs) >= thr:
            sign = 1.0 if xs > 0 else -1.0
            if math.isnan(state[s, B_START]) or state[s, B_SIGN] != sign:
                state[s, B_START] = t
                state[s, B_SIGN] = sign
                state[s, B_LVL_IMB] = 0.0
            dur = t - state[s, B_START]
            if dur >= params[s].imbalance_min_s:
                lvl = level_nb(abs(xs) / thr)
                if lvl + 1 > state[s, B_LVL_IMB]:
                    state[s, B_LVL_IMB] = lvl + 1
                    imean = imbalance_ewma[s, E_MEAN]
                    istd = math.sqrt(imbalance_ewma[s, E_VAR])
                    zi = (xs - imean) / istd if istd > 0.0 else math.nan
                    m = fire_nb(
                        fires,
                        m,
                        row=i,
                        code=CODE_IMBALANCE,
                        value=xs,
                        threshold=thr if xs > 0 else -thr,
                        z=zi,
                        mean=imean,
                        std=istd,
                        samples=imbalance_ewma[s, E_N],
                        level=lvl,
                        aux=dur,
                    )
        else:
            state[s, B_START] = math.nan
            state[s, B_LVL_IMB] = 0.0
    return m
