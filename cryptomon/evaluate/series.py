"""A trade series from a file (freqtrade's trades JSON) as the trades of one market, with
labelled events injected into copies of it.

Rows are ``[timestamp_ms, id, type, side, price, amount, cost]`` (``.json`` or ``.json.gz``).
Each copy gets one kind of injection at points spaced ``spacing_s`` apart (so one event's
statistics settle before the next): a whale (one trade of k x the median notional of the
last trades), a volume burst (ten trades within a second adding k x the mean bucket volume
of the lookback), a price jump (five prints over two seconds at +x%, and every later trade
shifted by the same factor: a move that persists), a level shift labelled ``ma_deviation``
(the same move, smaller), a volatility burst (prints alternating x% either side of the price
for two seconds, then one at it: :func:`~cryptomon.evaluate.labels.volatility_burst`).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cryptomon.config import AnomalyDetectionConfig
from cryptomon.evaluate.labels import (
    MIN_LIVE_TRADES,
    MOVE_KINDS,
    Injection,
    Label,
    masked,
    volatility_burst,
    warmup_buckets,
)
from cryptomon.events import Anomaly
from cryptomon.kinds import AnomalyKind
from cryptomon.market.datafiles import DataError, parse_trades, read_rows

BURST_TRADES = 10
JUMP_PRINTS = 5


@dataclass(frozen=True, slots=True)
class Tick:
    """One trade of the series."""

    ts: float
    price: float
    amount: float
    side: str


def load_trades(path: str | Path) -> list[Tick]:
    """The trades of a trades file (freqtrade's JSON, optionally gzipped, or CSV: see
    :mod:`cryptomon.market.datafiles`), oldest first; :class:`DataError` naming the file, the
    row and what was expected when it is not one."""
    trades = parse_trades(read_rows(path), path=str(path))
    if len(trades) < MIN_LIVE_TRADES + 1:
        raise DataError(
            f"{path}: {len(trades)} trades; expected at least {MIN_LIVE_TRADES + 1} "
            "(the detectors' warm-up)"
        )
    return [
        Tick(ts=t, price=p, amount=a, side=s)
        for t, p, a, s in zip(
            trades.ts.tolist(),
            trades.price.tolist(),
            trades.amount.tolist(),
            trades.side,
            strict=True,
        )
    ]


def _median_notional(before: list[Tick], n: int = 1000) -> float:
    return statistics.median(t.price * t.amount for t in before[-n:])


def _bucket_mean(before: list[Tick], t0: float, cfg: AnomalyDetectionConfig) -> float:
    """Mean volume per bucket over the lookback before ``t0`` (empty buckets count)."""
    span = min(cfg.lookback_window_minutes * 60.0, t0 - before[0].ts)
    vol = sum(t.amount for t in before if t.ts >= t0 - span)
    return vol / max(1.0, span / cfg.bucket_seconds)


def _inject(
    inj: Injection, before: list[Tick], t0: float, cfg: AnomalyDetectionConfig
) -> tuple[list[Tick], float]:
    """The injected trades at ``t0`` and the price factor applied to every later trade."""
    last = before[-1]
    k = inj.magnitude
    if inj.kind == AnomalyKind.WHALE:
        amount = k * _median_notional(before) / last.price
        return [Tick(ts=t0, price=last.price, amount=amount, side="buy")], 1.0
    if inj.kind == AnomalyKind.VOLUME:
        each = k * _bucket_mean(before, t0, cfg) / BURST_TRADES
        return [
            Tick(ts=t0 + 0.1 * i, price=last.price, amount=each, side="buy")
            for i in range(BURST_TRADES)
        ], 1.0
    size = statistics.median(t.amount for t in before[-200:])
    if inj.kind == AnomalyKind.VOLATILITY:
        return [
            Tick(ts=ts, price=px, amount=size, side="buy" if buy else "sell")
            for ts, px, buy in volatility_burst(t0, last.price, k)
        ], 1.0
    if inj.kind in MOVE_KINDS:
        factor = 1.0 + k / 100.0
        return [
            Tick(ts=t0 + 0.5 * i, price=last.price * factor, amount=size, side="buy")
            for i in range(JUMP_PRINTS)
        ], factor
    raise ValueError(f"a trade series cannot carry {inj.kind} injections")


def inject_series(
    ticks: list[Tick],
    inj: Injection,
    *,
    cfg: AnomalyDetectionConfig,
    copy: int,
    exchange: str,
    symbol: str,
    spacing_s: float,
    seed: int,
    untouched: Sequence[Anomaly] = (),
    grace_s: float = 0.0,
) -> tuple[list[Tick], list[Label], int]:
    """A copy of the series with ``inj`` at points ``spacing_s`` apart (jittered by the seed),
    starting after the warm-up; the labels; how many points the ``untouched`` run's alerts
    masked (:func:`~cryptomon.evaluate.labels.masked`: skipped, no label)."""
    rng = random.Random(f"{seed}:{copy}:{inj.name}")  # noqa: S311 - sampling, not secrets
    first = ticks[0].ts
    warm = max(
        warmup_buckets(inj.kind, cfg.min_samples) * cfg.bucket_seconds,
        cfg.lookback_window_minutes * 60.0,
    )
    out: list[Tick] = []
    labels: list[Label] = []
    skipped = 0
    factor = 1.0
    t_next = first + warm + rng.uniform(0.0, 0.5) * spacing_s
    for tick in ticks:
        if tick.ts >= t_next:
            live = sum(1 for t in out if t.ts >= first)
            t0 = math.nextafter(out[-1].ts, math.inf) if out else tick.ts
            t0 = max(t0, t_next)
            hidden = masked(
                untouched,
                inj.kind,
                exchange,
                symbol,
                t0,
                before_s=cfg.cooldown_s,
                after_s=grace_s,
            )
            skipped += hidden and live >= MIN_LIVE_TRADES
            if live >= MIN_LIVE_TRADES and not hidden:
                added, jump = _inject(inj, out, t0, cfg)
                out.extend(added)
                factor *= jump
                labels.append(Label(inj, copy, exchange, symbol, t0))
            t_next += spacing_s * (0.75 + 0.5 * rng.random())
        out.append(replace(tick, price=tick.price * factor) if factor != 1.0 else tick)
    out.sort(key=lambda t: t.ts)
    return out, labels, skipped


def series_hours(ticks: list[Tick]) -> float:
    return (ticks[-1].ts - ticks[0].ts) / 3600.0 if ticks else 0.0


ProgressFn = Callable[[int, int], None]
