"""Daemon memory under a long replay with 500 symbols (DESIGN.md section 6, target: RSS growth
< 10% after warm-up, total < 400 MB).

The whole daemon is built by ``build_app`` (store writer on a temporary SQLite file, detectors,
notifier, trading in paper mode, MarketState, FeedManager; API off) with one ``source: replay``
exchange per shared recording (``../shared/data/cryptofeed-sample``). The recordings are
replayed in a loop for ``--minutes``: each pass restarts every replay component (a fresh
cryptofeed parser, like a reconnect: ``converter.reset_connection()``), while the daemon's
long-lived objects (converters, book trackers, hub, detectors, writer, market state) live on.

500 markets: the daemon is built on a ``Hub`` subclass (``build_app(hub=...)``) whose
``publish`` rewrites the symbol of every recorded market event onto ``SYM000-USDT`` ..
``SYM499-USDT`` (recorded stream ``k`` of ``M`` rotates message by message over ``SYM{k}``,
``SYM{k+M}``, ... so each synthetic market gets a coherent subsample of one real stream) and
shifts market data timestamps by ``pass * 60 s`` so event time moves forward from pass to pass
as in a live daemon (trades, books and tickers are shifted by the converter, before the quality
layer, which also tags trade ids with the pass: each pass is new data, neither history nor
duplicates). Everything downstream of the hub sees 500 markets.

Restarting the replays is this benchmark's loop, not something the daemon does: cryptofeed
2.4.1 registers every connection object's ``__del__`` with ``atexit``, so each restart would
keep ~14 closed connection objects alive for good (+13.5% RSS in 10 min, measured). Between
passes the benchmark therefore drops those ``atexit`` references (``--keep-conns`` keeps them).

RSS is read from ``/proc/self/status`` (VmRSS) every ``--sample-s`` seconds; the baseline is
the RSS after ``--warmup-s`` seconds (default 120 s), the value the RSS at the end. Each
sample also shows the live Python allocations and gc-tracked objects (those made after the
daemon started: ``App.start`` freezes the ones before out of the collector's view); at the end
the object types that grew most since warm-up are listed (what grows without bound shows up
there). The
RSS at the end is also split into anonymous memory and mapped files (``RssAnon``/``RssFile``):
the latter are mostly shared libraries' clean pages, ~95 MB of them numba's LLVM.
With ``--trace`` tracemalloc runs from the warm-up on and the allocation sites still alive at
the end are listed; it slows the run down a lot, so use it with a short run.

Usage: python benchmarks/bench_memory.py [--minutes 10] [--quick] [--trace] [--data DIR]
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

from cryptofeed.connection import AsyncConnection

from cryptomon.app import build_app
from cryptomon.config import load_settings
from cryptomon.events import MARKET_DATA, BookSnapshot, BookTop, Event, Ticker, Trade
from cryptomon.hub import Hub
from cryptomon.log import configure as configure_logging
from cryptomon.market.state import MarketState

EXCHANGES = ("BINANCE", "BINANCE_FUTURES", "OKX", "KRAKEN", "BITFINEX", "GATEIO")
PASS_SHIFT_S = 60.0  # each pass moves event time this much forward (recordings span <= 31 s)


def default_data() -> Path:
    env = os.environ.get("CRYPTOMON_TEST_SHARED_DATA")
    here = Path(__file__).resolve().parents[1]
    return Path(env) if env else here.parent / "shared" / "data" / "cryptofeed-sample"


def rss_mb() -> float:
    """Resident set size of this process (VmRSS), MB."""
    with open("/proc/self/status", encoding="ascii") as fp:
        for line in fp:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def release_cryptofeed_connections() -> int:
    """Drop the atexit references of every (closed) cryptofeed connection; returns how many.

    cryptofeed 2.4.1 registers each ``AsyncConnection``'s bound ``__del__`` with ``atexit``
    (``connection.py``), so a connection object, once created, lives until the process exits.
    The daemon creates them once per feed start; this benchmark starts six replay feeds again
    every pass (~0.3 s), which would leak ~14 of them per pass (see the module docstring).
    Called while every replay is stopped, so all of them are closed.
    """
    n = 0
    for obj in gc.get_objects():
        if isinstance(obj, AsyncConnection):
            atexit.unregister(obj.__del__)
            n += 1
    return n


def queue_depths(hub: Hub) -> dict[str, int]:
    """Events waiting in the queued subscribers (the durable ones are never dropped)."""
    subs = hub.stats()["subscribers"]
    return {k: v["depth"] for k, v in subs.items() if "depth" in v}


def ring_trades(market: MarketState | None) -> int:
    """Trades held by MarketState's per-market rings (bounded: ``trades_kept`` per market)."""
    if market is None:
        return 0
    return sum(len(market.trades(ex, sym, limit=10**6)) for ex, sym in market.markets())


def type_counts() -> Counter[str]:
    """Live gc-tracked objects by type name (what grows after warm-up points at a leak)."""
    return Counter(type(o).__name__ for o in gc.get_objects())


def rss_parts_mb() -> dict[str, float]:
    """VmRSS split (``/proc/self/status``): ``anon`` (heap, arenas, numpy, JIT code) and
    ``file`` (mapped files: shared libraries' pages, ~95 MB of them numba's LLVM, clean and
    shared with every process that maps them)."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as fp:
        for line in fp:
            if line.startswith(("RssAnon:", "RssFile:")):
                out[line[3:7].lower()] = int(line.split()[1]) / 1024.0
    return out


def hwm_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fp:
        for line in fp:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class RemapHub(Hub):
    """The daemon's hub, remapping recorded market data onto N synthetic markets on publish.

    A recorded stream (exchange, symbol) gets one market until :meth:`assign_blocks` knows all
    ``M`` streams (after pass 0); then stream ``k`` rotates over ``SYM{k}``, ``SYM{k+M}``, ...
    Market data timestamps move by :attr:`shift`. Events the daemon makes itself (anomalies,
    signals, ...) carry synthetic symbols already and pass unchanged.
    """

    def __init__(self, symbols: list[str]) -> None:
        super().__init__()
        self.symbols = symbols
        self._synthetic = frozenset(symbols)
        # the converter shifts trades, books and tickers itself (before the quality layer);
        # the hub shifts the rest of the market data by the same amount
        self._market = frozenset(MARKET_DATA) - {Trade, BookTop, BookSnapshot, Ticker}
        self.streams: dict[tuple[str, str], tuple[list[str], list[int]]] = {}
        self.shift = 0.0
        self.remapped = 0

    def _new_stream(self, key: tuple[str, str]) -> tuple[list[str], list[int]]:
        k = len(self.streams)
        out = ([self.symbols[k % len(self.symbols)]], [0])
        self.streams[key] = out
        return out

    def assign_blocks(self) -> None:
        n, m = len(self.symbols), len(self.streams)
        for k, (block, ctr) in enumerate(self.streams.values()):
            block[:] = [self.symbols[i] for i in range(k % n, n, m)] or [self.symbols[k % n]]
            ctr[0] = 0

    def publish(self, event: Event) -> None:
        sym = event.symbol
        if sym and sym not in self._synthetic:
            t = self.streams.get((event.exchange, sym))
            if t is None:
                t = self._new_stream((event.exchange, sym))
            block, ctr = t
            i = ctr[0]
            ctr[0] = i + 1
            # a fresh event nobody has seen yet: set its fields before publication
            object.__setattr__(event, "symbol", block[i % len(block)])
            if self.shift and event.__class__ in self._market:
                object.__setattr__(event, "ts", event.ts + self.shift)
                object.__setattr__(event, "ts_recv", event.ts_recv + self.shift)
            self.remapped += 1
        super().publish(event)


def settings_for(data: Path, db_path: Path) -> Any:
    exchanges = []
    for ex in EXCHANGES:
        files = sorted(str(p) for p in data.glob(f"{ex}.*"))
        if not files:
            raise SystemExit(f"bench_memory: no recording {ex}.* in {data}")
        exchanges.append({"name": ex.lower(), "source": "replay", "files": files})
    return load_settings(
        data={
            "exchanges": exchanges,
            "database": {"url": f"sqlite+aiosqlite:///{db_path}"},
            "api": {"enabled": False},
            "logging": {"level": "ERROR"},
        }
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data = Path(args.data)
    tmp = tempfile.TemporaryDirectory(prefix="bench-memory-")
    db_path = Path(tmp.name) / "daemon.sqlite"
    settings = settings_for(data, db_path)
    configure_logging(level="ERROR", fmt="json")
    hub = RemapHub([f"SYM{i:03d}-USDT" for i in range(args.symbols)])
    app = build_app(settings, hub=hub)
    feeds = app.services.feeds
    assert feeds is not None

    t0 = time.monotonic()
    duration = args.minutes * 60.0
    samples: list[tuple[float, float]] = []
    blocks: list[int] = []  # live Python allocations (pymalloc blocks): object growth, not RSS
    warm_rss: float | None = None
    warm_blocks = 0
    released = 0
    warm_types: Counter[str] = Counter()
    warm_ring = 0
    warm_snap: tracemalloc.Snapshot | None = None
    passes = 0
    await app.start()
    try:
        await feeds.wait_replays()  # pass 0 (the daemon's own start)
        passes = 1
        hub.assign_blocks()
        next_sample = 0.0
        while True:
            now = time.monotonic() - t0
            if now >= next_sample:
                gc.collect()
                samples.append((round(now, 1), round(rss_mb(), 1)))
                blocks.append(sys.getallocatedblocks())
                print(
                    f"  t={now:7.1f}s  passes={passes:5d}  rss={samples[-1][1]:7.1f} MB  "
                    f"python blocks={blocks[-1]}  gc objects={len(gc.get_objects())}  "
                    f"queued {queue_depths(app.hub)}",
                    flush=True,
                )
                next_sample += args.sample_s
            if warm_rss is None and now >= args.warmup_s:
                gc.collect()
                warm_rss = rss_mb()
                warm_blocks = sys.getallocatedblocks()
                warm_types = type_counts()
                warm_ring = ring_trades(app.services.market)
                if args.trace:
                    tracemalloc.start(args.trace_frames)  # from here on: what survives is growth
                    warm_snap = tracemalloc.take_snapshot()
            if now >= duration:
                break
            hub.shift = passes * PASS_SHIFT_S
            for src in feeds.sources:
                await src.stop()
                # new data to the quality layer: later times, other trade ids
                src.converter.shift_loop(hub.shift, f"~{passes}")  # type: ignore[attr-defined]
            if not args.keep_conns:
                released += release_cryptofeed_connections()
            for src in feeds.sources:
                src.done.clear()  # type: ignore[attr-defined]
                src.converter.reset_connection()  # type: ignore[attr-defined]
                await src.start()
            await feeds.wait_replays()
            for src in feeds.sources:
                err = getattr(src, "error", None)
                if err is not None:
                    raise RuntimeError(f"replay of {src.exchange} failed: {err!r}")
            passes += 1
        await app.hub.join()
        gc.collect()
        end_rss = rss_mb()
        end_parts = rss_parts_mb()
        end_blocks = sys.getallocatedblocks()
        growth = type_counts()
        growth.subtract(warm_types)
        end_snap = tracemalloc.take_snapshot() if args.trace else None
        detectors = app.services.detectors
        market = app.services.market
        writer = app.services.store_writer
        hub_stats = app.hub.stats()
        info = {
            "passes": passes,
            "released_conns": released,
            "events_published": hub.remapped,
            "streams": len(hub.streams),
            "markets": len(market.markets()) if market is not None else None,
            "ring_trades": (warm_ring, ring_trades(market)),
            "detector_symbols": detectors.stats()["symbols"] if detectors is not None else None,
            "anomalies": detectors.stats()["anomalies"]["total"] if detectors is not None else None,
            "writer_rows": writer.stats().get("rows") if writer is not None else None,
            "queues": {
                k: {"depth": v["depth"], "max_depth": v["max_depth"], "dropped": v["dropped"]}
                for k, v in hub_stats["subscribers"].items()
                if "dropped" in v
            },
        }
    finally:
        await app.stop()
    db_mb = db_path.stat().st_size / 1e6 if db_path.exists() else 0.0
    tmp.cleanup()
    if warm_rss is None:
        raise SystemExit("bench_memory: the run ended before the warm-up; raise --minutes")
    if warm_snap is not None and end_snap is not None:
        print("top allocation growth warm-up -> end (tracemalloc):")
        for stat in end_snap.compare_to(warm_snap, "traceback")[:15]:
            print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+8d} blocks")
            for line in stat.traceback.format():
                print("     ", line)
    return {
        "samples": samples,
        "warm_rss": warm_rss,
        "end_rss": end_rss,
        "end_parts": end_parts,
        "max_rss": max(s[1] for s in samples),
        "hwm": hwm_mb(),
        "db_mb": round(db_mb, 1),
        "blocks": (warm_blocks, end_blocks),
        "types": [(t, n) for t, n in growth.most_common(8) if n > 0],
        **info,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="run length (default 10)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 minute, 20 s warm-up")
    p.add_argument("--warmup-s", type=float, default=None, help="default 120 s (quick: 20 s)")
    p.add_argument("--sample-s", type=float, default=None, help="RSS sample period")
    p.add_argument("--symbols", type=int, default=500)
    p.add_argument(
        "--keep-conns",
        action="store_true",
        help="leave cryptofeed's atexit references of finished passes' connections (they leak)",
    )
    p.add_argument("--trace", action="store_true", help="tracemalloc diff warm-up -> end")
    p.add_argument("--trace-frames", type=int, default=6, help="traceback depth with --trace")
    p.add_argument("--data", default=str(default_data()))
    args = p.parse_args()
    if args.quick:
        args.minutes = 1.0
    if args.warmup_s is None:
        args.warmup_s = 20.0 if args.quick else 120.0
    if args.sample_s is None:
        args.sample_s = 5.0 if args.quick else 30.0
    if args.minutes <= 0 or args.symbols < 1 or args.warmup_s >= args.minutes * 60:
        print("bench_memory: need --minutes > 0, --symbols >= 1, warm-up < run", file=sys.stderr)
        return 2
    import uvloop

    res = uvloop.run(run(args))
    warm, end = res["warm_rss"], res["end_rss"]
    ratio = end / warm
    print(
        f"memory: {args.symbols} symbols, {args.minutes:g} min, {res['passes']} passes, "
        f"{res['events_published']} events, markets {res['markets']}, detector symbols "
        f"{res['detector_symbols']}, anomalies {res['anomalies']}, db {res['db_mb']} MB"
    )
    print(f"  writer rows {res['writer_rows']}; queues {res['queues']}")
    print(f"  cryptofeed connections released from atexit: {res['released_conns']}")
    wb, eb = res["blocks"]
    print(f"  live Python blocks warm-up {wb}, end {eb} ({100 * (eb / wb - 1):+.1f}%)")
    print(f"  gc-tracked objects that grew most after warm-up (type: count): {res['types']}")
    rw, re_ = res["ring_trades"]
    print(
        f"  trades in MarketState's rings (bounded, {args.symbols} x trades_kept): "
        f"warm-up {rw}, end {re_}"
    )
    print(
        f"  RSS warm-up ({args.warmup_s:g} s) {warm:.1f} MB, end {end:.1f} MB, "
        f"growth {100 * (ratio - 1):+.1f}%, max sample {res['max_rss']:.1f} MB, "
        f"VmHWM {res['hwm']:.1f} MB"
    )
    parts = res["end_parts"]
    print(f"  RSS end: anon {parts['anon']:.1f} MB, file-backed {parts['file']:.1f} MB")
    print(
        json.dumps(
            {
                "bench": "memory",
                "value": round(end, 1),
                "unit": "MB",
                "baseline": round(warm, 1),
                "ratio": round(ratio, 3),
                "target": "growth < 10%, total < 400 MB",
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
