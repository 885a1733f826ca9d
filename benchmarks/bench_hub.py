"""Hub fan-out cost (DESIGN.md section 6, target: inline ratio >= 0.5).

Measures, in the same run and on the same event:
- events/s published to 3 inline subscribers through ``Hub.publish``;
- the baseline: the same 3 callbacks called directly in a loop;
- events/s published to 3 queued subscribers (drained by their tasks), for reference.

Prints a final JSON line: value = inline events/s, baseline = direct events/s.
Usage: python benchmarks/bench_hub.py [--events N] [--repeats R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable

from cryptomon.events import Trade
from cryptomon.hub import Hub


def make_event() -> Trade:
    return Trade(
        exchange="binance",
        symbol="BTC-USDT",
        ts=1.0,
        ts_recv=1.0,
        price=50_000.0,
        amount=0.01,
        side="buy",
        trade_id="1",
    )


class Counter:
    """A CPU-light inline consumer: counts and accumulates volume."""

    def __init__(self) -> None:
        self.n = 0
        self.volume = 0.0

    def __call__(self, ev: Trade) -> None:
        self.n += 1
        self.volume += ev.amount


def bench_direct(n: int) -> float:
    a, b, c = Counter(), Counter(), Counter()
    ev = make_event()
    t0 = time.perf_counter()
    for _ in range(n):
        a(ev)
        b(ev)
        c(ev)
    return n / (time.perf_counter() - t0)


def bench_inline(n: int) -> float:
    hub = Hub()
    subs = [Counter(), Counter(), Counter()]
    for i, s in enumerate(subs):
        hub.subscribe(Trade, s, name=f"s{i}")
    ev = make_event()
    publish = hub.publish
    t0 = time.perf_counter()
    for _ in range(n):
        publish(ev)
    rate = n / (time.perf_counter() - t0)
    assert all(s.n == n for s in subs)
    return rate


async def _queued(n: int) -> float:
    hub = Hub()
    counts = [0, 0, 0]

    def make(i: int) -> Callable[[list[Trade]], Awaitable[None]]:
        async def handler(batch: list[Trade]) -> None:
            counts[i] += len(batch)

        return handler

    for i in range(3):
        hub.subscribe_queued(
            Trade, make(i), name=f"q{i}", policy="drop_oldest", maxsize=n, batch_size=1000
        )
    await hub.start()
    ev = make_event()
    t0 = time.perf_counter()
    for _ in range(n):
        hub.publish(ev)
    await hub.join()
    rate = n / (time.perf_counter() - t0)
    await hub.stop()
    assert counts == [n, n, n]
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    direct, inline, queued = [], [], []
    for _ in range(args.repeats):
        direct.append(bench_direct(args.events))
        inline.append(bench_inline(args.events))
        queued.append(asyncio.run(_queued(args.events)))
    d, i, q = (statistics.median(x) for x in (direct, inline, queued))
    print(f"direct calls of 3 callbacks : {d:>12,.0f} events/s ({1e9 / d:.0f} ns/event)")
    print(f"hub, 3 inline subscribers   : {i:>12,.0f} events/s ({1e9 / i:.0f} ns/event)")
    print(f"hub, 3 queued subscribers   : {q:>12,.0f} events/s ({1e9 / q:.0f} ns/event)")
    print(
        json.dumps(
            {
                "bench": "hub",
                "value": round(i),
                "unit": "events/s",
                "baseline": round(d),
                "ratio": round(i / d, 3),
                "target": ">= 0.5",
                "queued_events_per_s": round(q),
            }
        )
    )


if __name__ == "__main__":
    main()
