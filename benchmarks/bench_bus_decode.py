"""The brain's per-event cost of taking market data off the bus (DESIGN.md sections 6 and 8).

The brain is one event loop on one core and bounds scale-out (``bench_scale``'s model), so its
path from a JetStream message to the detectors must cost little beyond the detectors
themselves. Measured in the same run on the same events:

- baseline (the floor): the events already built, published on a hub with every detector
  (what a single process pays after its converter);
- value: the same events as the columnar batches a collector sends (``bus.codec``, built from
  the shared recordings through the market layer, one batch per symbol per loop turn, or per
  ``--linger`` seconds of recorded time), each decoded and its events published on a hub with
  every detector, as the bus source does;
- also: decoding alone (us/event) and the encoded size (bytes/event).

Times are this process's CPU time (``time.process_time``), so other jobs on the machine
disturb them less than wall-clock time would; the recordings are replayed ``--passes`` times
(shifted in time and ids) for a larger sample.

Ratio = floor / value (1.0: decoding is free). Target: value >= 100k events/s, the issue's
promise for the whole bus, which one brain's core has to carry (the fetch and ack through
nats-py come on top: ``bench_scale``'s saturated brain).

Usage: python benchmarks/bench_bus_decode.py [--rounds 5] [--passes 3] [--linger 0.005]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import defaultdict
from typing import Any

from bench_feeds import EXCHANGES, LOOPED, default_data
from bench_scale import files_of

from cryptomon.bus.codec import TRANSPORTED, decode, encode
from cryptomon.clock import LiveClock
from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect.engine import DetectorEngine
from cryptomon.events import Event
from cryptomon.hub import Hub


async def recorded_batches(linger: float, passes: int = 1) -> list[list[Event]]:
    """Every transported event of one pass over the shared recordings, grouped as a
    collector groups them: per symbol, per loop turn (``linger`` 0) or per ``linger``
    seconds of receipt time."""
    hub = Hub()
    batches: list[list[Event]] = []
    pending: dict[tuple[str, str], list[Event]] = defaultdict(list)
    opened: dict[tuple[str, str], float] = {}
    scheduled = [False]

    def flush() -> None:
        scheduled[0] = False
        batches.extend(pending.values())
        pending.clear()
        opened.clear()

    def on_event(ev: Event) -> None:
        key = (ev.exchange, ev.symbol)
        if linger and key in opened and ev.ts_recv - opened[key] > linger:
            batches.append(pending.pop(key))
            opened.pop(key)
        opened.setdefault(key, ev.ts_recv)
        pending[key].append(ev)
        if not linger and not scheduled[0]:
            scheduled[0] = True
            asyncio.get_running_loop().call_soon(flush)

    hub.subscribe(TRANSPORTED, on_event, name="bench.batcher")
    data = default_data()
    for _ in range(passes):
        for exchange in EXCHANGES:
            feed = LOOPED.feed_for(exchange, files_of(data, exchange), hub)
            await feed.start()
            await feed.done.wait()
            await feed.stop()
    flush()
    return [batch for batch in batches if batch]


def detectors() -> tuple[Hub, DetectorEngine]:
    hub = Hub()
    engine = DetectorEngine(hub=hub, clock=LiveClock(), config=AnomalyDetectionConfig())
    return hub, engine


FETCH = 256  # bus.fetch_batch: the brain's loop turn (and detector flush) per fetch


def floor(batches: list[list[Event]]) -> float:
    """CPU seconds to publish the built events on a hub with every detector."""
    hub, engine = detectors()
    publish = hub.publish
    t0 = time.process_time()
    for n, batch in enumerate(batches, 1):
        for ev in batch:
            publish(ev)
        if n % FETCH == 0:
            engine.flush()  # the brain's loop turn after each fetch: the micro-batch flush
    engine.flush()
    return time.process_time() - t0


def through_bus(payloads: list[bytes]) -> float:
    """CPU seconds to decode every payload and publish its events (the bus source's work)."""
    hub, engine = detectors()
    publish = hub.publish
    t0 = time.process_time()
    for n, payload in enumerate(payloads, 1):
        for ev in decode(payload).events:
            publish(ev)
        if n % FETCH == 0:
            engine.flush()
    engine.flush()
    return time.process_time() - t0


def decode_only(payloads: list[bytes]) -> float:
    t0 = time.process_time()
    for payload in payloads:
        decode(payload)
    return time.process_time() - t0


async def main(args: argparse.Namespace) -> dict[str, Any]:
    batches = await recorded_batches(args.linger, args.passes)
    events = sum(len(b) for b in batches)
    payloads = [
        encode(b, collector="c", seq=n, exchange=b[0].exchange, symbol=b[0].symbol)
        for n, b in enumerate(batches)
    ]
    assert [decode(p).events for p in payloads] == batches  # the round trip is exact
    # warm the detector kernels (numba compile or cache load) outside the timings
    floor(batches[:50])
    through_bus(payloads[:50])
    rounds = [
        (floor(batches), through_bus(payloads), decode_only(payloads)) for _ in range(args.rounds)
    ]
    base = statistics.median(r[0] for r in rounds) / events
    value = statistics.median(r[1] for r in rounds) / events
    dec = statistics.median(r[2] for r in rounds) / events
    print(
        json.dumps(
            {
                "events": events,
                "batches": len(batches),
                "events_per_batch": round(events / len(batches), 2),
                "bytes_per_event": round(sum(map(len, payloads)) / events, 1),
                "decode_us_per_event": round(dec * 1e6, 3),
                "floor_us_per_event": round(base * 1e6, 3),
                "bus_us_per_event": round(value * 1e6, 3),
                "linger_s": args.linger,
            }
        )
    )
    return {
        "bench": "bus_decode",
        "value": round(1 / value),
        "unit": "events/s (decode + hub + detectors, one core)",
        "baseline": round(1 / base),
        "ratio": round(base / value, 3),
        "target": "value >= 100000",
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--passes", type=int, default=3, help="passes over the recordings")
    parser.add_argument(
        "--linger", type=float, default=0.0, help="group per symbol per this many seconds"
    )
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
