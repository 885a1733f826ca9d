"""Emission of the detector engine's findings as :class:`~cryptomon.events.Anomaly` events:
the warm-up gate, a cooldown per (exchange, symbol, kind) in event time (a higher severity
passes), the counters and the receipt-to-publication latency histogram."""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import structlog

from cryptomon.clock import Clock
from cryptomon.detect.base import SymbolInfo
from cryptomon.detect.detectors_nb import read_findings
from cryptomon.detect.findings import build_anomaly
from cryptomon.detect.gate import WarmupGate
from cryptomon.detect.registry import Detector, PriceContext, Source
from cryptomon.events import Event
from cryptomon.hub import Hub
from cryptomon.ids import anomaly_id

log = structlog.get_logger()

SEVERITY_NAMES = ("low", "medium", "high", "critical")
# detector latency histogram: upper bounds in seconds (cumulative counts, Prometheus style)
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1.0)


class Emitter:
    """Turns a detector's findings into published anomalies and counts what it did."""

    def __init__(
        self,
        *,
        hub: Hub,
        clock: Clock,
        gate: WarmupGate,
        infos: list[SymbolInfo],
        price: PriceContext | None,
    ) -> None:
        """``infos``: the engine's markets by id (the same list, grown as markets appear);
        ``price``: the detector giving the price change of an anomaly, if registered."""
        self.hub = hub
        self.clock = clock
        self.gate = gate
        self.infos = infos
        self.price = price
        # a backtest's hook (its engine reads a chunk of candles ahead in one batch): called
        # with a batch's events and the row of a finding that passes the warm-up gate and
        # the cooldown, it gives the finding's detection time and price change (those of a
        # flush at its candle's close) instead of the clock's time and the latest change
        self.row_context: Callable[[Any, int], tuple[float, float]] | None = None
        self.cooldown: dict[tuple[str, str, str], tuple[float, int]] = {}
        self.by_kind: Counter[str] = Counter()
        self.by_severity: Counter[str] = Counter()
        self.suppressed = 0
        self.in_warmup = 0  # findings of markets still inside their detector's warm-up
        self.errors = 0
        self.lat_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.lat_sum = 0.0

    def emit(
        self,
        det: Detector,
        source: Source,
        fires: np.ndarray,
        m: int,
        *,
        evs: Any,
        cols: Any,
    ) -> None:
        """Publish the ``m`` findings in ``fires`` that ``det`` made over ``cols``, the
        columns of the events ``evs`` of ``source``."""
        infos, cooldown, time_now = self.infos, self.cooldown, self.clock.time
        sid_of = cols.sid
        gate = self.gate
        ready = gate.ready(det)  # per market id: passed the warm-up (the common case)
        later = gate.later(det)  # kinds with a longer warm-up of their own (rare)
        kinds = det.kinds
        context = self.row_context
        for finding in read_findings(fires, m):
            i = finding.row
            s = int(sid_of[i])
            if not ready[s] and not gate.passed(det, source, cols, i):
                self.in_warmup += 1
                continue
            kind_ready = later.get(finding.code) if later else None
            if (
                kind_ready is not None
                and not kind_ready[s]
                and not gate.passed(det, source, cols, i, finding.code)
            ):
                self.in_warmup += 1
                continue
            ev: Event = evs[i]
            kind = kinds[finding.code]
            level = finding.level
            info = infos[s]
            key = (ev.exchange, ev.symbol, kind)
            prev = cooldown.get(key)
            if prev is not None and ev.ts - prev[0] < info.cfg.cooldown_s and level <= prev[1]:
                self.suppressed += 1
                continue
            cooldown[key] = (ev.ts, level)
            if context is None:
                now = time_now()
                pct = math.nan if self.price is None else self.price.change_pct(s)
            else:
                now, pct = context(evs, i)
            try:
                anomaly = build_anomaly(
                    kind,
                    finding,
                    ev,
                    details=det.reasons(kind, finding, info.quote),
                    z_scored=kind in det.z_kinds,
                    min_samples=info.cfg.min_samples,
                    pct=pct,
                    now=now,
                    ident=anomaly_id(
                        ev.exchange,
                        ev.symbol,
                        kind=kind,
                        ts=ev.ts,
                        ts_recv=ev.ts_recv,
                        value=float(finding.value),
                    ),
                )
            except (ValueError, OverflowError) as exc:  # a degenerate value; never crash
                self.errors += 1
                log.warning("detect.anomaly_failed", kind=kind, error=str(exc))
                continue
            self.hub.publish(anomaly)
            self.by_kind[kind] += 1
            self.by_severity[SEVERITY_NAMES[max(0, min(3, level))]] += 1
            lat = max(0.0, (time_now() if context is None else now) - ev.ts_recv)
            self.lat_counts[bisect.bisect_left(LATENCY_BUCKETS, lat)] += 1
            self.lat_sum += lat

    def stats(self, kinds: tuple[str, ...]) -> dict[str, Any]:
        """The anomaly counters of the engine's ``/metrics`` (every kind of ``kinds``)."""
        cum = 0
        buckets: dict[str, int] = {}
        for le, c in zip((*map(str, LATENCY_BUCKETS), "+Inf"), self.lat_counts, strict=True):
            cum += c
            buckets[le] = cum
        return {
            "anomalies": {
                "total": sum(self.by_kind.values()),
                "by_kind": {kind: self.by_kind.get(kind, 0) for kind in kinds},
                "by_severity": {s: self.by_severity.get(s, 0) for s in SEVERITY_NAMES},
            },
            "suppressed_by_cooldown": self.suppressed,
            "suppressed_in_warmup": self.in_warmup,
            "errors": self.errors,
            "latency_seconds": {"buckets": buckets, "count": cum, "sum": self.lat_sum},
        }
