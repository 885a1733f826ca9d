"""Per-event cost of the full detector set vs a pure-Python deque implementation.

``python benchmarks/bench_detect_engine.py [--events 300000] [--repeats 3] [--clock cpu]``

The stream: Trade and BookTop events from replaying every shared recording
(``../shared/data/cryptofeed-sample``) through the real feed code, played back and forth
(times mirrored so they keep increasing) until ``--events``. Both contenders get the same
events: the :class:`~cryptomon.detect.engine.DetectorEngine` (micro-batched numba kernels:
volume, price, whale, book, divergence; anomalies built and published) and ``DequeDetectors``
below, a straightforward pure-Python version of the same statistics with ``collections.deque``
windows (findings only counted; like the engine it keeps the lookback's min/max of bucket
extremes from the last bucket close and compares mids only for symbols on several exchanges).
The value is the direct handler cost per event; the same
through ``hub.publish`` is reported beside it. The last line is JSON (DESIGN.md section 6):
ns/event of the engine through ``hub.publish``, the baseline is the floor measured in the same
run (``hub.publish`` to one no-op inline subscriber), ratio = value / floor, target <= 2x the
floor; the deque figures are kept beside it for reference (the old ">= 10x a deque" target is
retired: it would sit below the cost of the hub's own dispatch). ``--clock cpu`` times the
CPU time of the thread (``time.thread_time``) instead of the wall clock: on a machine
shared with other jobs the wall clock also counts the time the process was preempted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import statistics
import time
from collections import deque
from pathlib import Path
from typing import Any

from cryptomon.clock import LiveClock, ManualClock
from cryptomon.config import AnomalyDetectionConfig, ExchangeConfig
from cryptomon.detect.engine import DetectorEngine
from cryptomon.events import BookTop, Event, Trade
from cryptomon.feeds.replay import ReplayFeed, replay_feed_class
from cryptomon.hub import Hub

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cryptofeed-sample"
EXCHANGES = ("BINANCE", "BINANCE_FUTURES", "BITFINEX", "GATEIO", "KRAKEN", "OKX")


async def _record() -> list[Event]:
    hub = Hub()
    out: list[Event] = []
    hub.subscribe((Trade, BookTop), out.append)
    for name in EXCHANGES:
        files = sorted(str(p) for p in DATA.glob(f"{name}.*"))
        cfg = ExchangeConfig(name=name.lower(), source="replay", files=files, depth=20)
        feed = ReplayFeed(cfg, feed_class=replay_feed_class(name), hub=hub, clock=LiveClock())
        await feed.start()
        await feed.done.wait()
        await feed.stop()
    return out


LIVE_WINDOW_S = 300.0  # an event this far from its exchange's median receipt time is not live


def live_segments(events: list[Event]) -> list[list[Event]]:
    """Per exchange, the live part of its recording, in time order, with times relative to the
    segment's start. Left out: trades the exchange sent as history on subscribe (BITFINEX's
    snapshot reaches back 2.5 days) and tops stamped with the replay's own clock (no exchange
    time in the message): a running feed's steady state contains neither."""
    by_ex: dict[str, list[Event]] = {}
    for e in events:
        by_ex.setdefault(e.exchange, []).append(e)
    out = []
    for evs in by_ex.values():
        mid = statistics.median(e.ts_recv for e in evs)
        live = [e for e in evs if abs(e.ts - mid) < LIVE_WINDOW_S]
        if live:
            start = min(e.ts_recv for e in live) - 2.0  # older exchange times: history
            live = sorted((e for e in live if e.ts >= start), key=_event_ts)
        if live:
            t0 = live[0].ts
            out.append([dataclasses.replace(e, ts=e.ts - t0, ts_recv=e.ts - t0) for e in live])
    return out


def _event_ts(e: Event) -> float:
    return e.ts


def stream(n: int, t0: float = 1.7e9) -> list[Event]:
    """``n`` events as one concurrent market: every exchange's live segment (~30 s each, the
    recordings were taken years apart) starts at ``t0``, merged in time order, then played
    back and forth (ping-pong, times mirrored so they keep increasing) until ``n``: ~87 events/s
    over 36 markets, each market continuing without a jump at the seams.

    Until issue 16's review the stream was the raw recordings sorted by time: six ~30 s
    segments years apart plus the history trades, looped; every loop crossed years, so each
    market saw a fresh bucket and a price "jump" per loop and ~4.4% of events fired an
    anomaly (a live market fires on well under 0.1%)."""
    segs = live_segments(asyncio.run(_record()))
    base = sorted((e for seg in segs for e in seg), key=_event_ts)
    span = max(e.ts for e in base) + 0.1
    out: list[Event] = []
    k = 0
    while len(out) < n:
        seq = base if k % 2 == 0 else base[::-1]
        for e in seq:
            rel = e.ts if k % 2 == 0 else span - e.ts
            ts = t0 + k * span + rel
            out.append(dataclasses.replace(e, ts=ts, ts_recv=ts))
        k += 1
    return out[:n]


class _Roll:
    """Rolling mean/std over a deque with running sums (the straightforward way)."""

    def __init__(self, window: int) -> None:
        self.q: deque[float] = deque(maxlen=window)
        self.s1 = 0.0
        self.s2 = 0.0

    def z(self, x: float, min_n: int) -> float:
        n = len(self.q)
        if n < min_n:
            return math.nan
        mean = self.s1 / n
        var = self.s2 / n - mean * mean
        return (x - mean) / math.sqrt(var) if var > 0 else math.nan

    def push(self, x: float) -> None:
        q = self.q
        if len(q) == q.maxlen:
            old = q[0]
            self.s1 -= old
            self.s2 -= old * old
        q.append(x)
        self.s1 += x
        self.s2 += x * x


class _Sym:
    def __init__(self, cfg: AnomalyDetectionConfig) -> None:
        w = max(2, math.ceil(cfg.lookback_window_minutes * 60 / cfg.bucket_seconds))
        self.vol = _Roll(w)
        self.closes = _Roll(w)
        self.rets = _Roll(w)
        self.highs: deque[float] = deque(maxlen=w)
        self.lows: deque[float] = deque(maxlen=w)
        self.notional = _Roll(cfg.whale_window_trades)
        self.bucket = math.nan
        self.bvol = self.buy = self.sell = 0.0
        self.last = self.hi = self.lo = self.prev = self.whi = self.wlo = math.nan
        self.sp_mean = self.sp_var = self.im_mean = self.im_var = self.im_s = 0.0
        self.book_n = 0
        self.last_book = 0.0
        self.imb_start = math.nan


class DequeDetectors:
    """The same statistics as the engine, one Python call per event, deque windows."""

    def __init__(self, hub: Hub, cfg: AnomalyDetectionConfig) -> None:
        self.cfg = cfg
        self.syms: dict[tuple[str, str], _Sym] = {}
        self.mids: dict[str, dict[str, float]] = {}
        self.findings = 0
        hub.subscribe(Trade, self.on_trade)
        hub.subscribe(BookTop, self.on_book)

    def _sym(self, ev: Event) -> _Sym:
        key = (ev.exchange, ev.symbol)
        s = self.syms.get(key)
        if s is None:
            s = self.syms[key] = _Sym(self.cfg)
        return s

    def on_trade(self, ev: Trade) -> None:
        cfg = self.cfg
        s = self._sym(ev)
        p, a = ev.price, ev.amount
        b = math.floor(ev.ts / cfg.bucket_seconds)
        if math.isnan(s.bucket):
            s.bucket, s.hi, s.lo = b, p, p
        elif b > s.bucket:
            s.vol.push(s.bvol)
            s.closes.push(s.last)
            if s.prev > 0:
                s.rets.push(math.log(s.last / s.prev))
            s.highs.append(s.hi)
            s.lows.append(s.lo)
            s.whi, s.wlo = max(s.highs), min(s.lows)  # window extremes change only here
            s.prev = s.last
            s.bucket, s.bvol, s.buy, s.sell, s.hi, s.lo = b, 0.0, 0.0, 0.0, p, p
        s.bvol += a
        if ev.side == "buy":
            s.buy += a
        else:
            s.sell += a
        s.last, s.hi, s.lo = p, max(s.hi, p), min(s.lo, p)
        if s.vol.z(s.bvol, cfg.min_samples) >= cfg.volume_threshold_multiplier:
            self.findings += 1
        if s.highs:
            lo, hi = min(s.wlo, s.lo), max(s.whi, s.hi)
            up, dn = (p / lo - 1) * 100, (p / hi - 1) * 100
            if max(up, -dn) >= cfg.price_change_percentage:
                self.findings += 1
            if abs(s.rets.z(math.log(p / s.prev), cfg.min_samples)) >= cfg.volatility_z_threshold:
                self.findings += 1
        ln = math.log(p * a) if p * a > 0 else 0.0
        # a z-test of log notional stands in for the whale rule in this reference
        if s.notional.z(ln, cfg.min_samples) >= 5.0:
            self.findings += 1
        s.notional.push(ln)

    def on_book(self, ev: BookTop) -> None:
        cfg = self.cfg
        s = self._sym(ev)
        dt = max(0.0, ev.ts - s.last_book) if s.book_n else 0.0
        s.last_book = ev.ts
        a = 1 - math.exp(-dt * math.log(2) / cfg.spread_halflife_s)
        sp = ev.spread_bps
        if (
            s.book_n >= cfg.min_samples
            and s.sp_var > 0
            and (sp - s.sp_mean) / math.sqrt(s.sp_var) >= cfg.spread_z_threshold
        ):
            self.findings += 1
        d = sp - s.sp_mean if s.book_n else 0.0
        s.sp_mean = s.sp_mean + a * d if s.book_n else sp
        s.sp_var = (1 - a) * (s.sp_var + a * d * d)
        am = 1 - math.exp(-dt * math.log(2) / cfg.book_imbalance_smoothing_s)
        s.im_s = s.im_s + am * (ev.imbalance - s.im_s) if s.book_n else ev.imbalance
        if abs(s.im_s) >= cfg.book_imbalance_threshold:
            if math.isnan(s.imb_start):
                s.imb_start = ev.ts
            elif ev.ts - s.imb_start >= cfg.book_imbalance_min_s:
                self.findings += 1
        else:
            s.imb_start = math.nan
        s.book_n += 1
        mids = self.mids.setdefault(ev.symbol, {})
        mid = (ev.bid + ev.ask) / 2
        mids[ev.exchange] = mid
        if len(mids) > 1:  # like the engine: compare only symbols on several exchanges
            others = [m for ex, m in mids.items() if ex != ev.exchange]
            if abs(mid / (sum(others) / len(others)) - 1) * 1e4 >= cfg.divergence_bps:
                self.findings += 1


CLOCK = time.perf_counter  # --clock cpu: time.thread_time


def run(events: list[Event], make: Any, *, direct: bool = False) -> float:
    """ns per event: through ``hub.publish``, or (``direct``) calling the subscribed handler."""
    hub = Hub()
    obj = make(hub)
    t = CLOCK()
    if direct:
        routes = {cls: hub._route(cls)[1][0] for cls in (Trade, BookTop)}
        for ev in events:
            routes[ev.__class__](ev)
    else:
        publish = hub.publish
        for ev in events:
            publish(ev)
    flush = getattr(obj, "flush", None)
    if flush is not None:
        flush()
    return (CLOCK() - t) / len(events) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    global CLOCK  # noqa: PLW0603  (one switch for every timing of the run)
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
    cfg = AnomalyDetectionConfig()
    events = stream(args.events)
    n_trades = sum(isinstance(e, Trade) for e in events)

    def engine(hub: Hub) -> DetectorEngine:
        return DetectorEngine(hub=hub, clock=ManualClock(), config=cfg)

    def bare(hub: Hub) -> None:
        hub.subscribe((Trade, BookTop), lambda e: None)

    run(events[:20_000], engine)  # compile / load kernels outside the timing
    res: dict[str, list[float]] = {k: [] for k in ("eng", "deq", "eng_hub", "deq_hub", "hub")}
    for _ in range(args.repeats):
        res["eng"].append(run(events, engine, direct=True))
        res["deq"].append(run(events, lambda hub: DequeDetectors(hub, cfg), direct=True))
        res["eng_hub"].append(run(events, engine))
        res["deq_hub"].append(run(events, lambda hub: DequeDetectors(hub, cfg)))
        res["hub"].append(run(events, bare))
    med = {k: statistics.median(v) for k, v in res.items()}
    e, d = med["eng"], med["deq"]
    print(f"stream: {len(events):,} events ({n_trades:,} trades, the rest book tops)")
    print(f"DetectorEngine (numba, micro-batched): {e:7.0f} ns/event")
    print(f"pure-Python deque detectors          : {d:7.0f} ns/event  (ratio {d / e:.2f})")
    print(f"through hub.publish: engine {med['eng_hub']:.0f}, deque {med['deq_hub']:.0f}, ")
    print(f"  hub to a no-op subscriber {med['hub']:.0f} ns/event")
    print(
        json.dumps(
            {
                "bench": "detect_engine",
                "value": round(med["eng_hub"], 1),
                "unit": "ns/event",
                "baseline": round(med["hub"], 1),
                "ratio": round(med["eng_hub"] / med["hub"], 2),
                "target": "<= 2.0",
                "clock": args.clock,
                "direct_ns": round(e, 1),
                "deque": {"direct_ns": round(d, 1), "via_hub_ns": round(med["deq_hub"], 1)},
            }
        )
    )


if __name__ == "__main__":
    main()
