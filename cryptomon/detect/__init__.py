"""Anomaly detection: numba rolling-window detectors behind an inline hub subscriber.

``rolling_zscore`` is the plain vectorized API over the same kernels the live detectors use.
"""

from __future__ import annotations

import numpy as np


def rolling_zscore(values: np.ndarray, window: int, min_samples: int) -> np.ndarray:
    """z of each value against the last ``window`` values including itself.

    Population std (ddof=0); NaN during warm-up (fewer than ``min_samples`` values in the
    window) and where the window's std is 0. Same as pandas
    ``(s - s.rolling(window, min_samples).mean()) / s.rolling(window, min_samples).std(ddof=0)``
    but numerically stable (exact recompute keeps the drift below 1e-9 relative).
    """
    from cryptomon.detect.kernels_nb import rolling_zscore_nb

    if not isinstance(window, int | np.integer) or window < 1:
        raise ValueError(f"window must be an integer >= 1, not {window!r}")
    if not isinstance(min_samples, int | np.integer) or not 1 <= min_samples <= window:
        raise ValueError(
            f"min_samples must be an integer in [1, window={window}], not {min_samples!r}"
        )
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"values must be one-dimensional, not shape {arr.shape}")
    return rolling_zscore_nb(arr, int(window), int(min_samples))


__all__ = ["rolling_zscore"]
