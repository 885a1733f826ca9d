# ruff: noqa: PLR0917  (numba kernels take their state arrays positionally)
"""Price kernel: change over the lookback, volatility (bucket log-return z), MA deviation."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cryptomon.detect.detectors_nb import (
    _REARM,
    C_MA,
    C_PRICE,
    C_VOLATILITY,
    _fire_nb,
    level_nb,
)
from cryptomon.detect.kernels_nb import (
    R_MIN,
    R_N,
    R_W,
    _mean_nb,
    _push_nb,
    _std_nb,
    _z_nb,
    ring_minmax_nb,
)

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

PP_BUCKET = 0
PP_PCT = 1
PP_VOL_Z = 2
PP_MA = 3
PP_MA_Z = 4
PP_COLS = 5


@njit(cache=True)
def _close_bucket_nb(
    s: int,
    pst: np.ndarray,
    hring: np.ndarray,
    lring: np.ndarray,
    cbuf: np.ndarray,
    cst: np.ndarray,
    rbuf: np.ndarray,
    rst: np.ndarray,
    close: float,
    hi: float,
    lo: float,
) -> None:
    _push_nb(cbuf, cst, s, close)
    prev = pst[s, P_PREV]
    if prev > 0.0 and close > 0.0:
        _push_nb(rbuf, rst, s, math.log(close / prev))
    w = int(cst[s, R_W])
    pos = int(pst[s, P_RPOS])
    hring[s, pos] = hi
    lring[s, pos] = lo
    pst[s, P_RPOS] = (pos + 1) % w
    pst[s, P_NB] = min(pst[s, P_NB] + 1.0, w)
    pst[s, P_PREV] = close


@njit(cache=True)
def price_batch_nb(
    sid: np.ndarray,
    ts: np.ndarray,
    px: np.ndarray,
    pst: np.ndarray,
    hring: np.ndarray,
    lring: np.ndarray,
    cbuf: np.ndarray,
    cst: np.ndarray,
    rbuf: np.ndarray,
    rst: np.ndarray,
    prm: np.ndarray,
    fires: np.ndarray,
    m: int,
) -> int:
    """Price change over the lookback (from the rolling min/max of bucket lows/highs), z-score
    of the running bucket's log return (volatility) and deviation from the moving average of
    bucket closes."""
    for i in range(sid.shape[0]):
        s = sid[i]
        p = px[i]
        if not (p > 0.0 and p < math.inf and math.isfinite(ts[i])):
            continue
        b = math.floor(ts[i] / prm[s, PP_BUCKET])
        cur = pst[s, P_IDX]
        if math.isnan(cur):
            pst[s, P_IDX] = b
            pst[s, P_HI] = p
            pst[s, P_LO] = p
        elif b > cur:
            last = pst[s, P_LAST]
            _close_bucket_nb(
                s, pst, hring, lring, cbuf, cst, rbuf, rst, last, pst[s, P_HI], pst[s, P_LO]
            )
            gap = min(b - cur - 1.0, cst[s, R_W])
            for _ in range(int(gap)):
                _close_bucket_nb(s, pst, hring, lring, cbuf, cst, rbuf, rst, last, last, last)
            nb = int(pst[s, P_NB])
            lo, hi = ring_minmax_nb(lring[s], nb)
            pst[s, P_WLO] = lo
            hi2 = ring_minmax_nb(hring[s], nb)[1]
            pst[s, P_WHI] = max(hi, hi2)
            pst[s, P_IDX] = b
            pst[s, P_HI] = p
            pst[s, P_LO] = p
            pst[s, P_LVL_VOL] = 0.0
        pst[s, P_LAST] = p
        pst[s, P_HI] = max(pst[s, P_HI], p)
        pst[s, P_LO] = min(pst[s, P_LO], p)
        if pst[s, P_NB] < 1.0:
            pst[s, P_PCT] = (p / pst[s, P_LO] - 1.0) * 100.0
            continue
        # volatility: the running bucket's log return against past bucket returns
        prev = pst[s, P_PREV]
        ret = math.log(p / prev)
        zr = _z_nb(rst, s, ret)
        # price change over the lookback
        lo_all = min(pst[s, P_WLO], pst[s, P_LO])
        hi_all = max(pst[s, P_WHI], pst[s, P_HI])
        up = (p / lo_all - 1.0) * 100.0
        dn = (p / hi_all - 1.0) * 100.0
        pct = up if up >= -dn else dn
        pst[s, P_PCT] = pct
        thr = prm[s, PP_PCT]
        cmean = _mean_nb(cst, s)
        cstd = _std_nb(cst, s)
        nc = cst[s, R_N]
        if abs(pct) >= thr:
            lvl = level_nb(abs(pct) / thr)
            armed = pst[s, P_ARM_PC]  # signed: + for an up move, - for a down move
            if armed * pct < 0.0:
                armed = 0.0
            if lvl + 1 > abs(armed):
                pst[s, P_ARM_PC] = math.copysign(lvl + 1, pct)
                ref = lo_all if up >= -dn else hi_all
                m = _fire_nb(fires, m, i, C_PRICE, pct, thr, zr, cmean, cstd, nc, lvl, ref)
        elif abs(pct) < _REARM * thr:
            pst[s, P_ARM_PC] = 0.0
        vz = prm[s, PP_VOL_Z]
        if not math.isnan(zr) and abs(zr) >= vz:
            lvl = level_nb(abs(zr) / vz)
            if lvl + 1 > pst[s, P_LVL_VOL]:
                pst[s, P_LVL_VOL] = lvl + 1
                rmean = _mean_nb(rst, s)
                rstd = _std_nb(rst, s)
                edge = rmean + (vz if zr > 0 else -vz) * rstd
                m = _fire_nb(
                    fires,
                    m,
                    i,
                    C_VOLATILITY,
                    ret * 100.0,
                    edge * 100.0,
                    zr,
                    rmean * 100.0,
                    rstd * 100.0,
                    rst[s, R_N],
                    lvl,
                    pct,
                )
        # deviation from the moving average of closes (after warm-up)
        if nc >= cst[s, R_MIN] and cmean > 0.0:
            dev = (p / cmean - 1.0) * 100.0
            mthr = prm[s, PP_MA]
            zd = (p - cmean) / cstd if cstd > 0.0 else math.inf
            if abs(dev) >= mthr and abs(zd) >= prm[s, PP_MA_Z]:
                lvl = level_nb(abs(dev) / mthr)
                armed = pst[s, P_ARM_MA]
                if armed * dev < 0.0:
                    armed = 0.0
                if lvl + 1 > abs(armed):
                    pst[s, P_ARM_MA] = math.copysign(lvl + 1, dev)
                    m = _fire_nb(fires, m, i, C_MA, dev, mthr, zd, cmean, cstd, nc, lvl, pct)
            elif abs(dev) < _REARM * mthr:
                pst[s, P_ARM_MA] = 0.0
    return m
