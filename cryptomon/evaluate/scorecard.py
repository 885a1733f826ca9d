"""Detection scorecard: labelled simulator scenarios through the real feed and detector code.

The loopback :class:`~cryptomon.sim.exchange.SimExchange` runs on a
:class:`~cryptomon.clock.ManualClock` at full speed; the real cryptofeed-based simulator feed
(``exchanges: [{name: simulator}]``) connects to it over loopback websockets and publishes
Trade/BookTop events into a hub where a :class:`DetectorEngine` runs. Phases (sim time):

1. warm-up, long enough for every statistic to pass ``min_samples``;
2. a calm baseline (no injections): every anomaly here is a false alert;
3. rounds of labelled injections (``cryptomon.sim.scenarios``) on every symbol.

Matching: a label of kind K on (exchange, symbol) is *detected* by the first anomaly of kind
K on that market with ``label.start <= ts <= label.end + grace_s``; delay = its ``ts`` (the
exchange time of the triggering event) minus ``label.start``. An anomaly of any kind inside
some label's window on its market is *explained* (an injected event legitimately moves other
statistics, e.g. a whale order is also a volume spike); every other anomaly is a false alert.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptomon.clock import ManualClock
from cryptomon.config import AnomalyDetectionConfig, ExchangeConfig
from cryptomon.detect.base import buckets
from cryptomon.detect.engine import DetectorEngine
from cryptomon.events import Anomaly, BookTop, Trade
from cryptomon.feeds.manager import build_sources
from cryptomon.hub import Hub
from cryptomon.kinds import AnomalyKind
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.scenarios import Injection, Label, Scenario

SYMBOLS = ("BTC-USDT", "ETH-USDT", "SOL-USDT")
# (kind, magnitude, duration s); same kinds >= cooldown apart when spaced by spacing_s
PLAN: tuple[tuple[AnomalyKind, float, float], ...] = (
    (AnomalyKind.PRICE_CHANGE, 8.0, 5.0),
    (AnomalyKind.VOLUME, 10.0, 10.0),
    (AnomalyKind.WHALE, 150.0, 2.0),
    (AnomalyKind.PRICE_CHANGE, -8.0, 5.0),
    (AnomalyKind.BOOK_IMBALANCE, 8.0, 10.0),
    (AnomalyKind.SPREAD, 60.0, 10.0),
)
LABEL_KINDS = (
    AnomalyKind.VOLUME,
    AnomalyKind.PRICE_CHANGE,
    AnomalyKind.WHALE,
    AnomalyKind.BOOK_IMBALANCE,
    AnomalyKind.SPREAD,
)
FEED_UP_STEPS = 4  # model steps between the snapshots and the first data (books need a diff)
TARGET_RECALL = 0.95
TARGET_FALSE_PER_SYMBOL_HOUR = 1.0
START = 1_700_000_000.0


@dataclass
class KindScore:
    labels: int = 0
    detected: int = 0
    false_alerts: int = 0
    delays: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "detected": self.detected,
            "missed": self.labels - self.detected,
            "recall": round(self.detected / self.labels, 4) if self.labels else None,
            "false_alerts": self.false_alerts,
            "median_delay_s": round(statistics.median(self.delays), 3) if self.delays else None,
            "max_delay_s": round(max(self.delays), 3) if self.delays else None,
        }


class _Progress:
    """Latest exchange time seen per symbol, to wait until the feed caught up with the sim."""

    def __init__(self, hub: Hub, clock: ManualClock) -> None:
        self.clock = clock
        self.last: dict[str, float] = {}
        self.changed = asyncio.Event()
        self.times: dict[str, list[float]] = {"books": [], "trades": []}
        hub.subscribe((Trade, BookTop), self._on, name="scorecard.progress")

    def counts(self, end: float) -> dict[str, int]:
        """Events of each type with an exchange time up to ``end``."""
        return {name: sum(1 for t in times if t <= end) for name, times in self.times.items()}

    def _on(self, ev: Trade | BookTop) -> None:
        self.times["trades" if type(ev) is Trade else "books"].append(ev.ts)
        # a book from a REST snapshot carries the (wall clock) receipt time: not sim progress
        if self.last.get(ev.symbol, 0.0) < ev.ts <= self.clock.time():
            self.last[ev.symbol] = ev.ts
            self.changed.set()

    async def reached(self, symbols: tuple[str, ...], t: float, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while any(self.last.get(s, 0.0) < t for s in symbols):
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                behind = {s: self.last.get(s) for s in symbols}
                raise TimeoutError(f"the simulator feed fell behind: at {behind}, want {t}")
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                continue


@dataclass
class _Rig:
    """The simulator, its real feed and a detector engine on one hub and a manual clock."""

    config: AnomalyDetectionConfig
    symbols: tuple[str, ...]
    clock: ManualClock
    sim: SimExchange
    engine: DetectorEngine
    progress: _Progress
    anomalies: list[Anomaly]
    chunk_s: float
    feed: Any = None
    on_step: Callable[[float], None] | None = None  # told the sim time after each chunk

    @classmethod
    async def start(
        cls,
        config: AnomalyDetectionConfig,
        symbols: tuple[str, ...],
        *,
        seed: int,
        interval_s: float,
        chunk_s: float,
    ) -> _Rig:
        clock = ManualClock(START)
        sim = SimExchange(MarketModel(symbols, seed=seed), clock=clock, interval=interval_s)
        await sim.start(run=False)
        hub = Hub()
        engine = DetectorEngine(hub=hub, clock=clock, config=config)
        await engine.start()
        progress = _Progress(hub, clock)
        anomalies: list[Anomaly] = []
        hub.subscribe(Anomaly, anomalies.append, name="scorecard.anomalies")
        exchange = ExchangeConfig(
            name="simulator",
            url=sim.rest_url,
            symbols=list(symbols),
            subscriptions=["trades", "orderbook"],
            stale_after_s=3600.0,
        )
        (feed,) = build_sources([exchange], hub=hub, clock=clock)
        rig = cls(config, symbols, clock, sim, engine, progress, anomalies, chunk_s)
        await feed.start()
        rig.feed = feed
        return rig

    async def stop(self) -> None:
        await self.feed.stop()
        await self.engine.stop()
        await self.sim.stop()

    async def advance(self, seconds: float) -> None:
        """Run the simulator ``seconds`` of sim time, waiting for the feed to catch up."""
        clock, sim = self.clock, self.sim
        end = clock.time() + seconds
        while clock.time() + sim.interval <= end + 1e-9:
            step = min(self.chunk_s, end - clock.time())
            await sim.advance(step)
            await self.progress.reached(self.symbols, clock.time() - 2 * sim.interval)
            self.engine.flush()
            if self.on_step is not None:
                self.on_step(clock.time())

    async def wait_for_feed(self) -> None:
        """Bring the feed up with the sim standing still whenever the feed waits on wall time,
        so the number of model steps, and with it the whole market, depends on the seed only:
        wait until the feed subscribed every symbol; one step (its first diffs make the feed
        ask for the REST snapshots); wait until every snapshot was served; a fixed number of
        steps; wait until every symbol delivered data."""
        sim = self.sim
        wanted = {s.replace("-", "") for s in self.symbols}
        deadline = time.monotonic() + 30.0

        async def until(done: Any, what: str) -> None:
            while not done():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the simulator feed {what}")
                await asyncio.sleep(0.005)

        await until(
            lambda: any(wanted <= {sym for sym, _ in c.streams} for c in sim.clients),
            "did not subscribe",
        )
        await sim.advance(sim.interval)
        await until(lambda: sim.snapshots >= len(self.symbols), "did not fetch its snapshots")
        await sim.advance(FEED_UP_STEPS * sim.interval)
        await until(
            lambda: len(self.progress.last) >= len(self.symbols), "did not deliver any data"
        )

    def default_warmup_s(self) -> float:
        """Long enough for every statistic of every symbol to pass ``min_samples``."""
        cfgs = [self.config.for_symbol("simulator", s) for s in self.symbols]
        return max(
            (c.min_samples + 2) * c.bucket_seconds
            + max(c.spread_halflife_s, c.book_imbalance_min_s)
            for c in cfgs
        )


def _injections(
    symbols: tuple[str, ...], rounds: int, spacing_s: float, stagger_s: float
) -> list[Injection]:
    """``rounds`` rounds of :data:`PLAN`, ``spacing_s`` apart, staggered per symbol."""
    return [
        Injection(kind, sym, r * len(PLAN) * spacing_s + i * spacing_s + j * stagger_s, dur, mag)
        for r in range(rounds)
        for i, (kind, mag, dur) in enumerate(PLAN)
        for j, sym in enumerate(symbols)
    ]


async def run_scorecard(
    config: AnomalyDetectionConfig,
    *,
    seed: int = 42,
    symbols: tuple[str, ...] = SYMBOLS,
    calm_s: float = 3600.0,
    rounds: int = 4,
    spacing_s: float = 150.0,
    stagger_s: float = 20.0,
    grace_s: float = 60.0,
    warmup_s: float | None = None,
    chunk_s: float = 5.0,
    interval_s: float = 0.25,
    progress: Callable[[float, float], None] | None = None,
) -> dict[str, Any]:
    """Run the scorecard; returns the report (see :func:`format_report`). The report depends
    on the arguments only (same seed, same JSON): phases are split by the exchange time of
    the events, and the end is cut where the feed had certainly delivered everything (a
    chunk's last steps may still be in flight when the rig stops). Wall time is not in it.
    ``progress`` is called with (sim seconds done, sim seconds in all) as the run advances."""
    rig = await _Rig.start(config, symbols, seed=seed, interval_s=interval_s, chunk_s=chunk_s)
    try:
        await rig.wait_for_feed()
        warm = rig.default_warmup_s() if warmup_s is None else warmup_s
        scenario = Scenario("scorecard", _injections(symbols, rounds, spacing_s, stagger_s))
        total = warm + calm_s + scenario.duration + grace_s + spacing_s
        begin = rig.clock.time()
        if progress is not None:
            rig.on_step = lambda now: progress(now - begin, total)
        await rig.advance(warm)
        calm_start = rig.clock.time()
        await rig.advance(calm_s)
        calm_end = rig.clock.time()
        scenario.attach(rig.sim)
        await rig.advance(scenario.duration + grace_s + spacing_s)
        end = rig.clock.time() - 3 * interval_s  # see _Rig.advance: delivered up to here
    finally:
        await rig.stop()
    calm = [a for a in rig.anomalies if calm_start <= a.ts < calm_end]
    scored = [a for a in rig.anomalies if calm_end <= a.ts <= end]
    calm_hours = len(symbols) * (calm_end - calm_start) / 3600.0
    report: dict[str, Any] = {"seed": seed, "symbols": list(symbols)}
    report.update(_score(scenario.labels, scored, calm, calm_hours, grace_s))
    report.update(
        {
            "sim_seconds": round(end - START, 1),
            "events": rig.progress.counts(end),
            "lookback_buckets": buckets(config),
        }
    )
    return report


def _score(
    all_labels: Sequence[Label],
    scored: list[Anomaly],
    calm: list[Anomaly],
    calm_hours: float,
    grace_s: float,
) -> dict[str, Any]:
    """Recall and delay per labelled kind; false alerts in the scenario phase and the calm."""
    per_kind: dict[str, KindScore] = {kind: KindScore() for kind in LABEL_KINDS}
    labels = [lb for lb in all_labels if lb.kind in per_kind]
    for lb in labels:
        score = per_kind[lb.kind]
        score.labels += 1
        hits = [
            a.ts
            for a in scored
            if a.kind == lb.kind and a.symbol == lb.symbol and lb.start <= a.ts <= lb.end + grace_s
        ]
        if hits:
            score.detected += 1
            score.delays.append(min(hits) - lb.start)
    false_by_kind: dict[str, int] = {}
    explained = 0
    for a in scored:
        if any(a.symbol == lb.symbol and lb.start <= a.ts <= lb.end + grace_s for lb in labels):
            explained += 1
            continue
        false_by_kind[str(a.kind)] = false_by_kind.get(str(a.kind), 0) + 1
        if a.kind in per_kind:
            per_kind[a.kind].false_alerts += 1
    calm_by_kind: dict[str, int] = {}
    for a in calm:
        calm_by_kind[str(a.kind)] = calm_by_kind.get(str(a.kind), 0) + 1
    kinds = {k: s.as_dict() for k, s in per_kind.items()}
    calm_rate = len(calm) / calm_hours if calm_hours else 0.0
    return {
        "kinds": kinds,
        "calm": {
            "symbol_hours": round(calm_hours, 3),
            "false_alerts": len(calm),
            "per_symbol_hour": round(calm_rate, 3),
            "by_kind": dict(sorted(calm_by_kind.items())),
        },
        "scenario_phase": {
            "anomalies": len(scored),
            "explained_by_labels": explained,
            "false_alerts_by_kind": dict(sorted(false_by_kind.items())),
        },
        "targets": {
            "recall_per_kind": TARGET_RECALL,
            "false_per_symbol_hour": TARGET_FALSE_PER_SYMBOL_HOUR,
            "met": all((v["recall"] or 0.0) >= TARGET_RECALL for v in kinds.values())
            and calm_rate <= TARGET_FALSE_PER_SYMBOL_HOUR,
        },
    }


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of :func:`run_scorecard`'s report."""
    lines = [
        f"scorecard seed={report['seed']} symbols={','.join(report['symbols'])} "
        f"sim={report['sim_seconds']:.0f}s",
        f"{'kind':<16}{'labels':>7}{'detected':>9}{'missed':>7}{'recall':>8}"
        f"{'false':>7}{'median_s':>10}{'max_s':>8}",
    ]
    for kind, v in report["kinds"].items():
        med = "-" if v["median_delay_s"] is None else f"{v['median_delay_s']:.2f}"
        mx = "-" if v["max_delay_s"] is None else f"{v['max_delay_s']:.2f}"
        rec = "-" if v["recall"] is None else f"{v['recall']:.2f}"
        lines.append(
            f"{kind:<16}{v['labels']:>7}{v['detected']:>9}{v['missed']:>7}{rec:>8}"
            f"{v['false_alerts']:>7}{med:>10}{mx:>8}"
        )
    calm = report["calm"]
    lines.append(
        f"calm baseline: {calm['false_alerts']} false alerts in {calm['symbol_hours']:.2f} "
        f"symbol-hours = {calm['per_symbol_hour']:.3f} per symbol-hour {calm['by_kind']}"
    )
    phase = report["scenario_phase"]
    lines.append(
        f"scenario phase: {phase['anomalies']} anomalies, {phase['explained_by_labels']} inside "
        f"label windows, unexplained {phase['false_alerts_by_kind']}"
    )
    lines.append(f"targets met: {report['targets']['met']}")
    return "\n".join(lines)
