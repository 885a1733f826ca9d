# ruff: noqa: PLR0917  (numba kernels take their state arrays positionally)
"""What every detector kernel shares: the findings layout, codes, severity levels.

The kernels live in ``volume_nb``, ``price_nb``, ``whale_nb``, ``book_nb`` and
``divergence_nb`` (DESIGN.md 3.6): one call per micro-batch of events. Each walks a batch of
column arrays (symbol id, time, fields), updates the per-symbol state arrays in place and
appends *findings* to ``fires`` (columns ``F_*``), returning the new number of findings.
Thresholds come per symbol id from a ``prm`` array. Hysteresis lives there too (a finding
fires once per excursion, again only at a higher severity level), so Python only touches the
rare rows that fire.
"""

from __future__ import annotations

import numpy as np
from numba import njit

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

_REARM = 0.8  # an excursion ends when the value falls below 80% of its threshold

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
