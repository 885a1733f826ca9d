"""Labelled events injected into copies of cryptofeed raw recordings, replayed through the
real replay feed source (:class:`~cryptomon.feeds.replay.ReplayFeed`: the exchange's
cryptofeed parser, the converter and the market layer: units from the recorded instrument
specs, the quality guard) into a hub with a detector engine.

The untouched recording is replayed first: its anomalies are the alert rate (live: triggered
by an event at or after the first receipt of the recording; historical: by a trade the
exchange sent from before it, e.g. Bitfinex's snapshot on subscribe; the quality layer flags
those, so they only warm the windows), and its live trades and book tops give each market's
median trade, bucket volume, price and book. Each copy then gets one injection per eligible
market (past the warm-up, at least ``MIN_LIVE_TRADES`` live trades or book tops before the
point, not masked by the recording's own alerts; chosen by the seed), written as new lines
in the exchange's own format (:mod:`cryptomon.evaluate.frames`) at the receipt position they
would have had: trades (whale, volume burst, price jump or level shift as several prints,
volatility burst) and book updates
(:mod:`cryptomon.evaluate.books`; on venues that send whole books, held in every recorded
book until the next injected one). A price jump persists: the market's book is moved at the
point and every later recorded trade, book level and book ticker of the market is rewritten
by the factor (:meth:`~cryptomon.evaluate.frames.TradeFrame.shift`), so the quality guard
accepts it as a real move (a level shift labelled ``ma_deviation`` is the same move).

The replay plumbing is :mod:`cryptomon.evaluate.replays`, the planning and writing of the
copies :mod:`cryptomon.evaluate.injection`; this module runs the evaluation over them.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptomon.config import AnomalyDetectionConfig
from cryptomon.errors import ConfigError, Problem
from cryptomon.evaluate.books import (
    BOOK_KINDS,
)
from cryptomon.evaluate.evaluate import SERIES_KINDS, grace_s
from cryptomon.evaluate.frames import frame_for
from cryptomon.evaluate.injection import (
    CopyPlan,
    place_book_updates,
    plan_copy,
    plan_move,
    write_copy,
)
from cryptomon.evaluate.labels import (
    PLAN,
    Injection,
    Label,
    alert_key,
    alert_rates,
    score,
)
from cryptomon.evaluate.replays import (
    Replayed,
    book_before,
    live_tops,
    market_inputs,
    read_lines,
    replay,
    whale_notionals_off,
)
from cryptomon.events import Anomaly

__all__ = [
    "NOT_INJECTED",
    "REPEATS",
    "CopyPlan",
    "Replayed",
    "book_before",
    "evaluate_recording",
    "evaluate_recordings",
    "group_recordings",
    "live_tops",
    "market_inputs",
    "place_book_updates",
    "plan_copy",
    "plan_move",
    "read_lines",
    "replay",
    "whale_notionals_off",
    "write_copy",
]

NOT_INJECTED = (
    "trade-borne events on Gate.io futures and Bitfinex (no live trades in the recordings: "
    "nothing to scale a whale or a burst from); divergence and arbitrage (they compare one "
    "asset on two venues at the same time: no two recordings overlap in time, each is another "
    "day, and no recording holds the asset twice); funding and liquidations (no recording "
    "subscribes to either channel)"
)
REPEATS = 10  # copies per injection (each with one injection per eligible market)
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


async def evaluate_recording(
    name: str,
    files: list[Path],
    cfg: AnomalyDetectionConfig,
    *,
    seed: int,
    plan: list[Injection],
    repeats: int,
) -> tuple[Replayed, list[Label], dict[int, list[Anomaly]], dict[str, int]]:
    """The untouched replay, the labels, the anomalies of every copy of one recording and
    the masked points per injection."""
    rep = await replay(name, files, cfg, every_book=True)
    labels: list[Label] = []
    found: dict[int, list[Anomaly]] = {}
    masked_points: dict[str, int] = {}
    copy = 0
    with tempfile.TemporaryDirectory(prefix=f"evaluate-{name}-") as tmp:
        for inj in plan:
            for r in range(repeats):
                copy += 1
                rng = random.Random(f"{seed}:{name}:{inj.name}:{r}")  # noqa: S311 - sampling
                planned = plan_copy(name, files, rep, inj, copy=copy, cfg=cfg, rng=rng)
                masked_points[inj.name] = masked_points.get(inj.name, 0) + planned.masked
                if not planned.labels:
                    continue
                folder = Path(tmp) / str(copy)
                folder.mkdir()
                copied = await asyncio.to_thread(
                    write_copy, files, planned, folder, frame_for(name)
                )
                found[copy] = (await replay(name, copied, cfg)).anomalies
                labels.extend(planned.labels)
    return rep, labels, found, masked_points


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
    trade_plan = [inj for inj in plan if inj.kind in SERIES_KINDS | BOOK_KINDS]
    labels: list[Label] = []
    found: dict[int, list[Anomaly]] = {}
    exchanges: dict[str, Any] = {}
    live: list[Anomaly] = []
    hist: list[Anomaly] = []
    hours = 0.0
    masked_points: dict[str, int] = {}
    for n, (name, files) in enumerate(groups.items(), start=1):
        rep, lbs, fnd, msk = asyncio.run(
            evaluate_recording(name, files, cfg, seed=seed, plan=trade_plan, repeats=repeats)
        )
        base = 1000 * n  # copies of different recordings never share a key
        labels.extend(
            Label(lb.injection, base + lb.copy, lb.exchange, lb.symbol, lb.start) for lb in lbs
        )
        found.update({base + k: v for k, v in fnd.items()})
        for key, count in msk.items():
            masked_points[key] = masked_points.get(key, 0) + count
        mine_live = [a for a in rep.anomalies if a.ts >= rep.start]
        mine_hist = [a for a in rep.anomalies if a.ts < rep.start]
        span = max(0.0, rep.end - rep.start) / 3600.0
        symbols = {t.symbol for ts in rep.trades.values() for t in ts} | set(rep.natives)
        h = span * max(1, len(symbols))
        exchanges[name] = {
            **alert_rates(mine_live, h, mine_hist),
            "eligible_markets": sorted({lb.symbol for lb in lbs}),
            "whale_notionals_off": whale_notionals_off(rep),
        }
        live.extend(mine_live)
        hist.extend(mine_hist)
        hours += h
        if progress is not None:
            progress(n, len(groups))
    return {
        "exchanges": exchanges,
        "untouched": alert_rates(live, hours, hist),
        "injections": score(
            labels,
            found,
            lambda kind: grace_s(cfg, kind),
            untouched=map(alert_key, live + hist),
            masked_points=masked_points,
        ),
        "not_injected": NOT_INJECTED,
    }
