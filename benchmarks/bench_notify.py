"""Notifier cost on the pipeline: an alert storm through the hub into the router.

Measures, in the same run and with the same anomalies:
- the baseline: anomalies published to a hub whose only queued (never_drop) subscriber does
  nothing, until its queue is drained;
- the same with the NotificationRouter subscribed instead (two channels, dedup, token bucket,
  digest, templates, NotificationRecord per outcome), until it has routed every anomaly.

Delivery itself is asynchronous and not part of the measured path (the channels point at a
closed loopback port and have at most a handful of messages to send). There is no DESIGN.md
target for this bench: routing runs in the notifier's own task, so what the hot path pays
is the queued subscriber's put (the baseline); this shows how fast a storm is absorbed.

Prints a final JSON line: value = routed anomalies/s, baseline = no-op subscriber events/s.
Usage: python benchmarks/bench_notify.py [--events N] [--repeats R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import time
from typing import Any

from cryptomon.clock import ManualClock
from cryptomon.config import AlertsConfig
from cryptomon.events import Anomaly, Severity
from cryptomon.hub import Hub
from cryptomon.notify.router import TOPICS, NotificationRouter


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_events(n: int) -> list[Anomaly]:
    return [
        Anomaly(
            exchange="binance",
            symbol=f"C{i % 500}-USDT",
            ts=1.0,
            ts_recv=1.0,
            kind=("volume", "price", "whale")[i % 3],
            severity=Severity.HIGH,
            value=5.0,
            threshold=3.0,
            confidence=0.9,
            reasons=("Z-score: 5.00",),
        )
        for i in range(n)
    ]


async def run_baseline(events: list[Anomaly]) -> float:
    hub = Hub()

    async def noop(batch: list[Any]) -> None:
        return None

    hub.subscribe_queued(TOPICS, noop, name="noop", policy="never_drop", batch_size=500)
    await hub.start()
    t0 = time.perf_counter()
    for e in events:
        hub.publish(e)
    await hub.join()
    dt = time.perf_counter() - t0
    await hub.stop(1.0)
    return len(events) / dt


async def run_router(events: list[Anomaly]) -> float:
    hub = Hub()
    port = _closed_port()
    cfg = AlertsConfig.model_validate(
        {
            "channels": [
                {"name": "a", "url": f"json://127.0.0.1:{port}/a"},
                {"name": "b", "url": f"json://127.0.0.1:{port}/b", "min_severity": "high"},
            ],
            "retries": 0,
            "stop_timeout_s": 0.1,
        }
    )
    router = NotificationRouter(hub=hub, clock=ManualClock(), config=cfg)
    await hub.start()
    await router.start()
    t0 = time.perf_counter()
    for e in events:
        hub.publish(e)
    await hub.join()
    dt = time.perf_counter() - t0
    await router.stop()
    await hub.stop(1.0)
    return len(events) / dt


async def main(n: int, repeats: int) -> None:
    events = make_events(n)
    base, ours = [], []
    for _ in range(repeats):
        base.append(await run_baseline(events))
        ours.append(await run_router(events))
    b, v = statistics.median(base), statistics.median(ours)
    print(f"no-op queued subscriber: {b:,.0f} events/s")
    print(f"notification router:     {v:,.0f} anomalies/s ({1e6 / v:.1f} us each)")
    print(
        json.dumps(
            {
                "bench": "notify",
                "value": round(v),
                "unit": "anomalies/s",
                "baseline": round(b),
                "ratio": round(v / b, 3),
                "target": "informational (no DESIGN.md target)",
            }
        )
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    asyncio.run(main(args.events, args.repeats))
