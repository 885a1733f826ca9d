"""Turn kernel findings into :class:`~cryptomon.events.Anomaly` events: severity from the
level the kernel computed, a 0-100 confidence, short human reasons (each detector writes its
own lines; see :meth:`cryptomon.detect.registry.Detector.reasons`)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from cryptomon.detect.detectors_nb import Finding
from cryptomon.events import Anomaly, Event, Severity
from cryptomon.kinds import AnomalyKind

SEVERITIES = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)


def new_ids(n: int) -> list[str]:
    """``n`` ids in the format of ``uuid.uuid4().hex`` (random, version 4, RFC 4122 variant)
    from one ``os.urandom`` call."""
    raw = np.frombuffer(bytearray(os.urandom(16 * n)), np.uint8).reshape(n, 16)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    h = raw.tobytes().hex()
    return [h[i : i + 32] for i in range(0, 32 * n, 32)]


class IdPool:
    """Anomaly ids made ``chunk`` at a time (~0.1 us each; ``uuid.uuid4().hex`` ~2 us)."""

    __slots__ = ("_chunk", "_ids")

    def __init__(self, chunk: int = 1024) -> None:
        self._chunk = chunk
        self._ids: list[str] = []

    def take(self) -> str:
        if not self._ids:
            self._ids = new_ids(self._chunk)
        return self._ids.pop()


def confidence(ratio: float, samples: float, min_samples: int) -> float:
    """50 at the threshold rising towards 100 as the value goes past it, scaled down while the
    statistics have fewer than twice ``min_samples`` samples."""
    if not math.isfinite(ratio):
        ratio = 1.0
    base = 50.0 + 50.0 * math.tanh(2.0 * max(0.0, ratio - 1.0))
    warm = min(1.0, max(samples, 1.0) / (2.0 * max(min_samples, 1)))
    return round(base * (0.5 + 0.5 * warm), 1)


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def reasons(
    kind: AnomalyKind, finding: Finding, details: Sequence[str], pct: float | None
) -> tuple[str, ...]:
    """The z-score, the detector's own ``details``, then the price change as context."""
    out: list[str] = []
    if math.isfinite(finding.z):
        out.append(f"Z-score: {finding.z:.2f}")
    out.extend(details)
    if pct is not None and kind != AnomalyKind.PRICE_CHANGE:
        out.append(f"Price change: {pct:.2f}%")
    return tuple(out)


def build_anomaly(
    kind: AnomalyKind,
    finding: Finding,
    ev: Event,
    *,
    details: Sequence[str],
    z_scored: bool,
    min_samples: int,
    pct: float,
    now: float,
    ident: str | None = None,
) -> Anomaly:
    """The Anomaly for one finding triggered by ``ev``. ``details`` are the detector's reason
    lines; ``z_scored`` kinds measure confidence as z / z-threshold, the others as value /
    threshold."""
    value, thr, mean = float(finding.value), float(finding.threshold), float(finding.mean)
    if z_scored and math.isfinite(mean) and thr != mean:
        ratio = (value - mean) / (thr - mean)  # = z / z-threshold
    else:
        ratio = abs(value / thr) if thr else math.inf
    price_pct = value if kind == AnomalyKind.PRICE_CHANGE else _num(pct)
    return Anomaly(
        exchange=ev.exchange,
        symbol=ev.symbol,
        ts=ev.ts,
        ts_recv=ev.ts_recv,
        kind=kind,
        severity=SEVERITIES[max(0, min(3, int(finding.level)))],
        value=value,
        threshold=thr,
        confidence=confidence(ratio, finding.samples, min_samples),
        z_score=_num(finding.z),
        price_change_pct=price_pct,
        reasons=reasons(kind, finding, details, price_pct),
        window_mean=_num(mean),
        window_std=_num(finding.std),
        samples=int(finding.samples),
        ts_detected=now,
        id=ident if ident is not None else new_ids(1)[0],
    )
