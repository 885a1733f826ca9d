"""Full ingest pipeline throughput (DESIGN.md section 6 "pipeline", target: ratio >= 0.6).

The replay of ``benchmarks/bench_feeds.py`` (the shared recordings, every exchange, each
looped for ``--seconds`` per variant and round) with the daemon's consumers on:

- ours: :class:`~cryptomon.feeds.replay.ReplayFeed` -> cryptofeed parse -> Converter (units,
  quality guard; each loop shifted in time and trade ids, as in ``bench_feeds.py``) -> hub ->
  every detector (:class:`~cryptomon.detect.engine.DetectorEngine` from the default
  ``AnomalyDetectionConfig``, inline, micro-batched) and the store writer
  (:class:`~cryptomon.store.writer.StoreWriter`, ``storage.trades: true``, queued) writing to
  a temporary SQLite file. Per exchange and round one pipeline (hub, detectors, writer) is
  built and the recording replayed through it again and again (a new ReplayFeed each time,
  its setup timed) for ``--seconds``; then ``await hub.join()`` (every queued event handed
  to the writer) and ``await writer.flush()`` (every buffered row committed) are timed too:
  nothing is left unmeasured. The database (engine + migrations) is opened per exchange and
  round outside the timing.
- baseline: ``cryptofeed.raw_data_collection.playback`` with no-op callbacks (bare parse),
  its own setup included, as in ``bench_feeds.py``.

Throughput = cryptofeed callbacks per second summed over exchanges (medians of rounds).
Also prints where the time goes: per exchange, the share of the replay phase (parse, convert,
detectors inline, the writer draining concurrently) and of the final drain, the writer's own
database time, rows written, anomalies, dropped market rows, trades too late for the candle
aggregator; ``--profile`` adds a cProfile of one pass.

Usage: python benchmarks/bench_pipeline.py [--seconds 1.0] [--rounds 3] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_feeds import EXCHANGES, Looped, baseline_once, default_data

from cryptomon.clock import LiveClock
from cryptomon.config import AnomalyDetectionConfig, DatabaseConfig, StorageConfig
from cryptomon.detect.engine import DetectorEngine
from cryptomon.detect.warmup import warmup
from cryptomon.hub import Hub
from cryptomon.store.db import Database
from cryptomon.store.writer import StoreWriter


@dataclass
class Tally:
    """What our pipeline did and where its time went, summed over loops."""

    callbacks: int = 0
    seconds: float = 0.0
    replay_s: float = 0.0
    drain_s: float = 0.0
    loops: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    anomalies: int = 0
    dropped: int = 0
    db_s: float = 0.0  # the writer's own write latency summed (runs partly in aiosqlite's thread)
    batches: int = 0
    late: int = 0  # trades older than the open 1-minute candle (loops rewind time): skipped

    def add_rows(self, rows: dict[str, int]) -> None:
        for k, v in rows.items():
            self.rows[k] = self.rows.get(k, 0) + v


async def measure_ours(db: Database, exchange: str, files: list[str], seconds: float) -> Tally:
    """Replays of ``exchange`` through one pipeline (as a daemon would run them) until
    ``seconds`` have passed, then the drain: timed until every row is committed."""
    tally = Tally()
    clock = LiveClock()
    t0 = time.perf_counter()
    hub = Hub()
    engine = DetectorEngine(hub=hub, clock=clock, config=AnomalyDetectionConfig())
    writer = StoreWriter(hub=hub, db=db, config=StorageConfig(trades=True), clock=clock)
    await engine.start()
    await writer.start()
    await hub.start()
    looped = Looped()  # one daemon: its specs and quality guard kept across the loops
    while time.perf_counter() - t0 < seconds or not tally.loops:
        feed = looped.feed_for(exchange, files, hub)
        await feed.start()
        await feed.done.wait()
        await feed.stop()
        if feed.error is not None:
            raise feed.error
        tally.callbacks += sum(feed.counts().values())
        tally.loops += 1
    engine.flush()  # the engine's end-of-iteration flush, made explicit
    t1 = time.perf_counter()
    await hub.join()  # every queued event handed to the writer
    await writer.flush()  # ... and every buffered row committed
    t2 = time.perf_counter()
    tally.seconds = t2 - t0
    tally.replay_s = t1 - t0
    tally.drain_s = t2 - t1
    stats = writer.stats()
    tally.db_s = stats["write_latency_s"]["avg"] * stats["batches"]
    tally.batches = stats["batches"]
    await engine.stop()
    await writer.stop()
    await hub.stop()
    stats = writer.stats()
    tally.add_rows(stats["rows"])
    tally.dropped = stats["dropped"]
    tally.late = stats["late_trades"]
    tally.anomalies = sum(engine.by_kind.values())
    return tally


def measure_base(exchange: str, files: list[str], seconds: float) -> tuple[int, float]:
    callbacks, elapsed = 0, 0.0
    while elapsed < seconds:
        t0 = time.perf_counter()
        callbacks += baseline_once(exchange, files)
        elapsed += time.perf_counter() - t0
    return callbacks, elapsed


def run_ours(db_url: str, exchange: str, files: list[str], seconds: float) -> Tally:
    async def main() -> Tally:
        db = Database(DatabaseConfig(url=db_url))
        await db.start()
        try:
            return await measure_ours(db, exchange, files, seconds)
        finally:
            await db.stop()

    return asyncio.run(main())


def profile_pass(db_url: str, data: Path) -> None:
    """cProfile of one pass over every exchange (profiler overhead inflates small calls)."""
    prof = cProfile.Profile()
    prof.enable()
    for ex in EXCHANGES:
        run_ours(db_url, ex, sorted(str(p) for p in data.glob(f"{ex}.*")), 0.0)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
    print(out.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="per exchange, variant and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of one pass")
    args = ap.parse_args()
    warmup(DetectorEngine)  # numba kernels compiled / loaded from cache before any timing
    rounds_ours: list[float] = []
    rounds_base: list[float] = []
    per_ex: dict[str, list[float]] = {ex: [] for ex in EXCHANGES}
    totals: dict[str, Tally] = {ex: Tally() for ex in EXCHANGES}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        db_url = f"sqlite+aiosqlite:///{Path(tmp) / 'pipeline.db'}"
        for r in range(args.rounds):
            sums = {"ours": [0, 0.0], "base": [0, 0.0]}
            for ex in EXCHANGES:
                files = sorted(str(p) for p in args.data.glob(f"{ex}.*"))
                rates: dict[str, float] = {}
                order = ("ours", "base") if r % 2 == 0 else ("base", "ours")
                for name in order:
                    if name == "ours":
                        t = run_ours(db_url, ex, files, args.seconds)
                        n, s = t.callbacks, t.seconds
                        agg = totals[ex]
                        agg.callbacks += n
                        agg.seconds += s
                        agg.replay_s += t.replay_s
                        agg.drain_s += t.drain_s
                        agg.loops += t.loops
                        agg.add_rows(t.rows)
                        agg.anomalies += t.anomalies
                        agg.dropped += t.dropped
                        agg.db_s += t.db_s
                        agg.batches += t.batches
                        agg.late += t.late
                    else:
                        n, s = measure_base(ex, files, args.seconds)
                    sums[name][0] += n
                    sums[name][1] += s
                    rates[name] = n / s
                    print(f"round {r} {ex:16s} {name:5s} {n / s:10.0f} callbacks/s")
                per_ex[ex].append(rates["ours"] / rates["base"])
            rounds_ours.append(sums["ours"][0] / sums["ours"][1])
            rounds_base.append(sums["base"][0] / sums["base"][1])
        print("where the time goes (ours, summed over rounds):")
        for ex, t in totals.items():
            print(
                f"  {ex:16s} ratio {statistics.median(per_ex[ex]):.3f}  "
                f"{t.seconds / max(t.callbacks, 1) * 1e6:6.1f} us/callback  "
                f"replay+detect {t.replay_s / t.seconds:5.1%}  final drain "
                f"{t.drain_s / t.seconds:5.1%}  db writes {t.db_s / t.seconds:5.1%} "
                f"({t.batches} batches)  loops {t.loops}  anomalies {t.anomalies}  "
                f"dropped {t.dropped}  late trades {t.late}  rows {t.rows}"
            )
        dropped = sum(t.dropped for t in totals.values())
        if dropped:
            print(f"WARNING: {dropped} market rows dropped by the writer's bounded queue")
        if args.profile:
            profile_pass(db_url, args.data)
    value = statistics.median(rounds_ours)
    baseline = statistics.median(rounds_base)
    result: dict[str, Any] = {
        "bench": "pipeline",
        "value": round(value),
        "unit": "callbacks/s",
        "baseline": round(baseline),
        "ratio": round(value / baseline, 3),
        "target": 0.6,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
