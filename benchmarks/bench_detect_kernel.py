"""Rolling z-score kernel vs pandas rolling mean/std(ddof=0) on the same array.

``python benchmarks/bench_detect_kernel.py [--size 10000000] [--repeats 3]``

Measures ``cryptomon.detect.rolling_zscore`` (numba, numerically stable) over ``--size``
float64 values for windows 1000 and 60, and the pandas baseline
``(s - s.rolling(w).mean()) / s.rolling(w).std(ddof=0)`` in the same run (medians). The last
line is JSON for window 1000: updates/s, the pandas baseline, ratio, target
(>= 1x pandas and >= 50M updates/s, DESIGN.md section 6).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import pandas as pd

from cryptomon.detect import rolling_zscore


def bench_kernel(x: np.ndarray, window: int) -> float:
    t = time.perf_counter()
    rolling_zscore(x, window, window)
    return len(x) / (time.perf_counter() - t)


def bench_pandas(x: np.ndarray, window: int) -> float:
    t = time.perf_counter()
    s = pd.Series(x)
    roll = s.rolling(window, min_periods=window)
    (s - roll.mean()) / roll.std(ddof=0)
    return len(x) / (time.perf_counter() - t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    x = np.random.default_rng(0).normal(100.0, 1.0, args.size)
    rolling_zscore(x[:10_000], 60, 60)  # compile / load from cache outside the timing
    results: dict[int, tuple[float, float]] = {}
    for window in (1000, 60):
        k = statistics.median(bench_kernel(x, window) for _ in range(args.repeats))
        p = statistics.median(bench_pandas(x, window) for _ in range(args.repeats))
        results[window] = (k, p)
        print(
            f"window {window:>5}: numba {k / 1e6:8.1f} M updates/s ({1e9 / k:5.1f} ns), "
            f"pandas {p / 1e6:8.1f} M updates/s, ratio {k / p:.2f}"
        )
    k, p = results[1000]
    print(
        json.dumps(
            {
                "bench": "detect_kernel",
                "value": round(k),
                "unit": "updates/s",
                "baseline": round(p),
                "ratio": round(k / p, 3),
                "target": ">= 1x pandas, >= 50M updates/s",
                "window_60": {"value": round(results[60][0]), "baseline": round(results[60][1])},
            }
        )
    )


if __name__ == "__main__":
    main()
