"""Backtest throughput (DESIGN.md section 6 "backtest", target: >= 100k candles/s).

- ours: generated one-minute candles of one symbol (a seeded random walk with volume spikes;
  one year = 525,600 by default) through :class:`~cryptomon.backtest.runner.BacktestRunner`:
  the default detectors, the anomaly rules, the indicator strategy (``min_signal_strength``
  0.5 so it trades), the risk checks, the order engine and the paper broker, on a
  ManualClock. Candles per second of the whole run (start and stop included).
- baseline, in the same run: the replay pipeline of ``bench_pipeline.py`` without the store:
  the shared BINANCE recording replayed (looped for ``--seconds``) through cryptofeed's parse,
  the converter, the hub and every detector; events (cryptofeed callbacks) per second.

``ratio`` = candles/s / replay events/s. The run takes the fast candle path
(``backtest.fast_path``): the detectors read the candle trades a chunk ahead in kernel
batches, the indicator readings of the whole series come from one kernel call, and only the
candles where a signal fires or a stop/take-profit is within reach run the whole trading path
(quotes along the candle, trade, candle, settle); a candle with a safe open position gets its
close quote, an idle stretch nothing. ``--slow`` also times the whole path on every candle
(``fast_path: false``, the reference) and prints it on the round line.

Usage: python benchmarks/bench_backtest.py [--candles 525600] [--rounds 1] [--seconds 2] [--slow]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_feeds import default_data

from cryptomon.backtest.data import CandleSeries
from cryptomon.backtest.runner import BacktestRunner
from cryptomon.clock import LiveClock
from cryptomon.config import AnomalyDetectionConfig, ExchangeConfig, Settings
from cryptomon.detect.engine import DetectorEngine
from cryptomon.detect.warmup import warmup
from cryptomon.feeds.replay import ReplayFeed, replay_feed_class
from cryptomon.hub import Hub

TARGET = 100_000.0


def year_of_candles(n: int, seed: int = 11) -> CandleSeries:
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
    open_ = np.concatenate([[30_000.0], close[:-1]])
    wiggle = np.abs(rng.normal(0, 0.0004, n)) * close
    volume = rng.gamma(2.0, 3.0, n) * np.where(rng.random(n) < 0.01, 10.0, 1.0)
    ts = 1_704_067_200.0 + 60.0 * np.arange(n)
    return CandleSeries(
        "binance",
        "BTC-USDT",
        "1m",
        ts,
        np.round(open_, 2),
        np.round(np.maximum(open_, close) + wiggle, 2),
        np.round(np.minimum(open_, close) - wiggle, 2),
        np.round(close, 2),
        np.round(volume, 5),
    )


def backtest_rate(series: CandleSeries, *, fast: bool = True) -> tuple[float, dict[str, Any]]:
    settings = Settings.model_validate(
        {"trading": {"min_signal_strength": 0.5}, "logging": {"level": "ERROR"}}
    )
    t0 = time.perf_counter()
    result = asyncio.run(BacktestRunner(settings, [series], fast=fast).run())
    seconds = time.perf_counter() - t0
    info = {
        "signals": result.signals,
        "trades": len(result.trades),
        "anomalies": len(result.anomalies),
        "seconds": round(seconds, 2),
        "digest": result.digest()[:12],
    }
    return len(series) / seconds, info


def replay_rate(seconds: float) -> float:
    files = sorted(str(p) for p in default_data().glob("BINANCE.*"))

    async def run() -> float:
        clock = LiveClock()
        hub = Hub()
        engine = DetectorEngine(hub=hub, clock=clock, config=AnomalyDetectionConfig())
        await engine.start()
        await hub.start()
        cfg = ExchangeConfig(name="binance", source="replay", files=files)
        events, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or not events:
            feed = ReplayFeed(cfg, feed_class=replay_feed_class("BINANCE"), hub=hub, clock=clock)
            await feed.start()
            await feed.done.wait()
            await feed.stop()
            events += sum(feed.counts().values())
        engine.flush()
        elapsed = time.perf_counter() - t0
        await engine.stop()
        await hub.stop()
        return events / elapsed

    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candles", type=int, default=525_600, help="one-minute candles")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=2.0, help="replay baseline per round")
    ap.add_argument("--slow", action="store_true", help="also time the whole path per candle")
    args = ap.parse_args()
    warmup(DetectorEngine)
    from cryptomon import log

    log.configure(level="ERROR", fmt="json", secrets=[])
    series = year_of_candles(args.candles)
    ours: list[float] = []
    base: list[float] = []
    for r in range(args.rounds):
        rate, info = backtest_rate(series)
        ours.append(rate)
        base.append(replay_rate(args.seconds))
        line = f"round {r}: {rate:,.0f} candles/s {info}; replay {base[-1]:,.0f} events/s"
        if args.slow:
            slow, slow_info = backtest_rate(series, fast=False)
            line += f"; slow path {slow:,.0f} candles/s {slow_info}"
        print(line)
        sys.stdout.flush()
    value, baseline = statistics.median(ours), statistics.median(base)
    print(
        json.dumps(
            {
                "bench": "backtest",
                "value": round(value, 1),
                "unit": "candles/s",
                "baseline": round(baseline, 1),
                "ratio": round(value / baseline, 4),
                "target": TARGET,
            }
        )
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
