# ruff: noqa: PLR0917  (numba kernels take their state arrays positionally)
"""Divergence kernel: mid-price gap of one exchange against the others."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cryptomon.detect.detectors_nb import (
    C_DIVERGENCE,
    _fire_nb,
    level_nb,
)
from cryptomon.detect.kernels_nb import (
    E_COLS,
    E_MEAN,
    E_N,
    E_VAR,
    _ewma_push_nb,
)

D_START = 0
D_LVL = 1
D_COLS = 2 + E_COLS  # + EWMA of the gap
D_E = 2

PD_BPS = 0
PD_MIN_S = 1
PD_MAX_AGE = 2
PD_HALFLIFE = 3
PD_COLS = 4


@njit(cache=True)
def divergence_batch_nb(
    sid: np.ndarray,
    ts: np.ndarray,
    mid: np.ndarray,
    grp: np.ndarray,
    exi: np.ndarray,
    mids: np.ndarray,
    mts: np.ndarray,
    dst: np.ndarray,
    prm: np.ndarray,
    fires: np.ndarray,
    m: int,
) -> int:
    """Mid-price gap (bps) of one exchange against the mean of the other exchanges' fresh mids
    for the same symbol, beyond a threshold for longer than a minimum time."""
    for i in range(sid.shape[0]):
        s = sid[i]
        g = grp[s]
        e = exi[s]
        t = ts[i]
        x = mid[i]
        if not (x > 0.0 and x < math.inf and math.isfinite(t)):
            continue
        mids[g, e] = x
        mts[g, e] = t
        total = 0.0
        cnt = 0
        for j in range(mids.shape[1]):
            if j != e and mids[g, j] > 0.0 and t - mts[g, j] <= prm[s, PD_MAX_AGE]:
                total += mids[g, j]
                cnt += 1
        if cnt == 0:
            dst[s, D_START] = math.nan
            dst[s, D_LVL] = 0.0
            continue
        ref = total / cnt
        gap = (x / ref - 1.0) * 1e4
        est = dst[s, D_E:]
        gmean = est[E_MEAN]
        gstd = math.sqrt(est[E_VAR])
        gn = est[E_N]
        thr = prm[s, PD_BPS]
        if abs(gap) >= thr:
            if math.isnan(dst[s, D_START]):
                dst[s, D_START] = t
            dur = t - dst[s, D_START]
            if dur >= prm[s, PD_MIN_S]:
                lvl = level_nb(abs(gap) / thr)
                if lvl + 1 > dst[s, D_LVL]:
                    dst[s, D_LVL] = lvl + 1
                    z = (gap - gmean) / gstd if gstd > 0.0 and gn > 1 else math.nan
                    m = _fire_nb(
                        fires,
                        m,
                        i,
                        C_DIVERGENCE,
                        gap,
                        thr if gap > 0 else -thr,
                        z,
                        gmean,
                        gstd,
                        gn,
                        lvl,
                        dur,
                    )
        else:
            dst[s, D_START] = math.nan
            dst[s, D_LVL] = 0.0
        _ewma_push_nb(dst[:, D_E:], s, gap, t, prm[s, PD_HALFLIFE])
    return m
