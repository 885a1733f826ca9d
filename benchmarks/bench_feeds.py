"""Feed ingest throughput (DESIGN.md section 6, target: ratio >= 0.85).

Replays the shared recordings (``../shared/data/cryptofeed-sample``, every exchange, each
looped until it has run ``--seconds`` per variant) two ways, interleaved in the same run:

- ours: :class:`cryptomon.feeds.replay.ReplayFeed` -> cryptofeed parse -> Converter -> hub
  (one inline subscriber for every market data event), book depth 20 as configured by default;
- baseline: ``cryptofeed.raw_data_collection.playback`` with no-op callbacks.

Both include their own setup (reading the recording, symbol tables), run by ``asyncio.run``.
Throughput = cryptofeed callbacks per second summed over exchanges. Prints per-exchange figures
and a final JSON line: value = ours callbacks/s, baseline = playback callbacks/s.

Usage: python benchmarks/bench_feeds.py [--seconds 1.0] [--data DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import statistics
import time
from pathlib import Path

from cryptofeed.raw_data_collection import playback

from cryptomon.clock import LiveClock
from cryptomon.config import ExchangeConfig
from cryptomon.events import MARKET_DATA
from cryptomon.feeds.replay import ReplayFeed, replay_feed_class
from cryptomon.hub import Hub

EXCHANGES = ("BINANCE", "BINANCE_FUTURES", "OKX", "KRAKEN", "BITFINEX", "GATEIO")


def default_data() -> Path:
    env = os.environ.get("CRYPTOMON_SHARED_DATA")
    here = Path(__file__).resolve().parents[1]
    return Path(env) if env else here.parent / "shared" / "data" / "cryptofeed-sample"


def ours_once(exchange: str, files: list[str]) -> int:
    async def run() -> int:
        hub = Hub()
        sink = [0]

        def on_event(_ev: object) -> None:
            sink[0] += 1

        hub.subscribe(list(MARKET_DATA), on_event, name="bench.sink")
        cfg = ExchangeConfig(name=exchange.lower(), source="replay", files=files)
        feed = ReplayFeed(cfg, feed_class=replay_feed_class(exchange), hub=hub, clock=LiveClock())
        await feed.start()
        await feed.done.wait()
        await feed.stop()
        if feed.error is not None:
            raise feed.error
        return sum(feed.counts().values())

    return asyncio.run(run())


def baseline_once(exchange: str, files: list[str]) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        result = playback(exchange, files, config=None)
    return sum(result["callbacks"].values())


def measure(fn: object, exchange: str, files: list[str], seconds: float) -> tuple[int, float]:
    callbacks, elapsed = 0, 0.0
    while elapsed < seconds:
        t0 = time.perf_counter()
        callbacks += fn(exchange, files)  # type: ignore[operator]
        elapsed += time.perf_counter() - t0
    return callbacks, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="per exchange, variant and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", type=Path, default=default_data())
    args = ap.parse_args()
    rounds_ours: list[float] = []
    rounds_base: list[float] = []
    per_exchange: dict[str, list[float]] = {ex: [] for ex in EXCHANGES}
    for r in range(args.rounds):
        totals = {"ours": [0, 0.0], "base": [0, 0.0]}
        for ex in EXCHANGES:
            files = sorted(str(p) for p in args.data.glob(f"{ex}.*"))
            order = (("ours", ours_once), ("base", baseline_once))
            if r % 2:
                order = order[::-1]
            rates = {}
            for name, fn in order:
                n, t = measure(fn, ex, files, args.seconds)
                totals[name][0] += n
                totals[name][1] += t
                rates[name] = n / t
                print(f"round {r} {ex:16s} {name:5s} {n / t:10.0f} callbacks/s")
            per_exchange[ex].append(rates["ours"] / rates["base"])
        rounds_ours.append(totals["ours"][0] / totals["ours"][1])
        rounds_base.append(totals["base"][0] / totals["base"][1])
    for ex, ratios in per_exchange.items():
        print(f"{ex:16s} ratio (median of rounds) {statistics.median(ratios):.3f}")
    value = statistics.median(rounds_ours)
    baseline = statistics.median(rounds_base)
    print(
        json.dumps(
            {
                "bench": "feeds",
                "value": round(value),
                "unit": "callbacks/s",
                "baseline": round(baseline),
                "ratio": round(value / baseline, 3),
                "target": 0.85,
            }
        )
    )


if __name__ == "__main__":
    main()
