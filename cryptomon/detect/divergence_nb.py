# ruff: noqa: PLR0917  (numba kernels take their state arrays positionally)
"""Divergence kernel: mid-price gap of one exchange against the others."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cryptomon.detect.detectors_nb import fire_nb, level_nb
from cryptomon.detect.kernels_nb import E_COLS, E_MEAN, E_N, E_VAR, ewma_push_nb

# finding codes
CODE_DIVERGENCE = 0

D_START = 0  # start of the running excursion (NaN = none)
D_LVL = 1  # fired level + 1 of the running excursion
D_E = 2  # first column of the gap's EWMA state (columns E_*)
D_COLS = D_E + E_COLS

DIVERGENCE_PARAMS = np.dtype(
    [
        ("bps", np.float64),  # |gap| threshold, bps
        ("min_s", np.float64),  # ... held for at least this long
        ("max_age_s", np.float64),  # other exchanges' mids older than this are ignored
        ("halflife_s", np.float64),  # half-life of the gap's EWMA (context: z, mean, std)
    ]
)


@njit(cache=True)
def divergence_batch_nb(
    sid: np.ndarray,
    ts: np.ndarray,
    mid: np.ndarray,
    group_of: np.ndarray,
    exchange_of: np.ndarray,
    mids: np.ndarray,
    mid_times: np.ndarray,
    state: np.ndarray,
    params: np.ndarray,
    fires: np.ndarray,
    m: int,
) -> int:
    """Mid-price gap (bps) of one exchange against the mean of the other exchanges' fresh mids
    for the same symbol, beyond a threshold for longer than a minimum time."""
    for i in range(sid.shape[0]):
        s = sid[i]
        g = group_of[s]
        e = exchange_of[s]
        t = ts[i]
        x = mid[i]
        if not (x > 0.0 and x < math.inf and math.isfinite(t)):
            continue
        mids[g, e] = x
        mid_times[g, e] = t
        total = 0.0
        cnt = 0
        for j in range(mids.shape[1]):
            if j != e and mids[g, j] > 0.0 and t - mid_times[g, j] <= params[s].max_age_s:
                total += mids[g, j]
                cnt += 1
        if cnt == 0:
            state[s, D_START] = math.nan
            state[s, D_LVL] = 0.0
            continue
        ref = total / cnt
        gap = (x / ref - 1.0) * 1e4
        gap_ewma = state[s, D_E:]
        gmean = gap_ewma[E_MEAN]
        gstd = math.sqrt(gap_ewma[E_VAR])
        gn = gap_ewma[E_N]
        thr = params[s].bps
        if abs(gap) >= thr:
            if math.isnan(state[s, D_START]):
                state[s, D_START] = t
            dur = t - state[s, D_START]
            if dur >= params[s].min_s:
                lvl = level_nb(abs(gap) / thr)
                if lvl + 1 > state[s, D_LVL]:
                    state[s, D_LVL] = lvl + 1
                    z = (gap - gmean) / gstd if gstd > 0.0 and gn > 1 else math.nan
                    m = fire_nb(
                        fires,
                        m,
                        row=i,
                        code=CODE_DIVERGENCE,
                        value=gap,
                        threshold=thr if gap > 0 else -thr,
                        z=z,
                        mean=gmean,
                        std=gstd,
                        samples=gn,
                        level=lvl,
                        aux=dur,
                    )
        else:
            state[s, D_START] = math.nan
            state[s, D_LVL] = 0.0
        ewma_push_nb(state[:, D_E:], s, gap, t, params[s].halflife_s)
    return m
