# ruff: noqa: PLR0917  (numba kernels take their state arrays positionally)
"""Whale kernel: taker-order notional vs absolute / k-std thresholds, same-side bursts."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cryptomon.detect.detectors_nb import (
    C_BURST,
    C_WHALE,
    _fire_nb,
    level_nb,
)
from cryptomon.detect.kernels_nb import (
    R_MIN,
    R_N,
    _mean_nb,
    _push_nb,
    _std_nb,
    _z_nb,
)

W_N = 0  # + side*2: large trades in the burst ring of that side
W_POS = 1  # + side*2
W_AGG = 4  # notional of the running taker order (consecutive fills, same time and side)
W_AGG_TS = 5
W_AGG_SIDE = 6
W_AGG_LVL = 7  # fired level + 1 of the running order
W_AGG_LARGE = 8  # the running order was counted for bursts
W_COLS = 9

PW_ABS = 0  # absolute notional threshold (0 = none)
PW_K = 1  # k standard deviations of log notional
PW_BURST_N = 2
PW_BURST_S = 3
PW_BURST_K = 4
PW_BURST_FRAC = 5
PW_COLS = 6

MAX_BURST = 32


@njit(cache=True)
def whale_batch_nb(
    sid: np.ndarray,
    ts: np.ndarray,
    px: np.ndarray,
    amt: np.ndarray,
    buy: np.ndarray,
    wst: np.ndarray,
    bring: np.ndarray,
    buf: np.ndarray,
    st: np.ndarray,
    prm: np.ndarray,
    fires: np.ndarray,
    m: int,
) -> int:
    """Taker orders (consecutive fills with the same time and side, summed) above an absolute
    notional or k std above recent log notionals; bursts of same-side large orders within a
    time window. The statistics window holds completed orders only."""
    for i in range(sid.shape[0]):
        s = sid[i]
        t = ts[i]
        notional = px[i] * amt[i]
        if not (notional > 0.0 and notional < math.inf and math.isfinite(t)):
            continue
        side = 1.0 if buy[i] > 0.0 else 0.0
        if wst[s, W_AGG] > 0.0 and t == wst[s, W_AGG_TS] and side == wst[s, W_AGG_SIDE]:
            agg = wst[s, W_AGG] + notional
        else:
            if wst[s, W_AGG] > 0.0:
                done = math.log(wst[s, W_AGG])
                if st[s, R_N] >= st[s, R_MIN]:  # winsorized, as for volume
                    done = min(done, _mean_nb(st, s) + prm[s, PW_K] * _std_nb(st, s))
                _push_nb(buf, st, s, done)
            agg = notional
            wst[s, W_AGG_TS] = t
            wst[s, W_AGG_SIDE] = side
            wst[s, W_AGG_LVL] = 0.0
            wst[s, W_AGG_LARGE] = 0.0
        wst[s, W_AGG] = agg
        ln = math.log(agg)
        z = _z_nb(st, s, ln)
        mean = _mean_nb(st, s)
        std = _std_nb(st, s)
        n = st[s, R_N]
        absthr = prm[s, PW_ABS]
        k = prm[s, PW_K]
        r_abs = agg / absthr if absthr > 0.0 else 0.0
        r_z = z / k if not math.isnan(z) else 0.0
        if r_abs >= 1.0 or r_z >= 1.0:
            if r_abs >= r_z:
                thr = absthr
                lvl = level_nb(r_abs)
            else:
                thr = math.exp(mean + k * std)
                lvl = level_nb(r_z)
            if lvl + 1 > wst[s, W_AGG_LVL]:
                wst[s, W_AGG_LVL] = lvl + 1
                m = _fire_nb(fires, m, i, C_WHALE, agg, thr, z, math.exp(mean), std, n, lvl, side)
        large = (not math.isnan(z) and z >= prm[s, PW_BURST_K]) or (
            absthr > 0.0 and agg >= prm[s, PW_BURST_FRAC] * absthr
        )
        if large and wst[s, W_AGG_LARGE] == 0.0:
            wst[s, W_AGG_LARGE] = 1.0
            sd = int(1.0 - side)  # ring 0 = buy, 1 = sell
            need = int(prm[s, PW_BURST_N])
            cnt = int(wst[s, W_N + 2 * sd])
            pos = int(wst[s, W_POS + 2 * sd])
            bring[s, sd * MAX_BURST + pos] = t
            wst[s, W_POS + 2 * sd] = (pos + 1) % need
            cnt = min(cnt + 1, need)
            wst[s, W_N + 2 * sd] = cnt
            if cnt >= need:
                inside = 0
                for j in range(need):
                    if t - bring[s, sd * MAX_BURST + j] <= prm[s, PW_BURST_S]:
                        inside += 1
                if inside >= need:
                    lvl = level_nb(z / prm[s, PW_BURST_K]) if z > 0 else 0
                    m = _fire_nb(
                        fires,
                        m,
                        i,
                        C_BURST,
                        float(inside),
                        float(need),
                        z,
                        math.exp(mean),
                        std,
                        n,
                        lvl,
                        side,
                    )
                    wst[s, W_N + 2 * sd] = 0.0
                    wst[s, W_POS + 2 * sd] = 0.0
    return m
