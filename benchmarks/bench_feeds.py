"""Feed ingest throughput (DESIGN.md section 6, target: ratio >= 0.85).

Replays the shared recordings (``../shared/data/cryptofeed-sample``, every exchange, each
looped until it has run ``--seconds`` per variant) two ways, interleaved in the same run:

- ours: :class:`cryptomon.feeds.replay.ReplayFeed` -> cryptofeed parse -> Converter (units
  from the recording's instrument specs, the quality guard) -> hub (one inline subscriber for
  every market data event), book depth 20 as configured by default; one guard per exchange
  across loops, each loop shifted in time and trade ids so it is new data to the guard;
- baseline: ``cryptofeed.raw_data_collection.playback`` with no-op callbacks.

Both include their own setup (reading the recording, symbol tables), run by ``asyncio.run``;
both parse the recording's symbol JSON every time and build cryptofeed's symbol table once
(cryptofeed skips it when populated; the replay when populated from the same recording).
Neither validates checksums (playback's default; the replay passes none either). Ours keeps
the configured book depth (``max_depth`` 20), playback cryptofeed's default; ``--control``
times our harness with no-op callbacks (same settings) to show that this costs nothing.
Throughput = cryptofeed callbacks per second summed over exchanges. Prints per-exchange figures
and a final JSON line: value = ours callbacks/s, baseline = playback callbacks/s.

Usage: python benchmarks/bench_feeds.py [--seconds 1.0] [--rounds 3] [--control] [--data DIR]
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
from collections.abc import Callable
from pathlib import Path

from cryptofeed.raw_data_collection import playback

from cryptomon.clock import LiveClock
from cryptomon.config import ExchangeConfig
from cryptomon.events import MARKET_DATA, FlaggedTrade
from cryptomon.feeds.convert import CF_CHANNELS
from cryptomon.feeds.replay import ReplayFeed, replay_feed_class
from cryptomon.feeds.specs import recording_specs
from cryptomon.hub import Hub
from cryptomon.market.inputs import MarketInputs
from cryptomon.market.quality import QualityGuard
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.venues import RecordingError

EXCHANGES = ("BINANCE", "BINANCE_FUTURES", "OKX", "KRAKEN", "BITFINEX", "GATEIO")


def default_data() -> Path:
    env = os.environ.get("CRYPTOMON_TEST_SHARED_DATA")
    here = Path(__file__).resolve().parents[1]
    return Path(env) if env else here.parent / "shared" / "data" / "cryptofeed-sample"


class Looped:
    """The market layer a daemon would keep across the loops of one exchange: its instrument
    specs (read once, like at start) and one quality guard; every loop is shifted in time and
    trade ids (``Converter.shift_loop``) so it is new data, neither history nor duplicates."""

    def __init__(self) -> None:
        self.inputs: dict[str, MarketInputs] = {}
        self.guards: dict[str, QualityGuard] = {}
        self.loops: dict[str, int] = {}

    def feed_for(self, exchange: str, files: list[str], hub: Hub) -> ReplayFeed:
        cfg = ExchangeConfig(name=exchange.lower(), source="replay", files=files)
        inputs = self.inputs.get(exchange)
        if inputs is None:
            registry = InstrumentRegistry()
            with contextlib.suppress(RecordingError):  # no instrument format: unknown units
                registry.add(recording_specs(cfg))
            inputs = self.inputs[exchange] = MarketInputs(registry=registry)
        feed = ReplayFeed(
            cfg, feed_class=replay_feed_class(exchange), hub=hub, clock=LiveClock(), market=inputs
        )
        guard = self.guards.setdefault(exchange, feed.converter.quality)  # type: ignore[arg-type]
        feed.converter.quality = guard
        n = self.loops.get(exchange, 0)
        self.loops[exchange] = n + 1
        feed.converter.shift_loop(n * LOOP_SHIFT_S, f"~{n}" if n else "")
        return feed


LOOPED = Looped()
LOOP_SHIFT_S = 1e7  # ~116 days per loop: later than any recording's span and history


def ours_once(exchange: str, files: list[str]) -> int:
    async def run() -> int:
        hub = Hub()
        sink = [0]

        def on_event(_ev: object) -> None:
            sink[0] += 1

        hub.subscribe([*MARKET_DATA, FlaggedTrade], on_event, name="bench.sink")
        feed = LOOPED.feed_for(exchange, files, hub)
        await feed.start()
        await feed.done.wait()
        await feed.stop()
        if feed.error is not None:
            raise feed.error
        return sum(feed.counts().values())

    return asyncio.run(run())


def control_once(exchange: str, files: list[str]) -> int:
    """Our replay harness (ReplayFeed, same files and cryptofeed settings) with no-op callbacks
    instead of the Converter: ours minus this is the cost of conversion + hub; this vs the
    baseline is the cost of the harness itself (``--control``)."""

    async def run() -> int:
        count = [0]

        async def noop(_obj: object, _receipt: float) -> None:
            count[0] += 1

        cfg = ExchangeConfig(name=exchange.lower(), source="replay", files=files)
        feed = ReplayFeed(cfg, feed_class=replay_feed_class(exchange), hub=Hub(), clock=LiveClock())
        feed.converter.callbacks = lambda chans: {CF_CHANNELS[c]: noop for c in chans}  # type: ignore[method-assign,assignment]
        await feed.start()
        await feed.done.wait()
        await feed.stop()
        if feed.error is not None:
            raise feed.error
        return count[0]

    return asyncio.run(run())


def baseline_once(exchange: str, files: list[str]) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        result = playback(exchange, files, config=None)
    return sum(result["callbacks"].values())


def measure(
    fn: Callable[[str, list[str]], int], exchange: str, files: list[str], seconds: float
) -> tuple[int, float]:
    callbacks, elapsed = 0, 0.0
    while elapsed < seconds:
        t0 = time.perf_counter()
        callbacks += fn(exchange, files)
        elapsed += time.perf_counter() - t0
    return callbacks, elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="per exchange, variant and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument(
        "--control", action="store_true", help="also time our replay harness with no-op callbacks"
    )
    args = ap.parse_args()
    rounds_ours: list[float] = []
    rounds_base: list[float] = []
    per_exchange: dict[str, list[float]] = {ex: [] for ex in EXCHANGES}
    for r in range(args.rounds):
        totals = {"ours": [0, 0.0], "base": [0, 0.0]}
        for ex in EXCHANGES:
            files = sorted(str(p) for p in args.data.glob(f"{ex}.*"))
            order: tuple[tuple[str, Callable[[str, list[str]], int]], ...] = (
                ("ours", ours_once),
                ("base", baseline_once),
            )
            if r % 2:
                order = order[::-1]
            if args.control:
                order = (*order, ("noop", control_once))
            rates = {}
            for name, fn in order:
                n, t = measure(fn, ex, files, args.seconds)
                if name in totals:
                    totals[name][0] += n
                    totals[name][1] += t
                rates[name] = n / t
                print(f"round {r} {ex:16s} {name:5s} {n / t:10.0f} callbacks/s")
            per_exchange[ex].append(rates["ours"] / rates["base"])
            if args.control:
                us = {k: 1e6 / v for k, v in rates.items()}
                print(
                    f"round {r} {ex:16s} us/callback: baseline {us['base']:.1f}, our harness with "
                    f"no-op callbacks {us['noop']:.1f}, ours {us['ours']:.1f} (conversion + hub "
                    f"{us['ours'] - us['noop']:.1f})"
                )
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
