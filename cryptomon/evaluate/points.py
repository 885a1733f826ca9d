"""Where a book injection goes: a point past the book detector's warm-up that the untouched
replay does not mask (:func:`book_point`), and the injection time before it (:func:`book_t0`)."""

from __future__ import annotations

import math
import random

from cryptomon.config import AnomalyDetectionConfig
from cryptomon.evaluate.evaluate import grace_s
from cryptomon.evaluate.labels import MIN_LIVE_TRADES, Injection, masked
from cryptomon.evaluate.replays import Replayed
from cryptomon.events import BookTop


def book_t0(live: list[BookTop], j: int) -> float:
    """The injection time before book top ``j``: just after top ``j - 1`` (ms-quantized)."""
    t = live[j - 1].ts + min(0.5 * (live[j].ts - live[j - 1].ts), 0.05)
    return math.ceil(t * 1000.0) / 1000.0


def book_point(
    rep: Replayed,
    inj: Injection,
    live: list[BookTop],
    symbol: str,
    *,
    cfg: AnomalyDetectionConfig,
    rng: random.Random,
    warm_s: float,
) -> tuple[int | None, bool]:
    """A book top past the warm-up to inject before, drawn again among the open points when
    the untouched replay masks it; and whether the first draw was masked (None: no point)."""
    exchange = live[0].exchange

    def is_masked(j: int) -> bool:
        return masked(
            rep.anomalies,
            inj.kind,
            exchange,
            symbol,
            book_t0(live, j),
            before_s=cfg.cooldown_s,
            after_s=grace_s(cfg, inj.kind),
        )

    points = [
        j
        for j in range(max(MIN_LIVE_TRADES, cfg.min_samples), len(live))
        if live[j - 1].ts - live[0].ts >= warm_s and live[j].ts > live[j - 1].ts
    ]
    if not points:
        return None, False
    j = rng.choice(points)
    if not is_masked(j):
        return j, False
    open_points = [k for k in points if not is_masked(k)]
    return (rng.choice(open_points) if open_points else None), True
