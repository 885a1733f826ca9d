# ruff: noqa: PLR0917  (numba kernels take their state arrays positionally)
"""Generic numba kernels for rolling statistics (DESIGN.md 3.6).

Pure numpy-only ``@njit(cache=True)`` functions. State for every (exchange, symbol) lives in
2-D arrays indexed by a symbol id ``s``, so one compiled kernel serves any symbol:

- rolling window (mean / population std over the last ``W`` values): ``buf[s, :W]`` is the
  ring, ``state[s, :]`` the scalars (columns ``R_*``). The sums are kept *shifted* by a
  reference ``K`` near the mean (``S1 = sum(x - K)``, ``S2 = sum((x - K)^2)``) and
  recomputed exactly (compensated two-pass) every ``W`` updates and whenever cancellation
  would lose digits, so the drift stays far below 1e-9 relative and a constant window gives
  exactly ``std == 0``.
- EWMA mean / variance with a time-aware decay (half-life in seconds): ``ewma[s, :]``
  (columns ``E_*``).

Helpers prefixed ``_`` are private to this module; the public ones (``push_nb``, ``z_nb``,
``ewma_push_nb``, ...) are the building blocks of the detector kernels. Each keeps one
signature (float64 / int64 arrays) so the cache stays small.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# rolling-window state columns
R_W = 0  # window length
R_MIN = 1  # min samples before statistics count
R_POS = 2  # next write position in the ring
R_N = 3  # values in the window
R_K = 4  # shift reference
R_S1 = 5  # sum(x - K)
R_S2 = 6  # sum((x - K)^2)
R_HI = 7  # largest S2 since the last exact recompute
R_SINCE = 8  # updates since the last exact recompute
R_COLS = 9

# EWMA state columns
E_MEAN = 0
E_VAR = 1
E_N = 2
E_LAST = 3  # time of the last update
E_COLS = 4

_CANCEL = 1e-3  # recompute when S2 lost more than 3 digits to cancellation


@njit(cache=True)
def _exact_nb(ring: np.ndarray, n: int) -> tuple[float, float, float]:
    """Compensated two-pass (K, S1, S2) of ``ring[:n]`` with K the mean (exact for constants)."""
    if n == 0:
        return 0.0, 0.0, 0.0
    total = 0.0
    for i in range(n):
        total += ring[i]
    m0 = total / n
    corr = 0.0
    for i in range(n):
        corr += ring[i] - m0
    k = m0 + corr / n
    s1 = 0.0
    s2 = 0.0
    for i in range(n):
        d = ring[i] - k
        s1 += d
        s2 += d * d
    return k, s1, s2


@njit(cache=True, inline="always")
def _push_core_nb(
    ring: np.ndarray, w: int, n: int, pos: int, k: float, s1: float, s2: float, hi: float, x: float
) -> tuple[int, int, float, float, float, float, float, float]:
    """Add ``x`` to one window held in scalars + ``ring``. Returns the new
    ``(n, pos, k, s1, s2, hi)`` and the window's ``(s1 / n, variance)``. Recomputes exactly when
    cancellation ate digits of S2 or of the variance; the caller adds the periodic recompute
    every ``w`` updates. Shared by every rolling kernel."""
    if n == 0:
        k = x
    d = x - k
    if n >= w:
        do = ring[pos] - k
        s1 += d - do
        s2 += d * d - do * do
    else:
        s1 += d
        s2 += d * d
        n += 1
    ring[pos] = x
    pos += 1
    if pos >= w:
        pos = 0
    hi = max(hi, s2)
    m1 = s1 / n
    var = s2 / n - m1 * m1
    if (var * n < _CANCEL * s2 or s2 < _CANCEL * hi) and (s2 > 0.0 or s1 != 0.0):
        k, s1, s2 = _exact_nb(ring, n)
        hi = s2
        m1 = s1 / n
        var = s2 / n - m1 * m1
    return n, pos, k, s1, s2, hi, m1, var


@njit(cache=True, inline="always")
def _zcore_nb(n: int, min_n: int, k: float, m1: float, var: float, x: float) -> float:
    """z of ``x`` from window scalars; NaN during warm-up and where std == 0."""
    if n < min_n or n < 1 or not var > 0.0:
        return math.nan
    return ((x - k) - m1) / math.sqrt(var)


@njit(cache=True)
def push_nb(buf: np.ndarray, state: np.ndarray, s: int, x: float) -> None:
    """Add ``x`` to the window of symbol ``s`` (dropping the oldest value when full)."""
    w = int(state[s, R_W])
    ring = buf[s]
    n, pos, k, s1, s2, hi, _m1, _var = _push_core_nb(
        ring,
        w,
        int(state[s, R_N]),
        int(state[s, R_POS]),
        state[s, R_K],
        state[s, R_S1],
        state[s, R_S2],
        state[s, R_HI],
        x,
    )
    since = state[s, R_SINCE] + 1.0
    if since >= w:
        k, s1, s2 = _exact_nb(ring, n)
        hi = s2
        since = 0.0
    state[s, R_N] = n
    state[s, R_POS] = pos
    state[s, R_K] = k
    state[s, R_S1] = s1
    state[s, R_S2] = s2
    state[s, R_HI] = hi
    state[s, R_SINCE] = since


@njit(cache=True)
def mean_nb(state: np.ndarray, s: int) -> float:
    n = state[s, R_N]
    if n == 0:
        return math.nan
    return state[s, R_K] + state[s, R_S1] / n


@njit(cache=True)
def std_nb(state: np.ndarray, s: int) -> float:
    """Population standard deviation of the window (NaN when empty)."""
    n = state[s, R_N]
    if n == 0:
        return math.nan
    m1 = state[s, R_S1] / n
    var = state[s, R_S2] / n - m1 * m1
    if var <= 0.0:
        return 0.0
    return math.sqrt(var)


@njit(cache=True)
def z_nb(state: np.ndarray, s: int, x: float) -> float:
    """z of ``x`` against the window of ``s``; NaN during warm-up and where std == 0."""
    n = state[s, R_N]
    if n < 1:
        return math.nan
    m1 = state[s, R_S1] / n
    var = state[s, R_S2] / n - m1 * m1
    return _zcore_nb(int(n), int(state[s, R_MIN]), state[s, R_K], m1, var, x)


@njit(cache=True)
def rolling_zscore_nb(values: np.ndarray, window: int, min_samples: int) -> np.ndarray:
    """z of each value against the last ``window`` values including itself (population std).

    Runs in chunks between the periodic exact recomputes so the inner loop has one branch
    less; the per-value update is :func:`_push_core_nb`, the same as the detectors'.
    """
    size = values.shape[0]
    out = np.empty(size)
    ring = np.zeros(window)
    n = 0
    pos = 0
    k = 0.0
    s1 = 0.0
    s2 = 0.0
    hi = 0.0
    since = 0
    i = 0
    while i < size:
        end = min(size, i + (window - since))
        for j in range(i, end):
            x = values[j]
            n, pos, k, s1, s2, hi, m1, var = _push_core_nb(ring, window, n, pos, k, s1, s2, hi, x)
            out[j] = _zcore_nb(n, min_samples, k, m1, var, x)
        since += end - i
        i = end
        if since >= window:
            k, s1, s2 = _exact_nb(ring, n)
            hi = s2
            since = 0
    return out


@njit(cache=True)
def rolling_batch_nb(
    ids: np.ndarray, values: np.ndarray, buf: np.ndarray, state: np.ndarray, out: np.ndarray
) -> None:
    """Push ``values[i]`` into the window of symbol ``ids[i]``; ``out[i] = (z, mean, std, n)``
    of the window *before* the push (the value is tested against its past)."""
    for i in range(values.shape[0]):
        s = ids[i]
        x = values[i]
        out[i, 0] = z_nb(state, s, x)
        out[i, 1] = mean_nb(state, s)
        out[i, 2] = std_nb(state, s)
        out[i, 3] = state[s, R_N]
        push_nb(buf, state, s, x)


@njit(cache=True)
def ewma_step_nb(ewma: np.ndarray, s: int, ts: float) -> float:
    """The time step of an update of an EWMA of :func:`ewma_push_nb` at ``ts``."""
    dt = ts - ewma[s, E_LAST]
    return max(dt, 0.0)


@njit(cache=True)
def ewma_weight_nb(dt: float, halflife: float) -> float:
    """The weight :func:`ewma_push_nb` gives the new value after a step of ``dt``."""
    return 1.0 - math.exp(-dt * 0.6931471805599453 / halflife)


@njit(cache=True)
def ewma_apply_nb(ewma: np.ndarray, s: int, x: float, ts: float, a: float) -> None:
    """:func:`ewma_push_nb` with its weight ``a`` computed already (ignored for the first
    value): one ``exp`` serves two EWMAs of the same half-life updated at the same time."""
    n = ewma[s, E_N]
    if n == 0:
        ewma[s, E_MEAN] = x
        ewma[s, E_VAR] = 0.0
    else:
        diff = x - ewma[s, E_MEAN]
        incr = a * diff
        ewma[s, E_MEAN] += incr
        ewma[s, E_VAR] = (1.0 - a) * (ewma[s, E_VAR] + diff * incr)
    ewma[s, E_N] = n + 1
    ewma[s, E_LAST] = ts


@njit(cache=True)
def ewma_push_nb(ewma: np.ndarray, s: int, x: float, ts: float, halflife: float) -> None:
    """Time-aware EWMA mean/variance: weight of the past halves every ``halflife`` seconds."""
    a = 0.0
    if ewma[s, E_N] != 0:
        a = ewma_weight_nb(ewma_step_nb(ewma, s, ts), halflife)
    ewma_apply_nb(ewma, s, x, ts, a)


@njit(cache=True)
def ewma_batch_nb(
    ids: np.ndarray,
    values: np.ndarray,
    times: np.ndarray,
    halflife: np.ndarray,
    ewma: np.ndarray,
    out: np.ndarray,
) -> None:
    """EWMA of each symbol; ``out[i] = (mean, std)`` after adding ``values[i]``."""
    for i in range(values.shape[0]):
        s = ids[i]
        ewma_push_nb(ewma, s, values[i], times[i], halflife[s])
        out[i, 0] = ewma[s, E_MEAN]
        out[i, 1] = math.sqrt(ewma[s, E_VAR])


@njit(cache=True)
def ring_minmax_nb(ring: np.ndarray, n: int) -> tuple[float, float]:
    """Minimum and maximum of the first ``n`` entries of a ring row."""
    lo = math.inf
    hi = -math.inf
    for i in range(n):
        v = ring[i]
        lo = min(lo, v)
        hi = max(hi, v)
    return lo, hi


@njit(cache=True)
def log_returns_nb(prices: np.ndarray) -> np.ndarray:
    """``log(p[i] / p[i-1])``; NaN for the first value and non-positive prices."""
    out = np.empty(prices.shape[0])
    if prices.shape[0] == 0:
        return out
    out[0] = math.nan
    for i in range(1, prices.shape[0]):
        a = prices[i - 1]
        b = prices[i]
        out[i] = math.log(b / a) if a > 0.0 and b > 0.0 else math.nan
    return out


def new_rolling(n_sym: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Empty ring buffers and state for ``n_sym`` symbols with room for ``window`` values."""
    return np.zeros((n_sym, max(1, window))), np.zeros((n_sym, R_COLS))


def grow(arr: np.ndarray, rows: int, cols: int | None = None, fill: float = 0.0) -> np.ndarray:
    """``arr`` enlarged to at least ``rows`` rows (and ``cols`` columns), contents kept. Rows
    (one per market or group) grow by doubling, so registering markets one by one reallocates
    each array O(log n) times rather than once per market; the rows past the last market are
    ``fill`` and no kernel reads them (kernels index rows by market id). Columns (a window's
    length, a group's exchanges: kernels iterate them) grow exactly."""
    r, c = arr.shape[0], arr.shape[1]
    cols = c if cols is None else max(c, cols)
    if rows <= r and cols <= c:
        return arr
    out = np.full((max(rows, 2 * r) if rows > r else r, cols), fill, dtype=arr.dtype)
    out[:r, :c] = arr
    return out
