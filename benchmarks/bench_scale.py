"""Scale-out throughput (DESIGN.md section 6 "scale", target: >= 1.3x with 2 collectors).

Measured in the same run, on a private ``nats-server -js`` (free port, temporary storage):

- baseline: the single-process pipeline: the shared recordings (every exchange of
  ``bench_feeds.EXCHANGES``, looped for ``--seconds``) -> ReplayFeed (cryptofeed parse) ->
  Converter with the market layer (units, quality guard) -> hub -> every detector, events/s
  on the hub;
- scale N (N = 1, 2): N collector *processes* (this script with ``--worker``) share the
  exchanges (collector i replays exchanges i, i+N, ...) through the same market layer in a
  loop for ``--seconds`` and publish
  columnar batches on JetStream (``bus.batch_linger_s`` = ``--linger``, default 5 ms: one batch
  per symbol per loop turn holds ~1.4 events on these recordings, and a JetStream publish costs
  more than the events in it); the brain (this process) consumes them through its durable
  consumer into a hub with every detector. Brain events/s = events it published on its hub /
  (last batch processed - first batch processed). Lag = brain processing time - collector
  encoding time of each batch (collector receipt -> brain hub; the detectors flush in the same
  loop turn), p50/p99.

Looping rewinds event time at each pass (as in bench_pipeline); detectors see the same data
again, which costs them the same work.

Then a second brain (a new durable consumer) drains the whole stream the collectors left, as
fast as it can: the saturated brain's events/s and CPU per event (its capacity when it is the
bound; the live figure above also includes idle polling while collectors are slower).

The model: from the measured CPU seconds per event of a collector (parse + convert + encode +
publish), of the saturated brain (fetch + decode + hub + detectors + ack) and of nats-server, the
events/s of 1 brain + N collectors on C cores is
``min(1 / brain_cpu, N / collector_cpu, C / (collector_cpu + brain_cpu + nats_cpu))``
(the brain is one event loop on one core; the rest shares the cores), for C = 8 and 16.

Usage: python benchmarks/bench_scale.py [--seconds 4] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench_feeds import EXCHANGES, LOOPED, default_data

from cryptomon.bus.codec import Batch
from cryptomon.bus.collector import CollectorPublisher
from cryptomon.bus.source import BusFeedSource
from cryptomon.clock import LiveClock
from cryptomon.config import AnomalyDetectionConfig, BusConfig
from cryptomon.detect.engine import DetectorEngine
from cryptomon.events import MARKET_DATA, FlaggedTrade
from cryptomon.hub import Hub


def files_of(data: Path, exchange: str) -> list[str]:
    return sorted(str(p) for p in data.iterdir() if p.name.split(".")[0] == exchange)


async def replay_loop(hub: Hub, exchanges: list[str], seconds: float) -> int:
    """Replay ``exchanges`` again and again for ``seconds`` through the market layer a daemon
    runs (instrument units and the quality guard; each loop shifted in time and trade ids so
    it is new data, as in bench_feeds); the callbacks handled."""
    data, callbacks = default_data(), 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for exchange in exchanges:
            feed = LOOPED.feed_for(exchange, files_of(data, exchange), hub)
            await feed.start()
            await feed.done.wait()
            await feed.stop()
            callbacks += sum(feed.counts().values())
    return callbacks


def counter(hub: Hub) -> list[int]:
    seen = [0]

    def count(_: Any) -> None:
        seen[0] += 1

    hub.subscribe([*MARKET_DATA, FlaggedTrade], count, name="bench-count")
    return seen


async def baseline(seconds: float) -> dict[str, float]:
    hub, clock = Hub(), LiveClock()
    engine = DetectorEngine(hub=hub, clock=clock, config=AnomalyDetectionConfig())
    await engine.start()
    seen = counter(hub)
    cpu0, t0 = time.process_time(), time.perf_counter()
    await replay_loop(hub, list(EXCHANGES), seconds)
    engine.flush()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await engine.stop()
    return {"events": seen[0], "events_per_s": seen[0] / wall, "cpu_per_event": cpu / seen[0]}


async def worker(args: argparse.Namespace) -> None:
    """A collector process: replay its exchanges for ``seconds`` onto the bus, then report."""
    bus = BusConfig.model_validate(json.loads(args.bus))
    hub, clock = Hub(), LiveClock()
    publisher = CollectorPublisher(config=bus, hub=hub, clock=clock, health=dict)
    await publisher.start()
    cpu0 = time.process_time()
    await replay_loop(hub, args.exchanges.split(","), args.seconds)
    publisher.flush()
    while publisher.queue:  # noqa: ASYNC110 - polls the publisher's queue length
        await asyncio.sleep(0.01)
    cpu = time.process_time() - cpu0
    stats = publisher.stats()
    await publisher.stop()
    print(json.dumps({"events": stats["published_events"], "cpu": cpu}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def scaled(n: int, seconds: float, url: str, nats_pid: int, linger: float) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    bus = BusConfig(
        nats_url=url,
        subject_prefix=f"b{tag}",
        stream=f"B{tag}",
        durable=f"d{tag}",
        batch_linger_s=linger,
    )
    hub, clock = Hub(), LiveClock()
    engine = DetectorEngine(hub=hub, clock=clock, config=AnomalyDetectionConfig())
    await engine.start()
    source = BusFeedSource(config=bus, hub=hub, clock=clock)
    lags: list[float] = []
    marks: list[float] = []

    def probe(batch: Batch) -> None:
        now = time.time()
        lags.append(now - batch.sent)
        marks.append(now)

    source.on_batch = probe
    await source.start()
    nats_cpu0, cpu0 = cpu_of(nats_pid), time.process_time()
    procs = []
    for i in range(n):
        mine = ",".join(EXCHANGES[i::n])
        cfg = bus.model_copy(update={"collector_id": f"c{i}"}).model_dump_json()
        cmd = [sys.executable, __file__, "--worker", "--bus", cfg, "--exchanges", mine]
        procs.append(
            subprocess.Popen(  # noqa: ASYNC220 - this script, our own arguments
                [*cmd, "--seconds", str(seconds)], stdout=subprocess.PIPE, text=True
            )
        )
    reports = []
    for proc in procs:
        await asyncio.to_thread(proc.wait)
        out = proc.stdout.read() if proc.stdout else ""
        reports.append(json.loads(out.strip().splitlines()[-1]))
    published = sum(r["events"] for r in reports)
    while source.counters["events"] < published:  # noqa: ASYNC110 - polls a counter
        await asyncio.sleep(0.01)
    engine.flush()
    brain_cpu, nats_cpu = time.process_time() - cpu0, cpu_of(nats_pid) - nats_cpu0
    await source.stop()
    await engine.stop()
    events = source.counters["events"]
    drained = await drain(bus, events)
    lags.sort()
    return {
        **drained,
        "collectors": n,
        "events": events,
        "events_per_s": events / max(1e-9, marks[-1] - marks[0]),
        "lag_p50_ms": 1000 * lags[len(lags) // 2],
        "lag_p99_ms": 1000 * lags[int(len(lags) * 0.99)],
        "collector_cpu_per_event": sum(r["cpu"] for r in reports) / published,
        "brain_cpu_per_event": brain_cpu / events,
        "nats_cpu_per_event": nats_cpu / events,
        "duplicates": source.counters["duplicates"],
    }


async def drain(bus: BusConfig, events: int) -> dict[str, float]:
    """A second brain (a new durable consumer) takes the whole stream the collectors left:
    the brain saturated, never waiting for data, as it is when it bounds the pipeline. Its
    events/s and CPU per event are the brain's capacity (the live run above also pays for
    idle polling while the collectors are the slower side)."""
    hub, clock = Hub(), LiveClock()
    engine = DetectorEngine(hub=hub, clock=clock, config=AnomalyDetectionConfig())
    await engine.start()
    source = BusFeedSource(
        config=bus.model_copy(update={"durable": bus.durable + "drain"}), hub=hub, clock=clock
    )
    cpu0, t0 = time.process_time(), time.perf_counter()
    await source.start()
    while source.counters["events"] < events:  # noqa: ASYNC110 - polls a counter
        await asyncio.sleep(0.005)
    engine.flush()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await source.stop()
    await engine.stop()
    return {"drain_events_per_s": events / wall, "drain_cpu_per_event": cpu / events}


def model(run: dict[str, Any], cores: int) -> dict[str, Any]:
    col, brain, srv = (
        run["collector_cpu_per_event"],
        run["drain_cpu_per_event"],  # the brain's cost when it is the bound (saturated)
        run["nats_cpu_per_event"],
    )
    best = {"events_per_s": 0.0, "collectors": 0}
    for n in range(1, cores):
        rate = min(1 / brain, n / col, cores / (col + brain + srv))
        if rate > best["events_per_s"] * 1.001:
            best = {"events_per_s": round(rate), "collectors": n}
    best["bound_by"] = (
        "brain (one core)" if best["events_per_s"] >= round(1 / brain) - 1 else "cores"
    )
    return best


async def main(args: argparse.Namespace) -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(  # noqa: ASYNC220 - Debian's nats-server
            ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", tmp],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.1).close()
                    break
                except OSError:
                    await asyncio.sleep(0.02)
            rounds = []
            for _ in range(args.rounds):
                base = await baseline(args.seconds)
                url = f"nats://127.0.0.1:{port}"
                one = await scaled(1, args.seconds, url, server.pid, args.linger)
                two = await scaled(2, args.seconds, url, server.pid, args.linger)
                rounds.append((base, one, two))
                print(json.dumps({"baseline": base, "scale_1": one, "scale_2": two}))
        finally:
            server.terminate()
            server.wait()
    base = statistics.median(r[0]["events_per_s"] for r in rounds)
    two_rate = statistics.median(r[2]["events_per_s"] for r in rounds)
    last_two = rounds[-1][2]
    print(json.dumps({"model_8_cores": model(last_two, 8), "model_16_cores": model(last_two, 16)}))
    print(
        json.dumps(
            {
                "bench": "scale",
                "value": round(two_rate),
                "unit": "events/s (brain, 2 collectors)",
                "baseline": round(base),
                "ratio": round(two_rate / base, 3),
                "target": ">= 1.3",
                "scale_1": round(statistics.median(r[1]["events_per_s"] for r in rounds)),
                "brain_saturated_events_per_s": round(
                    statistics.median(r[2]["drain_events_per_s"] for r in rounds)
                ),
                "brain_saturated_cpu_us_per_event": round(
                    1e6 * statistics.median(r[2]["drain_cpu_per_event"] for r in rounds), 2
                ),
                "lag_p50_ms": round(last_two["lag_p50_ms"], 2),
                "lag_p99_ms": round(last_two["lag_p99_ms"], 2),
                "batch_linger_s": args.linger,
            }
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--linger", type=float, default=0.005, help="bus.batch_linger_s of the collectors"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bus", help=argparse.SUPPRESS)
    parser.add_argument("--exchanges", help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    asyncio.run(worker(parsed) if parsed.worker else main(parsed))
