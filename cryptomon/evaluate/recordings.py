"""Labelled trades injected into copies of cryptofeed raw recordings, replayed through the
real replay feed source (:class:`~cryptomon.feeds.replay.ReplayFeed`: the exchange's
cryptofeed parser and the converter) into a hub with a detector engine.

The untouched recording is replayed first: its anomalies are the alert rate (live: triggered
by an event at or after the first receipt of the recording; historical: by a trade the
exchange sent from before it, e.g. Bitfinex's snapshot on subscribe), and its live trades
give each market's median trade, bucket volume and price. Each copy then gets one injection
per eligible market (at least ``MIN_LIVE_TRADES`` live trades before the point, chosen by
the seed), written as new lines in the exchange's own format (:mod:`cryptomon.evaluate.frames`)
at the receipt position they would have had. Only trade-borne events are injected here (whale,
volume burst, price jump as several prints); the book of a recording is not shifted.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import shutil
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptomon.clock import ManualClock
from cryptomon.config import AnomalyDetectionConfig, ExchangeConfig
from cryptomon.errors import ConfigError, Problem
from cryptomon.evaluate.evaluate import SERIES_KINDS, engine_on, grace_s
from cryptomon.evaluate.frames import Injected, TradeFrame, frame_for
from cryptomon.evaluate.labels import MIN_LIVE_TRADES, PLAN, Injection, Label, alert_rates, score
from cryptomon.events import Anomaly, BookTop, Trade
from cryptomon.feeds.replay import ReplayFeed, replay_feed_class
from cryptomon.hub import Hub
from cryptomon.kinds import AnomalyKind

NOT_INJECTED = "book imbalance and spread blow-out (book frames); the book shift of a price jump"
REPEATS = 4  # copies per injection (each with one injection per eligible market)
BURST_TRADES = 10
JUMP_PRINTS = 5
Progress = Callable[[int, int], None]


def group_recordings(paths: list[Path]) -> dict[str, list[Path]]:
    """Files (or folders of files) grouped by exchange (the name before the first dot)."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.is_file() and "." in f.name))
        elif p.is_file():
            files.append(p)
        else:
            raise ConfigError([Problem("RECORDING", str(p), "an existing file or folder")])
    groups: dict[str, list[Path]] = {}
    for f in files:
        if f.name.endswith(".md"):
            continue
        groups.setdefault(f.name.split(".", 1)[0], []).append(f)
    missing = [name for name, fs in groups.items() if not any(f.name == f"{name}.0" for f in fs)]
    if missing or not groups:
        raise ConfigError(
            [Problem("RECORDING", m, f"{m}.0 beside its ws files") for m in missing]
            or [Problem("RECORDING", [str(p) for p in paths], "EXCHANGE.* recording files")]
        )
    return dict(sorted(groups.items()))


@dataclass
class Replayed:
    """What one replay produced."""

    anomalies: list[Anomaly]
    trades: dict[str, list[Trade]] = field(default_factory=dict)
    start: float = float("inf")  # first receipt time
    end: float = float("-inf")
    natives: dict[str, str] = field(default_factory=dict)  # symbol -> exchange symbol


async def replay(name: str, files: list[Path], cfg: AnomalyDetectionConfig) -> Replayed:
    """One recording through the replay feed, a hub and a detector engine."""
    hub = Hub()
    engine, got = engine_on(hub, cfg)
    out = Replayed(got)

    def on_trade(ev: Trade) -> None:
        out.trades.setdefault(ev.symbol, []).append(ev)

    def on_any(ev: Any) -> None:
        out.start = min(out.start, ev.ts_recv)
        out.end = max(out.end, ev.ts_recv)

    hub.subscribe(Trade, on_trade, name="evaluate.trades")
    hub.subscribe((Trade, BookTop), on_any, name="evaluate.times")
    config = ExchangeConfig(
        name=name.lower(), source="replay", files=[str(f) for f in files], depth=20
    )
    clock = ManualClock(0.0)
    feed = ReplayFeed(config, feed_class=replay_feed_class(name), hub=hub, clock=clock)
    await feed.start()
    await feed.done.wait()
    if feed.feed is not None:
        for symbol in out.trades:
            out.natives[symbol] = feed.feed.std_symbol_to_exchange_symbol(symbol)
    await feed.stop()
    await engine.stop()
    stamps = [
        _receipt(line)
        for f in files
        if ".ws." in f.name
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines()
    ]
    finite = [x for x in stamps if x > float("-inf")]
    if finite:  # the recording's span (a REST snapshot book carries a wall-clock receipt)
        out.start, out.end = min(finite), max(finite)
    if feed.error is not None:
        raise ConfigError([Problem("RECORDING", name, f"a replayable recording ({feed.error!r})")])
    return out


def _live(rep: Replayed, symbol: str) -> list[Trade]:
    return [t for t in rep.trades.get(symbol, []) if t.ts >= rep.start]


def _trades_at(
    inj: Injection, live: list[Trade], t0: float, cfg: AnomalyDetectionConfig
) -> list[tuple[float, float, float, bool]]:
    """(ts, price, amount, buy) of the injected trades at ``t0``."""
    last = live[-1].price
    k = inj.magnitude
    if inj.kind == AnomalyKind.WHALE:
        median = statistics.median(t.price * t.amount for t in live)
        return [(t0, last, k * median / last, True)]
    if inj.kind == AnomalyKind.VOLUME:
        span = min(cfg.lookback_window_minutes * 60.0, t0 - live[0].ts)
        vol = sum(t.amount for t in live if t.ts >= t0 - span)
        each = k * vol / max(1.0, span / cfg.bucket_seconds) / BURST_TRADES
        step = min(0.02, cfg.bucket_seconds / (4 * BURST_TRADES))
        return [(t0 + i * step, last, each, True) for i in range(BURST_TRADES)]
    size = statistics.median(t.amount for t in live)
    up = last * (1.0 + k / 100.0)
    return [(t0 + 0.4 * i, up, size, True) for i in range(JUMP_PRINTS)]


@dataclass
class CopyPlan:
    """The injected lines of one copy: ws file -> [(receipt, line)]; the labels."""

    lines: dict[Path, list[tuple[float, str]]] = field(default_factory=dict)
    labels: list[Label] = field(default_factory=list)


def _plan_copy(
    name: str,
    files: list[Path],
    rep: Replayed,
    inj: Injection,
    *,
    copy: int,
    cfg: AnomalyDetectionConfig,
    rng: random.Random,
) -> CopyPlan:
    """One injection per eligible market of the recording."""
    frame = frame_for(name)
    ws = [f for f in files if ".ws." in f.name]
    texts = {f: f.read_text(encoding="utf-8", errors="replace").splitlines() for f in ws}
    every = [line for lines in texts.values() for line in lines]
    out = CopyPlan()
    for n, (symbol, native) in enumerate(sorted(rep.natives.items())):
        live = _live(rep, symbol)
        chan = frame.channel(every, native) if len(live) > MIN_LIVE_TRADES else None
        if chan is None:
            continue
        mark = frame.marker(native, chan)
        target = next((f for f in ws if any(mark in x for x in texts[f])), None)
        if target is None:
            continue
        i = rng.randrange(MIN_LIVE_TRADES, len(live))
        before = live[:i]
        t0 = before[-1].ts + min(0.5 * (live[i].ts - before[-1].ts), 0.05)
        lat = statistics.median(t.ts_recv - t.ts for t in before)
        for j, (ts, px, amt, buy) in enumerate(_trades_at(inj, before, t0, cfg)):
            trade = Injected(native, chan, px, amt, buy, ts, 9_000_000_000 + 1000 * n + j)
            out.lines.setdefault(target, []).append((ts + lat, frame.render(trade)))
        out.labels.append(Label(inj, copy, name.lower(), symbol, t0))
    return out


def write_copy(files: list[Path], plan: CopyPlan, folder: Path, frame: TradeFrame) -> list[Path]:
    """The recording copied into ``folder`` with the planned lines inserted in receipt order."""
    out = []
    for f in files:
        dest = folder / f.name
        extra = sorted(plan.lines.get(f, []))
        if not extra:
            shutil.copyfile(f, dest)
        else:
            lines = f.read_text(encoding="utf-8").splitlines()
            stamps = [_receipt(x) for x in lines]
            for receipt, text in reversed(extra):
                at = bisect.bisect_right(stamps, receipt)
                lines.insert(at, f"{receipt!r}: {text}")
                stamps.insert(at, receipt)
            lines = frame.resequence(lines)
            dest.write_text("\n".join(lines) + "\n", encoding="utf-8")
        out.append(dest)
    return out


def _receipt(line: str) -> float:
    """The receipt time of a recorded line (connection lines count as -inf)."""
    head = line.split(": ", 1)[0]
    try:
        return float(head)
    except ValueError:
        return float("-inf")


async def evaluate_recording(
    name: str,
    files: list[Path],
    cfg: AnomalyDetectionConfig,
    *,
    seed: int,
    plan: list[Injection],
    repeats: int,
) -> tuple[Replayed, list[Label], dict[int, list[Anomaly]]]:
    """The untouched replay, the labels and the anomalies of every copy of one recording."""
    rep = await replay(name, files, cfg)
    labels: list[Label] = []
    found: dict[int, list[Anomaly]] = {}
    copy = 0
    with tempfile.TemporaryDirectory(prefix=f"evaluate-{name}-") as tmp:
        for inj in plan:
            for r in range(repeats):
                copy += 1
                rng = random.Random(f"{seed}:{name}:{inj.name}:{r}")  # noqa: S311 - sampling
                planned = _plan_copy(name, files, rep, inj, copy=copy, cfg=cfg, rng=rng)
                if not planned.labels:
                    continue
                folder = Path(tmp) / str(copy)
                folder.mkdir()
                copied = await asyncio.to_thread(
                    write_copy, files, planned, folder, frame_for(name)
                )
                found[copy] = (await replay(name, copied, cfg)).anomalies
                labels.extend(planned.labels)
    return rep, labels, found


def evaluate_recordings(
    groups: dict[str, list[Path]],
    cfg: AnomalyDetectionConfig,
    *,
    seed: int,
    plan: tuple[Injection, ...] = PLAN,
    repeats: int = REPEATS,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every recording: untouched alert rates per exchange and overall; recall per injection."""
    trade_plan = [inj for inj in plan if inj.kind in SERIES_KINDS]
    labels: list[Label] = []
    found: dict[int, list[Anomaly]] = {}
    exchanges: dict[str, Any] = {}
    live: list[Anomaly] = []
    hist: list[Anomaly] = []
    hours = 0.0
    for n, (name, files) in enumerate(groups.items(), start=1):
        rep, lbs, fnd = asyncio.run(
            evaluate_recording(name, files, cfg, seed=seed, plan=trade_plan, repeats=repeats)
        )
        base = 1000 * n  # copies of different recordings never share a key
        labels.extend(
            Label(lb.injection, base + lb.copy, lb.exchange, lb.symbol, lb.start) for lb in lbs
        )
        found.update({base + k: v for k, v in fnd.items()})
        mine_live = [a for a in rep.anomalies if a.ts >= rep.start]
        mine_hist = [a for a in rep.anomalies if a.ts < rep.start]
        span = max(0.0, rep.end - rep.start) / 3600.0
        symbols = {t.symbol for ts in rep.trades.values() for t in ts} | set(rep.natives)
        h = span * max(1, len(symbols))
        exchanges[name] = {
            **alert_rates(mine_live, h, mine_hist),
            "eligible_markets": sorted({lb.symbol for lb in lbs}),
        }
        live.extend(mine_live)
        hist.extend(mine_hist)
        hours += h
        if progress is not None:
            progress(n, len(groups))
    return {
        "exchanges": exchanges,
        "untouched": alert_rates(live, hours, hist),
        "injections": score(labels, found, grace_s(cfg)),
        "not_injected": NOT_INJECTED,
    }
