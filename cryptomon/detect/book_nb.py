# ruff: noqa: PLR0917  (numba kernels take their state arrays positionally)
"""Book kernel: spread blow-out and persistent depth imbalance."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cryptomon.detect.detectors_nb import REARM, fire_nb, level_nb
from cryptomon.detect.kernels_nb import (
    E_MEAN,
    E_N,
    E_VAR,
    ewma_apply_nb,
    ewma_push_nb,
    ewma_step_nb,
    ewma_weight_nb,
)

# finding codes
CODE_IMBALANCE = 0
CODE_SPREAD = 1

B_START = 0  # start of the running imbalance excursion (NaN = none)
B_SIGN = 1
B_LVL_IMB = 2
B_LVL_SPREAD = 3
B_TICK = 4  # the tick inferred from the observed price grid (inf until two prices differ)
B_BID = 5  # last best bid and ask (NaN before the first)
B_ASK = 6
B_COLS = 7

_GRID_EPS = 1e-9  # price steps below this fraction of the price are float noise

BOOK_PARAMS = np.dtype(
    [
        ("imbalance", np.float64),  # |smoothed depth imbalance| threshold
        ("imbalance_min_s", np.float64),  # ... held for at least this long
        ("spread_z", np.float64),  # z threshold of the spread against its EWMA
        ("spread_ratio", np.float64),  # spread must also be this multiple of its mean
        ("halflife_s", np.float64),  # half-life of the spread and imbalance EWMAs
        ("min_samples", np.float64),  # spread updates before the spread rule counts
        ("smoothing_s", np.float64),  # half-life of the smoothed imbalance
        ("tick", np.float64),  # the instrument's price tick (0 = unknown: inferred)
        ("spread_min_ticks", np.float64),  # a spread below this many ticks never fires
        ("spread_min_bps", np.float64),  # ... nor one below this many bps
    ]
)


@njit(cache=True)
def tick_nb(state: np.ndarray, params: np.ndarray, s: int, bid: float, ask: float) -> float:
    """The tick of ``s``: the instrument's when known, else the smallest price step seen
    between consecutive best bids, consecutive best asks and across the spread (an upper
    bound of the true tick that shrinks towards it: spreads in ticks are never overstated)."""
    if not (bid > 0.0 and ask > 0.0):
        return params[s].tick if params[s].tick > 0.0 else state[s, B_TICK]
    eps = _GRID_EPS * ask
    tick = state[s, B_TICK]
    for d in (abs(bid - state[s, B_BID]), abs(ask - state[s, B_ASK]), ask - bid):
        if d > eps and d < tick:  # NaN (no previous price) compares false
            tick = d
    state[s, B_TICK] = tick
    state[s, B_BID] = bid
    state[s, B_ASK] = ask
    return params[s].tick if params[s].tick > 0.0 else tick


@njit(cache=True)
def _wide_nb(params: np.ndarray, s: int, sp: float, ticks: float) -> bool:
    """Wide enough to be a blow-out at all: at least the minimum ticks and bps."""
    return ticks >= params[s].spread_min_ticks and sp >= params[s].spread_min_bps


@njit(cache=True)
def book_batch_nb(
    sid: np.ndarray,
    ts: np.ndarray,
    spread: np.ndarray,
    imb: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    state: np.ndarray,
    spread_ewma: np.ndarray,
    imbalance_ewma: np.ndarray,
    imbalance_smooth: np.ndarray,
    params: np.ndarray,
    fires: np.ndarray,
    m: int,
) -> int:
    """Spread blow-out: z of the spread against its time-decayed EWMA (std floored at
    (ratio - 1) * mean / z, so a constant spread still gives a finite z), at least ``ratio``
    times that mean and at least ``spread_min_ticks`` ticks and ``spread_min_bps`` bps
    (a tick-limited book's few-tick spread never fires). Depth imbalance: its short EWMA
    (``smoothing_s`` half-life) beyond a threshold, with the same sign, for a minimum time."""
    for i in range(sid.shape[0]):
        s = sid[i]
        t = ts[i]
        if not math.isfinite(t):
            continue
        dt_sp = -1.0  # the spread EWMA's time step of this row and its weight (none: -1)
        a_sp = 0.0
        sp = spread[i]
        ticks = (ask[i] - bid[i]) / tick_nb(state, params, s, bid[i], ask[i]) + 1e-6
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
                if z >= zthr and sp >= ratio * mean and _wide_nb(params, s, sp, ticks):
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
                            aux=ticks,
                        )
                elif z < REARM * zthr:
                    state[s, B_LVL_SPREAD] = 0.0
            if spread_ewma[s, E_N] > 0:
                dt_sp = ewma_step_nb(spread_ewma, s, t)
                a_sp = ewma_weight_nb(dt_sp, params[s].halflife_s)
            ewma_apply_nb(spread_ewma, s, sp, t, a_sp)
        x = imb[i]
        if not math.isfinite(x):
            continue
        ewma_push_nb(imbalance_smooth, s, x, t, params[s].smoothing_s)
        # the imbalance EWMA has the spread's half-life: the same step, the same weight
        a = 0.0
        if imbalance_ewma[s, E_N] > 0:
            dt = ewma_step_nb(imbalance_ewma, s, t)
            a = a_sp if dt == dt_sp else ewma_weight_nb(dt, params[s].halflife_s)
        ewma_apply_nb(imbalance_ewma, s, x, t, a)
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
