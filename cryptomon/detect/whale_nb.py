# ruff: noqa: PLR0917  (numba kernels take their state arrays positionally)
"""Whale kernel: taker-order notional vs absolute / median-and-quantile thresholds, same-side
bursts."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from cryptomon.detect.detectors_nb import fire_nb, level_nb
from cryptomon.detect.kernels_nb import R_MIN, R_N, push_nb

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
W_MEDIAN = 9  # median notional of the window (refreshed every few completed orders)
W_QUANTILE = 10  # the high quantile of the window
W_SINCE = 11  # completed orders since the last refresh
W_AGG_Q = 12  # the running order's notional as the venue's spec gives it (NaN: unknown spec)
W_AGG_U = 13  # ... in USD (NaN: unknown spec or no USD rate)
W_COLS = 14
USD_RULE = 2.0  # added to a finding's aux (the side) when the USD threshold fired

WHALE_PARAMS = np.dtype(
    [
        ("notional", np.float64),  # absolute threshold on Trade.notional, quote (0 = none)
        ("notional_usd", np.float64),  # ... on Trade.notional_usd where no quote threshold
        ("min_notional", np.float64),  # the statistical rule needs at least this notional
        ("median_multiple", np.float64),  # statistical rule: >= this multiple of the median
        ("quantile", np.float64),  # ... and >= quantile_multiple x this quantile (0-1)
        ("quantile_multiple", np.float64),
        ("burst_count", np.float64),  # large same-side orders that make a burst
        ("burst_window_s", np.float64),  # ... within this time
        ("burst_fraction", np.float64),  # large = this fraction of the whale threshold
    ]
)

MAX_BURST = 32
REFRESH = 64  # completed orders between two refreshes of median and quantile (at most)


@njit(cache=True)
def _refresh_nb(buf: np.ndarray, window: np.ndarray, state: np.ndarray, s: int, q: float) -> None:
    """Median and quantile of the window of ``s`` from a copy selected in place around the
    ranks they interpolate between: the values a full sort puts there, in O(n). Each pair of
    ranks is adjacent, so one selection per pair (:func:`_select_nb`) and the minimum of what
    lies above the lower rank give both; the second selection only walks the side of the
    first rank its rank is on."""
    n = int(window[s, R_N])
    if n == 0:
        return
    vals = buf[s, :n].copy()
    m_lo, m_hi = _ranks_nb(n, 0.5)
    q_lo, q_hi = _ranks_nb(n, q)
    _select_nb(vals, 0, n, m_lo)
    med_lo = vals[m_lo]
    med_hi = _min_nb(vals, m_hi, n) if m_hi > m_lo else med_lo
    if q_lo > m_lo:
        _select_nb(vals, m_lo + 1, n, q_lo)
    elif q_lo < m_lo:
        _select_nb(vals, 0, m_lo, q_lo)
    q_lo_val = vals[q_lo]
    q_hi_val = _min_nb(vals, q_hi, n) if q_hi > q_lo else q_lo_val
    state[s, W_MEDIAN] = _interp_nb(med_lo, med_hi, n, 0.5)
    state[s, W_QUANTILE] = _interp_nb(q_lo_val, q_hi_val, n, q)
    state[s, W_SINCE] = 0.0


@njit(cache=True)
def _select_nb(a: np.ndarray, lo: int, hi: int, k: int) -> None:
    """Reorder ``a[lo:hi]`` (``lo <= k < hi``) so that ``a[k]`` holds the value a sort puts
    there, nothing before it is larger and nothing after it smaller (quickselect, Hoare
    partition around a median of three; after ``2 log2(n) + 16`` rounds without converging,
    an adversarial order, the rest of the range is sorted: never worse than O(n log n))."""
    rounds = 16
    size = hi - lo
    while size > 1:
        rounds += 2
        size >>= 1
    while hi - lo > 2:
        rounds -= 1
        if rounds < 0:
            a[lo:hi].sort()
            return
        pivot = _median3_nb(a[lo], a[(lo + hi - 1) // 2], a[hi - 1])
        i = lo
        j = hi - 1
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        # now a[lo:j+1] <= pivot <= a[i:hi], and a[j+1:i] == pivot
        if k <= j:
            hi = j + 1
        elif k >= i:
            lo = i
        else:
            return
    if hi - lo == 2 and a[lo + 1] < a[lo]:
        a[lo], a[lo + 1] = a[lo + 1], a[lo]


@njit(cache=True)
def _min_nb(a: np.ndarray, lo: int, hi: int) -> float:
    """The smallest of ``a[lo:hi]`` (``lo < hi``)."""
    out = a[lo]
    for i in range(lo + 1, hi):
        out = min(out, a[i])
    return out


@njit(cache=True)
def _median3_nb(x: float, y: float, z: float) -> float:
    """The middle one of three values."""
    if x < y:
        return y if y < z else max(x, z)
    return x if x < z else max(y, z)


@njit(cache=True)
def _interp_nb(lo_val: float, hi_val: float, n: int, q: float) -> float:
    """:func:`_at_nb` of values whose ranks of ``q`` hold ``lo_val`` and ``hi_val``."""
    pos = q * (n - 1)
    lo, _ = _ranks_nb(n, q)
    return lo_val + (hi_val - lo_val) * (pos - lo)


@njit(cache=True)
def _ranks_nb(n: int, q: float) -> tuple[int, int]:
    """The two ranks (0-based, ascending) the quantile ``q`` of ``n`` values lies between."""
    lo = math.floor(q * (n - 1))
    return lo, min(lo + 1, n - 1)


@njit(cache=True)
def _at_nb(vals: np.ndarray, q: float) -> float:
    """Linear-interpolated quantile ``q`` of values sorted, or partitioned at least at the
    two :func:`_ranks_nb` of ``q``."""
    pos = q * (vals.shape[0] - 1)
    lo, hi = _ranks_nb(vals.shape[0], q)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


@njit(cache=True)
def stat_threshold_nb(state: np.ndarray, window: np.ndarray, params: np.ndarray, s: int) -> float:
    """The statistical whale threshold of ``s``: max(median x multiple, quantile x multiple,
    minimum notional); infinite before ``min_samples`` completed orders. The quantile counts
    once the window holds enough orders to estimate it (n x (1 - q) >= 1; below that it is
    the window's maximum, one lucky order)."""
    n = window[s, R_N]
    if n < window[s, R_MIN] or n < 1:
        return math.inf
    p = params[s]
    thr = max(p.median_multiple * state[s, W_MEDIAN], p.min_notional)
    if n * (1.0 - p.quantile) >= 1.0:
        thr = max(thr, p.quantile_multiple * state[s, W_QUANTILE])
    return thr


@njit(cache=True)
def _complete_nb(
    buf: np.ndarray, window: np.ndarray, state: np.ndarray, params: np.ndarray, s: int
) -> None:
    """The running order of ``s`` is complete: into the window (raw notional, no clipping),
    refreshing the median and quantile while the window is small or every REFRESH orders."""
    push_nb(buf, window, s, state[s, W_AGG])
    state[s, W_SINCE] += 1.0
    n = window[s, R_N]
    every = min(REFRESH, max(1.0, n / 16.0))
    if state[s, W_SINCE] >= every or n <= window[s, R_MIN]:
        _refresh_nb(buf, window, state, s, params[s].quantile)


@njit(cache=True)
def whale_batch_nb(
    sid: np.ndarray,
    ts: np.ndarray,
    px: np.ndarray,
    amt: np.ndarray,
    buy: np.ndarray,
    venue_notional: np.ndarray,
    venue_usd: np.ndarray,
    state: np.ndarray,
    burst_times: np.ndarray,
    buf: np.ndarray,
    window: np.ndarray,
    params: np.ndarray,
    fires: np.ndarray,
    m: int,
) -> int:
    """Taker orders (consecutive fills with the same time and side, summed) above an absolute
    notional (``venue_notional`` in the quote or ``venue_usd``: the trades' own notionals from
    the instrument spec, NaN where unknown, so a market without a spec never fires it), or
    above the statistical threshold (:func:`stat_threshold_nb`: a multiple of the median and
    of a high quantile of recent orders, at least a minimum notional: wash trading that
    narrows the size distribution cannot lower it); bursts of same-side large orders within a
    time window. The window holds completed orders only."""
    for i in range(sid.shape[0]):
        s = sid[i]
        t = ts[i]
        notional = px[i] * amt[i]
        if not (notional > 0.0 and notional < math.inf and math.isfinite(t)):
            continue
        side = 1.0 if buy[i] > 0.0 else 0.0
        if state[s, W_AGG] > 0.0 and t == state[s, W_AGG_TS] and side == state[s, W_AGG_SIDE]:
            agg = state[s, W_AGG] + notional
            state[s, W_AGG_Q] += venue_notional[i]
            state[s, W_AGG_U] += venue_usd[i]
        else:
            if state[s, W_AGG] > 0.0:
                _complete_nb(buf, window, state, params, s)
            agg = notional
            state[s, W_AGG_TS] = t
            state[s, W_AGG_SIDE] = side
            state[s, W_AGG_LVL] = 0.0
            state[s, W_AGG_LARGE] = 0.0
            state[s, W_AGG_Q] = venue_notional[i]
            state[s, W_AGG_U] = venue_usd[i]
        state[s, W_AGG] = agg
        stat = stat_threshold_nb(state, window, params, s)
        med = state[s, W_MEDIAN] if stat < math.inf else math.nan
        n = window[s, R_N]
        abs_val, abs_thr, rule = _absolute_nb(state, params, s)
        r_abs = abs_val / abs_thr if abs_thr > 0.0 and abs_val >= 0.0 else 0.0
        r_stat = agg / stat
        if r_abs >= 1.0 or r_stat >= 1.0:
            by_abs = r_abs >= r_stat
            lvl = level_nb(max(r_abs, r_stat))
            if lvl + 1 > state[s, W_AGG_LVL]:
                state[s, W_AGG_LVL] = lvl + 1
                m = fire_nb(
                    fires,
                    m,
                    row=i,
                    code=CODE_WHALE,
                    value=abs_val if by_abs else agg,
                    threshold=abs_thr if by_abs else stat,
                    z=math.nan,
                    mean=med,
                    std=math.nan,
                    samples=n,
                    level=lvl,
                    aux=side + (rule if by_abs else 0.0),
                )
        frac = params[s].burst_fraction
        large = agg >= frac * stat or r_abs >= frac
        if large and state[s, W_AGG_LARGE] == 0.0:
            state[s, W_AGG_LARGE] = 1.0
            m = _burst_nb(state, burst_times, params, s, i, t, side, med, n, fires, m)
    return m


@njit(cache=True)
def _absolute_nb(state: np.ndarray, params: np.ndarray, s: int) -> tuple[float, float, float]:
    """(the running order's venue notional, the absolute threshold, USD_RULE or 0): the
    quote's threshold on the quote notional, else the USD one on the USD notional (a NaN
    notional, unknown spec or rate, never reaches a threshold)."""
    p = params[s]
    if p.notional > 0.0:
        return state[s, W_AGG_Q], p.notional, 0.0
    if p.notional_usd > 0.0:
        return state[s, W_AGG_U], p.notional_usd, USD_RULE
    return math.nan, 0.0, 0.0


@njit(cache=True)
def _burst_nb(
    state: np.ndarray,
    burst_times: np.ndarray,
    params: np.ndarray,
    s: int,
    i: int,
    t: float,
    side: float,
    med: float,
    n: float,
    fires: np.ndarray,
    m: int,
) -> int:
    """Count one large order of ``side``; a finding when ``burst_count`` of them fall inside
    the burst window."""
    sd = int(1.0 - side)  # ring 0 = buy, 1 = sell
    need = int(params[s].burst_count)
    cnt = int(state[s, W_N + 2 * sd])
    pos = int(state[s, W_POS + 2 * sd])
    burst_times[s, sd * MAX_BURST + pos] = t
    state[s, W_POS + 2 * sd] = (pos + 1) % need
    cnt = min(cnt + 1, need)
    state[s, W_N + 2 * sd] = cnt
    if cnt < need:
        return m
    inside = 0
    for j in range(need):
        if t - burst_times[s, sd * MAX_BURST + j] <= params[s].burst_window_s:
            inside += 1
    if inside < need:
        return m
    m = fire_nb(
        fires,
        m,
        row=i,
        code=CODE_BURST,
        value=float(inside),
        threshold=float(need),
        z=math.nan,
        mean=med,
        std=math.nan,
        samples=n,
        level=0,
        aux=side,
    )
    state[s, W_N + 2 * sd] = 0.0
    state[s, W_POS + 2 * sd] = 0.0
    return m
