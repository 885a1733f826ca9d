# ruff: noqa: PLR0917  (numba kernels take their state arrays positionally)
"""Price kernel: change over the lookback, volatility (bucket log-return z), MA deviation."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cryptomon.detect.detectors_nb import REARM, fire_nb, level_nb
from cryptomon.detect.kernels_nb import (
    R_MIN,
    R_N,
    R_W,
    mean_nb,
    push_nb,
    ring_minmax_nb,
    std_nb,
    z_nb,
)

# finding codes
CODE_PRICE = 0
CODE_VOLATILITY = 1
CODE_MA = 2

P_IDX = 0
P_LAST = 1
P_HI = 2
P_LO = 3
P_PREV = 4  # close of the last completed bucket
P_WLO = 5  # min of completed bucket lows in the lookback
P_WHI = 6
P_NB = 7  # completed buckets in the rings
P_RPOS = 8
P_ARM_PC = 9  # fired level + 1 of the running price-change excursion
P_LVL_VOL = 10  # fired level + 1 of volatility in this bucket
P_ARM_MA = 11
P_PCT = 12  # latest price change over the lookback (context for every anomaly)
P_COLS = 13

PRICE_PARAMS = np.dtype(
    [
        ("bucket_s", np.float64),  # bucket length, s
        ("change_pct", np.float64),  # |price change| over the lookback threshold, %
        ("volatility_z", np.float64),  # z threshold of the running bucket's log return
        ("ma_pct", np.float64),  # |deviation| from the moving average of closes, %
        ("ma_z", np.float64),  # ... and its z against the closes' std
    ]
)


@njit(cache=True)
def _close_bucket_nb(
    s: int,
    state: np.ndarray,
    high_ring: np.ndarray,
    low_ring: np.ndarray,
    close_buf: np.ndarray,
    close_window: np.ndarray,
    return_buf: np.ndarray,
    return_window: np.ndarray,
    close: float,
    hi: float,
    lo: float,
) -> None:
    push_nb(close_buf, close_window, s, close)
    prev = state[s, P_PREV]
    if prev > 0.0 and close > 0.0:
        push_nb(return_buf, return_window, s, math.log(close / prev))
    w = int(close_window[s, R_W])
    pos = int(state[s, P_RPOS])
    high_ring[s, pos] = hi
    low_ring[s, pos] = lo
    state[s, P_RPOS] = (pos + 1) % w
    state[s, P_NB] = min(state[s, P_NB] + 1.0, w)
    state[s, P_PREV] = close


@njit(cache=True)
def price_batch_nb(
    sid: np.ndarray,
    ts: np.ndarray,
    px: np.ndarray,
    state: np.ndarray,
    high_ring: np.ndarray,
    low_ring: np.ndarray,
    close_buf: np.ndarray,
    close_window: np.ndarray,
    return_buf: np.ndarray,
    return_window: np.ndarray,
    params: np.ndarray,
    fires: np.ndarray,
    m: int,
    pct_rows: np.ndarray,
) -> int:
    """Price change over the lookback (from the rolling min/max of bucket lows/highs), z-score
    of the running bucket's log return (volatility) and deviation from the moving average of
    bucket closes.

    ``pct_rows``: when it has a slot per row, ``pct_rows[i]`` is set to the price change of
    row ``i``'s market after that row (``P_PCT``; a backtest reads a chunk of candles in one
    batch and needs it at each candle); an empty array keeps nothing."""
    keep = pct_rows.shape[0] >= sid.shape[0]
    for i in range(sid.shape[0]):
        s = sid[i]
        p = px[i]
        if not (p > 0.0 and p < math.inf and math.isfinite(ts[i])):
            if keep:
                pct_rows[i] = state[s, P_PCT]
            continue
        b = math.floor(ts[i] / params[s].bucket_s)
        cur = state[s, P_IDX]
        if math.isnan(cur):
            state[s, P_IDX] = b
            state[s, P_HI] = p
            state[s, P_LO] = p
        elif b > cur:
            last = state[s, P_LAST]
            _close_bucket_nb(
                s,
                state,
                high_ring,
                low_ring,
                close_buf,
                close_window,
                return_buf,
                return_window,
                last,
                state[s, P_HI],
                state[s, P_LO],
            )
            gap = min(b - cur - 1.0, close_window[s, R_W])
            for _ in range(int(gap)):
                _close_bucket_nb(
                    s,
                    state,
                    high_ring,
                    low_ring,
                    close_buf,
                    close_window,
                    return_buf,
                    return_window,
                    last,
                    last,
                    last,
                )
            nb = int(state[s, P_NB])
            lo, hi = ring_minmax_nb(low_ring[s], nb)
            state[s, P_WLO] = lo
            hi2 = ring_minmax_nb(high_ring[s], nb)[1]
            state[s, P_WHI] = max(hi, hi2)
            state[s, P_IDX] = b
            state[s, P_HI] = p
            state[s, P_LO] = p
            state[s, P_LVL_VOL] = 0.0
        state[s, P_LAST] = p
        state[s, P_HI] = max(state[s, P_HI], p)
        state[s, P_LO] = min(state[s, P_LO], p)
        if state[s, P_NB] < 1.0:
            state[s, P_PCT] = (p / state[s, P_LO] - 1.0) * 100.0
            if keep:
                pct_rows[i] = state[s, P_PCT]
            continue
        # volatility: the running bucket's log return against past bucket returns
        prev = state[s, P_PREV]
        ret = math.log(p / prev)
        zr = z_nb(return_window, s, ret)
        # price change over the lookback
        lo_all = min(state[s, P_WLO], state[s, P_LO])
        hi_all = max(state[s, P_WHI], state[s, P_HI])
        up = (p / lo_all - 1.0) * 100.0
        dn = (p / hi_all - 1.0) * 100.0
        pct = up if up >= -dn else dn
        state[s, P_PCT] = pct
        if keep:
            pct_rows[i] = pct
        thr = params[s].change_pct
        cmean = mean_nb(close_window, s)
        cstd = std_nb(close_window, s)
        nc = close_window[s, R_N]
        if abs(pct) >= thr:
            lvl = level_nb(abs(pct) / thr)
            armed = state[s, P_ARM_PC]  # signed: + for an up move, - for a down move
            if armed * pct < 0.0:
                armed = 0.0
            if lvl + 1 > abs(armed):
                state[s, P_ARM_PC] = math.copysign(lvl + 1, pct)
                ref = lo_all if up >= -dn else hi_all
                m = fire_nb(
                    fires,
                    m,
                    row=i,
                    code=CODE_PRICE,
                    value=pct,
                    threshold=thr,
                    z=zr,
                    mean=cmean,
                    std=cstd,
                    samples=nc,
                    level=lvl,
                    aux=ref,
                )
        elif abs(pct) < REARM * thr:
            state[s, P_ARM_PC] = 0.0
        vz = params[s].volatility_z
        if not math.isnan(zr) and abs(zr) >= vz:
            lvl = level_nb(abs(zr) / vz)
            if lvl + 1 > state[s, P_LVL_VOL]:
                state[s, P_LVL_VOL] = lvl + 1
                rmean = mean_nb(return_window, s)
                rstd = std_nb(return_window, s)
                edge = rmean + (vz if zr > 0 else -vz) * rstd
                m = fire_nb(
                    fires,
                    m,
                    row=i,
                    code=CODE_VOLATILITY,
                    value=ret * 100.0,
                    threshold=edge * 100.0,
                    z=zr,
                    mean=rmean * 100.0,
                    std=rstd * 100.0,
                    samples=return_window[s, R_N],
                    level=lvl,
                    aux=pct,
                )
        # deviation from the moving average of closes (after warm-up)
        if nc >= close_window[s, R_MIN] and cmean > 0.0:
            dev = (p / cmean - 1.0) * 100.0
            mthr = params[s].ma_pct
            zd = (p - cmean) / cstd if cstd > 0.0 else math.inf
            if abs(dev) >= mthr and abs(zd) >= params[s].ma_z:
                lvl = level_nb(abs(dev) / mthr)
                armed = state[s, P_ARM_MA]
                if armed * dev < 0.0:
                    armed = 0.0
                if lvl + 1 > abs(armed):
                    state[s, P_ARM_MA] = math.copysign(lvl + 1, dev)
                    m = fire_nb(
                        fires,
                        m,
                        row=i,
                        code=CODE_MA,
                        value=dev,
                        threshold=mthr,
                        z=zd,
                        mean=cmean,
                        std=cstd,
                        samples=nc,
                        level=lvl,
                        aux=pct,
                    )
            elif abs(dev) < REARM * mthr:
                state[s, P_ARM_MA] = 0.0
    return m
