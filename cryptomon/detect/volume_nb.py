# ruff: noqa: PLR0917  (numba kernels take their state arrays positionally)
"""Volume kernel: bucket volume z-score and buy/sell imbalance (also liquidations)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cryptomon.detect.detectors_nb import (
    C_IMBALANCE,
    C_VOLUME,
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
)

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
