"""Signal scoring per closed candle: the incremental indicators + the specified scoring.

``python benchmarks/bench_signals.py [--candles 20000] [--repeats 5]``

Per candle, the strategy updates RSI(14), MACD(12,26,9), Bollinger(20,2), SMA(20/50) and
EMA(12/26) in O(1) (``IndicatorSet.update``) and scores the reading (``spec_score``). The
baseline in the same run is what the strategy did before: recompute every indicator with the
numba kernels over the last ``max_candles`` (500) closes on each candle. The last line is JSON:
value = candles/s (incremental), baseline = candles/s (recompute), ratio, target (>= 1x).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import deque

import numpy as np

from cryptomon.config import IndicatorStrategyConfig
from cryptomon.trading.indicators_nb import bollinger_nb, ema_nb, macd_nb, rsi_nb, sma_nb
from cryptomon.trading.signals import IndicatorSet, spec_score

WINDOW = 500


def incremental(closes: np.ndarray, cfg: IndicatorStrategyConfig) -> float:
    state = IndicatorSet(cfg)
    t = time.perf_counter()
    for close in closes.tolist():
        reading = state.update(close)
        if reading.ready:
            spec_score(reading, cfg)
    return time.perf_counter() - t


def recompute(closes: np.ndarray) -> float:
    ring: deque[float] = deque(maxlen=WINDOW)
    t = time.perf_counter()
    for close in closes.tolist():
        ring.append(close)
        x = np.fromiter(ring, np.float64, len(ring))
        rsi_nb(x, 14)
        macd_nb(x, 12, 26, 9)
        bollinger_nb(x, 20, 2.0)
        sma_nb(x, 20)
        sma_nb(x, 50)
        ema_nb(x, 12)
        ema_nb(x, 26)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cfg = IndicatorStrategyConfig()
    closes = 30_000 + np.cumsum(np.random.default_rng(1).normal(0, 20, args.candles))
    recompute(closes[:600])  # compile
    inc = statistics.median(incremental(closes, cfg) for _ in range(args.repeats))
    base = statistics.median(recompute(closes) for _ in range(args.repeats))
    value, baseline = args.candles / inc, args.candles / base
    print(f"incremental + spec score: {1e6 / value:.2f} us/candle")
    print(f"recompute over {WINDOW} closes: {1e6 / baseline:.2f} us/candle")
    print(
        json.dumps(
            {
                "bench": "signals",
                "value": round(value),
                "unit": "candles/s",
                "baseline": round(baseline),
                "ratio": round(value / baseline, 2),
                "target": ">= 1x the recompute",
            }
        )
    )


if __name__ == "__main__":
    main()
