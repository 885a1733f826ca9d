"""``crypto-monitor evaluate``: labelled events injected into real inputs, replayed through the
real pipeline, scored per injection (see :mod:`cryptomon.evaluate.labels`).

Two inputs: recordings in cryptofeed's raw format (:mod:`cryptomon.evaluate.recordings`:
events injected into the raw frames in each exchange's own message format) and a trade
series from a file (:mod:`cryptomon.evaluate.series`, fed as the trades of one market). Every
copy goes through its own hub and :class:`~cryptomon.detect.engine.DetectorEngine` (the
engine ``cryptomon.app`` builds from the same ``anomaly_detection`` section). The report
depends on the inputs, the config and the seed only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cryptomon.clock import ManualClock
from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect.engine import DetectorEngine
from cryptomon.evaluate.labels import PLAN, Injection, Label, alert_key, alert_rates, score
from cryptomon.evaluate.series import Tick, inject_series, series_hours
from cryptomon.events import Anomaly, Trade
from cryptomon.hub import Hub
from cryptomon.kinds import AnomalyKind

Progress = Callable[[int, int], None]
# the kinds injected as trades (into a trade series, or a recording's trades)
SERIES_KINDS = frozenset(
    {
        AnomalyKind.WHALE,
        AnomalyKind.VOLUME,
        AnomalyKind.PRICE_CHANGE,
        AnomalyKind.VOLATILITY,
        AnomalyKind.MA_DEVIATION,
    }
)


def grace_s(cfg: AnomalyDetectionConfig, kind: AnomalyKind | None = None) -> float:
    """How long after an injection its anomaly still counts as a detection: two buckets and
    a second (a book imbalance: also the persistence the detector waits for, smoothed)."""
    grace = 2.0 * cfg.bucket_seconds + 1.0
    if kind == AnomalyKind.BOOK_IMBALANCE:
        grace += cfg.book_imbalance_min_s + 3.0 * cfg.book_imbalance_smoothing_s
    return grace


def engine_on(hub: Hub, cfg: AnomalyDetectionConfig) -> tuple[DetectorEngine, list[Anomaly]]:
    """A detector engine on ``hub`` and the list its anomalies land in."""
    got: list[Anomaly] = []
    hub.subscribe(Anomaly, got.append, name="evaluate.anomalies")
    return DetectorEngine(hub=hub, clock=ManualClock(0.0), config=cfg), got


def run_series(
    ticks: Sequence[Tick], cfg: AnomalyDetectionConfig, exchange: str, symbol: str
) -> list[Anomaly]:
    """The series through a hub and a detector engine; the anomalies."""
    hub = Hub()
    engine, got = engine_on(hub, cfg)
    publish = hub.publish
    for i, t in enumerate(ticks):
        publish(
            Trade(
                exchange=exchange,
                symbol=symbol,
                ts=t.ts,
                ts_recv=t.ts,
                price=t.price,
                amount=t.amount,
                side="buy" if t.side == "buy" else "sell",
                notional=t.price * t.amount,  # spot: the file's cost column
            )
        )
        if i % cfg.batch_size == 0:
            engine.flush()
    engine.flush()
    return got


def evaluate_series(
    ticks: list[Tick],
    cfg: AnomalyDetectionConfig,
    *,
    exchange: str,
    symbol: str,
    seed: int,
    plan: Sequence[Injection] = PLAN,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Untouched alert rates and the recall per injection on one trade series."""
    plan = [inj for inj in plan if inj.kind in SERIES_KINDS]
    untouched = run_series(ticks, cfg, exchange, symbol)
    spacing = max(2.0 * cfg.lookback_window_minutes * 60.0, 2.0 * cfg.cooldown_s, 600.0)
    labels: list[Label] = []
    found: dict[int, list[Anomaly]] = {}
    skipped: dict[str, int] = {}
    for copy, inj in enumerate(plan, start=1):
        series, lbs, skipped[inj.name] = inject_series(
            ticks,
            inj,
            cfg=cfg,
            copy=copy,
            exchange=exchange,
            symbol=symbol,
            spacing_s=spacing,
            seed=seed,
            untouched=untouched,
            grace_s=grace_s(cfg),
        )
        labels.extend(lbs)
        found[copy] = run_series(series, cfg, exchange, symbol)
        if progress is not None:
            progress(copy, len(plan))
    return {
        "input": {"trades_file": True, "exchange": exchange, "symbol": symbol},
        "trades": len(ticks),
        "untouched": alert_rates(untouched, series_hours(ticks)),
        "injections": score(
            labels,
            found,
            lambda kind: grace_s(cfg, kind),
            untouched=map(alert_key, untouched),
            masked_points=skipped,
        ),
    }
