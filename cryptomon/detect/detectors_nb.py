# ruff: noqa: PLR0917  (numba kernels take their state arrays positionally)
"""Batch kernels of the detectors (DESIGN.md 3.6): one call per micro-batch of events.

Each kernel walks a batch of column arrays (symbol id, time, fields), updates the per-symbol
state arrays in place and appends *findings* to ``fires`` (columns ``F_*``), returning the new
number of findings. Thresholds come per symbol id from a ``prm`` array. Hysteresis lives
here too (a finding fires once per excursion, again only at a higher severity level), so
Python only touches the rare rows that fire.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cryptomon.detect.kernels_nb import (
    E_COLS,
    E_MEAN,
    E_N,
    E_VAR,
    R_MIN,
    R_N,
    R_W,
    _ewma_push_nb,
    _mean_nb,
    _push_nb,
    _std_nb,
    _z_nb,
    ring_minmax_nb,
)

# findings columns
F_ROW = 0
F_CODE = 1
F_VALUE = 2
F_THR = 3
F_Z = 4
F_MEAN = 5
F_STD = 6
F_N = 7
F_LEVEL = 8
F_AUX = 9
F_COLS = 10

# finding codes (engine.KINDS maps them to Anomaly.kind)
C_VOLUME = 0
C_IMBALANCE = 1
C_PRICE = 2
C_VOLATILITY = 3
C_MA = 4
C_BOOK_IMB = 5
C_SPREAD = 6
C_WHALE = 7
C_BURST = 8
C_DIVERGENCE = 9

# severity levels from how far past the threshold (ratio value / threshold)
LEVEL_STEPS = (1.25, 1.6, 2.5)


@njit(cache=True)
def level_nb(ratio: float) -> int:
    """0 low, 1 medium, 2 high, 3 critical."""
    if ratio < 1.25:
        return 0
    if ratio < 1.6:
        return 1
    if ratio < 2.5:
        return 2
    return 3


@njit(cache=True)
def _fire_nb(
    fires: np.ndarray,
    m: int,
    row: int,
    code: int,
    value: float,
    thr: float,
    z: float,
    mean: float,
    std: float,
    n: float,
    lvl: int,
    aux: float,
) -> int:
    if m >= fires.shape[0]:
        return m
    fires[m, F_ROW] = row
    fires[m, F_CODE] = code
    fires[m, F_VALUE] = value
    fires[m, F_THR] = thr
    fires[m, F_Z] = z
    fires[m, F_MEAN] = mean
    fires[m, F_STD] = std
    fires[m, F_N] = n
    fires[m, F_LEVEL] = lvl
    fires[m, F_AUX] = aux
    return m + 1


# ----------------------------------------------------------------------------- volume

V_IDX = 0  # current bucket index (NaN before the first event)
V_VOL = 1
V_NOTIONAL = 2
V_BUY = 3
V_SELL = 4
V_TRADES = 5
V_LVL = 6  # fired level + 1 in this bucket (volume)
V_LVL_IMB = 7
V_COLS = 8

PV_BUCKET = 0
PV_Z = 1
PV_IMB = 2
PV_IMB_TRADES = 3
PV_COLS = 4


@njit(cache=True)
def volume_batch_nb(
    sid: np.ndarray,
    ts: np.ndarray,
    px: np.ndarray,
    amt: np.ndarray,
    buy: np.ndarray,
    vst: np.ndarray,
    buf: np.ndarray,
    st: np.ndarray,
    prm: np.ndarray,
    fires: np.ndarray,
    m: int,
) -> int:
    """Volume per bucket z-scored against the completed buckets of the lookback (the running
    bucket is tested as it fills), and buy/sell imbalance of the running bucket."""
    for i in range(sid.shape[0]):
        s = sid[i]
        if not (amt[i] >= 0.0 and px[i] > 0.0 and math.isfinite(ts[i]) and amt[i] < math.inf):
            continue
        b = math.floor(ts[i] / prm[s, PV_BUCKET])
        cur = vst[s, V_IDX]
        if math.isnan(cur):
            vst[s, V_IDX] = b
        elif b > cur:
            # an anomalous bucket enters the window clipped at the firing level, so one burst
            # does not blind the detector to the next (winsorized statistics)
            done = vst[s, V_VOL]
            if st[s, R_N] >= st[s, R_MIN]:
                done = min(done, _mean_nb(st, s) + prm[s, PV_Z] * _std_nb(st, s))
            _push_nb(buf, st, s, done)
            gap = min(b - cur - 1.0, st[s, R_W])
            for _ in range(int(gap)):
                _push_nb(buf, st, s, 0.0)
            vst[s, V_IDX] = b
            for c in range(V_VOL, V_COLS):
                vst[s, c] = 0.0
        a = amt[i]
        vst[s, V_VOL] += a
        vst[s, V_NOTIONAL] += a * px[i]
        if buy[i] > 0.0:
            vst[s, V_BUY] += a
        else:
            vst[s, V_SELL] += a
        vst[s, V_TRADES] += 1.0
        vol = vst[s, V_VOL]
        z = _z_nb(st, s, vol)
        if not math.isnan(z):
            mean = _mean_nb(st, s)
            std = _std_nb(st, s)
            n = st[s, R_N]
            k = prm[s, PV_Z]
            if z >= k:
                lvl = level_nb(z / k)
                if lvl + 1 > vst[s, V_LVL]:
                    vst[s, V_LVL] = lvl + 1
                    m = _fire_nb(
                        fires,
                        m,
                        i,
                        C_VOLUME,
                        vol,
                        mean + k * std,
                        z,
                        mean,
                        std,
                        n,
                        lvl,
                        vst[s, V_NOTIONAL],
                    )
            tot = vst[s, V_BUY] + vst[s, V_SELL]
            thr = prm[s, PV_IMB]
            if tot > 0.0 and vol >= mean and vst[s, V_TRADES] >= prm[s, PV_IMB_TRADES]:
                imb = (vst[s, V_BUY] - vst[s, V_SELL]) / tot
                if abs(imb) >= thr:
                    lvl = level_nb(abs(imb) / thr)
                    if lvl + 1 > vst[s, V_LVL_IMB]:
                        vst[s, V_LVL_IMB] = lvl + 1
                        m = _fire_nb(
                            fires,
                            m,
                            i,
                            C_IMBALANCE,
                            imb,
                            thr,
                            z,
                            mean,
                            std,
                            n,
                            lvl,
                            vst[s, V_TRADES],
                        )
    return m


# ----------------------------------------------------------------------------- price

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

_REARM = 0.8  # an excursion ends when the value falls below 80% of its threshold


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


# ----------------------------------------------------------------------------- whale

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


# ----------------------------------------------------------------------------- book

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


# ----------------------------------------------------------------------------- divergence

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
