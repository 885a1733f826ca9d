# ruff: noqa: PLR0917  (numba kernels take their state arrays positionally)
"""What every detector kernel shares: the findings layout, severity levels, hysteresis.

The kernels live in ``volume_nb``, ``price_nb``, ``whale_nb``, ``book_nb`` and
``divergence_nb`` (DESIGN.md 3.6): one call per micro-batch of events. Each walks a batch of
column arrays (symbol id, time, fields), updates the per-symbol state arrays in place and
appends *findings* to ``fires`` (an array of :data:`FINDING` records), returning the new
number of findings. Thresholds come per symbol id from a structured parameter array whose
dtype the kernel module defines beside the kernel. Hysteresis lives in the state (a finding
fires once per excursion, again only at a higher severity level), so Python only touches the
rare rows that fire. The finding ``code`` is the detector's own: its ``kinds`` map turns it
into an :class:`~cryptomon.kinds.AnomalyKind`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit


class Finding(NamedTuple):
    """One row of ``fires`` read back in Python (fields in :data:`FINDING` order)."""

    row: int  # index of the triggering event in the batch
    code: int  # the detector's finding code (its ``kinds`` map names the kind)
    value: float
    threshold: float
    z: float
    mean: float
    std: float
    samples: float
    level: int  # severity level, see level_nb
    aux: float  # detector-specific context (notional, duration, side, ...)


_INT_FIELDS = frozenset({"row", "code", "level"})
FINDING = np.dtype(
    [(name, np.int64 if name in _INT_FIELDS else np.float64) for name in Finding._fields]
)
"""The record layout of one finding, built from :class:`Finding` (one source of truth)."""


def new_findings(n: int) -> np.ndarray:
    """An empty ``fires`` array with room for ``n`` findings."""
    return np.zeros(n, dtype=FINDING)


def read_findings(fires: np.ndarray, m: int) -> list[Finding]:
    """The first ``m`` findings as :class:`Finding` tuples (a copy)."""
    return [Finding._make(rec) for rec in fires[:m].tolist()]


REARM = 0.8  # an excursion ends when the value falls below 80% of its threshold

# severity levels from how far past the threshold (ratio value / threshold): below the first
# step low (0), then medium (1), high (2), critical (3)
LEVEL_STEPS = (1.25, 1.6, 2.5)


@njit(cache=True)
def level_nb(ratio: float) -> int:
    """0 low, 1 medium, 2 high, 3 critical (NaN counts as critical, as past every step)."""
    for lvl in range(len(LEVEL_STEPS)):
        if ratio < LEVEL_STEPS[lvl]:
            return lvl
    return len(LEVEL_STEPS)


@njit(cache=True)
def fire_nb(
    fires: np.ndarray,
    m: int,
    row: int,
    code: int,
    value: float,
    threshold: float,
    z: float,
    mean: float,
    std: float,
    samples: float,
    level: int,
    aux: float,
) -> int:
    """Append one finding (fields by name, see :class:`Finding`); the new count. A full
    ``fires`` drops the finding (the engine sizes it for a whole batch)."""
    if m >= fires.shape[0]:
        return m
    rec = fires[m]
    rec.row = row
    rec.code = code
    rec.value = value
    rec.threshold = threshold
    rec.z = z
    rec.mean = mean
    rec.std = std
    rec.samples = samples
    rec.level = level
    rec.aux = aux
    return m + 1


@njit(cache=True)
def count_seen_nb(
    sid: np.ndarray, ts: np.ndarray, count: np.ndarray, first: np.ndarray, last: np.ndarray
) -> int:
    """The warm-up counting of one batch (``gate.SourceSeen``): per row, one more event of
    its market, the earliest time (``fmin``: a NaN time never replaces a time, a NaN first
    takes any) and the time of the market's last row. Returns 0; or, when a market id does
    not fit the arrays, the length they need, having counted nothing."""
    size = 0
    for i in range(sid.shape[0]):
        size = max(size, sid[i] + 1)
    if size > count.shape[0] or size > first.shape[0] or size > last.shape[0]:
        return size
    for i in range(sid.shape[0]):
        s = sid[i]
        t = ts[i]
        count[s] += 1
        if math.isnan(first[s]) or t < first[s]:
            first[s] = t
        last[s] = t
    return 0


@njit(cache=True)
def rows_before_nb(sid: np.ndarray, ts: np.ndarray, row: int) -> tuple[int, float]:
    """(rows of the market of ``row`` up to ``row`` inclusive, their earliest time; NaN if
    one of those times is NaN, as ``ndarray.min`` gives)."""
    s = sid[row]
    n = 0
    lo = math.inf
    has_nan = False
    for i in range(row + 1):
        if sid[i] == s:
            n += 1
            t = ts[i]
            if math.isnan(t):
                has_nan = True
            elif t < lo:
                lo = t
    return n, math.nan if has_nan else lo
