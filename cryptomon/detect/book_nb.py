# ruff: noqa: PLR0917  (numba kernels take their state arrays positionally)
"""Book kernel: spread blow-out and persistent depth imbalance."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cryptomon.detect.detectors_nb import (
    _REARM,
    C_BOOK_IMB,
    C_SPREAD,
    _fire_nb,
    level_nb,
)
from cryptomon.detect.kernels_nb import (
    E_MEAN,
    E_N,
    E_VAR,
    _ewma_push_nb,
)

B_START = 0  # start of the running imbalance excursion (NaN = none)
B_SIGN = 1
B_LVL_IMB = 2
B_LVL_SPREAD = 3
B_COLS = 4

PB_IMB = 0
PB_IMB_S = 1
PB_SPREAD_Z = 2
PB_SPREAD_RATIO = 3  # spread must also be this multiple of its mean
PB_HALFLIFE = 4
PB_MIN = 5
PB_SMOOTH = 6  # half-life of the smoothed imbalance, s
PB_COLS = 7


@njit(cache=True)
def book_batch_nb(
    sid: np.ndarray,
    ts: np.ndarray,
    spread: np.ndarray,
    imb: np.ndarray,
    bst: np.ndarray,
    sest: np.ndarray,
    iest: np.ndarray,
    mest: np.ndarray,
    prm: np.ndarray,
    fires: np.ndarray,
    m: int,
) -> int:
    """Spread blow-out: z of the spread against its time-decayed EWMA (std floored at
    (ratio - 1) * mean / z, so a constant spread still gives a finite z) and at least ``ratio``
    times that mean. Depth imbalance: its short EWMA (``PB_SMOOTH`` half-life) beyond a
    threshold, with the same sign, for a minimum time."""
    for i in range(sid.shape[0]):
        s = sid[i]
        t = ts[i]
        if not math.isfinite(t):
            continue
        sp = spread[i]
        if math.isfinite(sp) and sp >= 0.0:
            n = sest[s, E_N]
            mean = sest[s, E_MEAN]
            std = math.sqrt(sest[s, E_VAR])
            zthr = prm[s, PB_SPREAD_Z]
            ratio = prm[s, PB_SPREAD_RATIO]
            if n >= prm[s, PB_MIN]:
                excess = sp - mean
                std_eff = max(std, (ratio - 1.0) * abs(mean) / zthr, 1e-12)
                z = excess / std_eff
                if z >= zthr and sp >= ratio * mean:
                    lvl = level_nb(z / zthr)
                    if lvl + 1 > bst[s, B_LVL_SPREAD]:
                        bst[s, B_LVL_SPREAD] = lvl + 1
                        m = _fire_nb(
                            fires,
                            m,
                            i,
                            C_SPREAD,
                            sp,
                            mean + zthr * std_eff,
                            z,
                            mean,
                            std,
                            n,
                            lvl,
                            sp / mean if mean > 0.0 else math.inf,
                        )
                elif z < _REARM * zthr:
                    bst[s, B_LVL_SPREAD] = 0.0
            _ewma_push_nb(sest, s, sp, t, prm[s, PB_HALFLIFE])
        x = imb[i]
        if not math.isfinite(x):
            continue
        _ewma_push_nb(mest, s, x, t, prm[s, PB_SMOOTH])
        _ewma_push_nb(iest, s, x, t, prm[s, PB_HALFLIFE])
        xs = mest[s, E_MEAN]
        thr = prm[s, PB_IMB]
        if abs(xs) >= thr:
            sign = 1.0 if xs > 0 else -1.0
            if math.isnan(bst[s, B_START]) or bst[s, B_SIGN] != sign:
                bst[s, B_START] = t
                bst[s, B_SIGN] = sign
                bst[s, B_LVL_IMB] = 0.0
            dur = t - bst[s, B_START]
            if dur >= prm[s, PB_IMB_S]:
                lvl = level_nb(abs(xs) / thr)
                if lvl + 1 > bst[s, B_LVL_IMB]:
                    bst[s, B_LVL_IMB] = lvl + 1
                    imean = iest[s, E_MEAN]
                    istd = math.sqrt(iest[s, E_VAR])
                    zi = (xs - imean) / istd if istd > 0.0 else math.nan
                    m = _fire_nb(
                        fires,
                        m,
                        i,
                        C_BOOK_IMB,
                        xs,
                        thr if xs > 0 else -thr,
                        zi,
                        imean,
                        istd,
                        iest[s, E_N],
                        lvl,
                        dur,
                    )
        else:
            bst[s, B_START] = math.nan
            bst[s, B_LVL_IMB] = 0.0
    return m
