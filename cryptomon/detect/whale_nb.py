# ruff: noqa: PLR0917  (numba kernels take their state arrays positionally)
"""Whale kernel: taker-order notional vs absolute / k-std thresholds, same-side bursts."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cryptomon.detect.detectors_nb import fire_nb, level_nb
from cryptomon.detect.kernels_nb import R_MIN, R_N, mean_nb, push_nb, std_nb, z_nb

# finding codes
CODE_WHALE = 0
CODE_BURST = 1

W_N = 0  # + side*2: large trades in the burst ring of that side
W_POS = 1  # + side*2
W_AGG = 4  # notional of the running taker order (consecutive fills, same time and side)
W_AGG_TS = 5
W_AGG_SIDE = 6
W_AGG_LVL = 7  # fired level + 1 of the running order
W_AGG_LARGE = 8  # the running order was counted for bursts
W_COLS = 9

WHALE_PARAMS = np.dtype(
    [
        ("notional", np.float64),  # absolute notional threshold in the quote (0 = none)
        ("k_std", np.float64),  # k standard deviations of log notional
        ("burst_count", np.float64),  # large same-side orders that make a burst
        ("burst_window_s", np.float64),  # ... within this time
        ("burst_k_std", np.float64),  # large = this many std above the mean log notional
        ("burst_fraction", np.float64),  # ... or this fraction of the absolute threshold
    ]
)

MAX_BURST = 32


@njit(cache=True)
def whale_batch_nb(
    sid: np.ndarray,
    ts: np.ndarray,
    px: np.ndarray,
    amt: np.ndarray,
    buy: np.ndarray,
    state: np.ndarray,
    burst_times: np.ndarray,
    buf: np.ndarray,
    window: np.ndarray,
    params: np.ndarray,
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
        if state[s, W_AGG] > 0.0 and t == state[s, W_AGG_TS] and side == state[s, W_AGG_SIDE]:
            agg = state[s, W_AGG] + notional
        else:
            if state[s, W_AGG] > 0.0:
                done = math.log(state[s, W_AGG])
                if window[s, R_N] >= window[s, R_MIN]:  # winsorized, as for volume
                    done = min(done, mean_nb(window, s) + params[s].k_std * std_nb(window, s))
                push_nb(buf, window, s, done)
            agg = notional
            state[s, W_AGG_TS] = t
            state[s, W_AGG_SIDE] = side
            state[s, W_AGG_LVL] = 0.0
            state[s, W_AGG_LARGE] = 0.0
        state[s, W_AGG] = agg
        ln = math.log(agg)
        z = z_nb(window, s, ln)
        mean = mean_nb(window, s)
        std = std_nb(window, s)
        n = window[s, R_N]
        absthr = params[s].notional
        k = params[s].k_std
        r_abs = agg / absthr if absthr > 0.0 else 0.0
        r_z = z / k if not math.isnan(z) else 0.0
        if r_abs >= 1.0 or r_z >= 1.0:
            if r_abs >= r_z:
                thr = absthr
                lvl = level_nb(r_abs)
            else:
                thr = math.exp(mean + k * std)
                lvl = level_nb(r_z)
            if lvl + 1 > state[s, W_AGG_LVL]:
                state[s, W_AGG_LVL] = lvl + 1
                m = fire_nb(
                    fires,
                    m,
                    row=i,
                    code=CODE_WHALE,
                    value=agg,
                    threshold=thr,
                    z=z,
                    mean=math.exp(mean),
                    std=std,
                    samples=n,
                    level=lvl,
                    aux=side,
                )
        large = (not math.isnan(z) and z >= params[s].burst_k_std) or (
            absthr > 0.0 and agg >= params[s].burst_fraction * absthr
        )
        if large and state[s, W_AGG_LARGE] == 0.0:
            state[s, W_AGG_LARGE] = 1.0
            sd = int(1.0 - side)  # ring 0 = buy, 1 = sell
            need = int(params[s].burst_count)
            cnt = int(state[s, W_N + 2 * sd])
            pos = int(state[s, W_POS + 2 * sd])
            burst_times[s, sd * MAX_BURST + pos] = t
            state[s, W_POS + 2 * sd] = (pos + 1) % need
            cnt = min(cnt + 1, need)
            state[s, W_N + 2 * sd] = cnt
            if cnt >= need:
                inside = 0
                for j in range(need):
                    if t - burst_times[s, sd * MAX_BURST + j] <= params[s].burst_window_s:
                        inside += 1
                if inside >= need:
                    lvl = level_nb(z / params[s].burst_k_std) if z > 0 else 0
                    m = fire_nb(
                        fires,
                        m,
                        row=i,
                        code=CODE_BURST,
                        value=float(inside),
                        threshold=float(need),
                        z=z,
                        mean=math.exp(mean),
                        std=std,
                        samples=n,
                        level=lvl,
                        aux=side,
                    )
                    state[s, W_N + 2 * sd] = 0.0
                    state[s, W_POS + 2 * sd] = 0.0
    return m
