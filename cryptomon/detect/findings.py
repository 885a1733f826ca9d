"""Turn kernel findings into :class:`~cryptomon.events.Anomaly` events: severity from the
level the kernel computed, a 0-100 confidence, short human reasons."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from cryptomon.detect import detectors_nb as k
from cryptomon.events import Anomaly, Event, Severity

_Z_KINDS = frozenset({"volume", "liquidations", "volatility", "spread"})
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


def _reasons(kind: str, row: Sequence[float], quote: str, pct: float | None) -> tuple[str, ...]:
    value, thr, z, mean, std, _n, _lvl, aux = map(float, row[k.F_VALUE : k.F_COLS])
    out: list[str] = []
    if math.isfinite(z):
        out.append(f"Z-score: {z:.2f}")
    if kind == "volume":
        out.append(f"Volume: {value:.6g} in the bucket (mean {mean:.6g})")
        out.append(f"Notional: {aux:,.0f} {quote}".rstrip())
    elif kind == "volume_imbalance":
        out.append(f"Buy/sell imbalance: {value:+.2f} over {aux:.0f} trades")
    elif kind == "price_change":
        out.append(f"Price change: {value:.2f}%")
        out.append(f"From: {aux:.8g}")
    elif kind == "volatility":
        out.append(f"Bucket return: {value:.3f}% (std {std:.3f}%)")
    elif kind == "ma_deviation":
        out.append(f"Deviation from moving average: {value:+.2f}% (MA {mean:.8g})")
    elif kind == "book_imbalance":
        out.append(f"Book imbalance: {value:+.2f} for {aux:.1f}s")
    elif kind == "spread":
        out.append(f"Spread: {value:.3g} bps, {aux:.1f}x its mean of {mean:.3g} bps")
    elif kind == "whale":
        side = "buy" if aux > 0 else "sell"
        out.append(f"Taker order notional: {value:,.0f} {quote} ({side})".replace("  ", " "))
        out.append(f"Threshold: {thr:,.0f} {quote}".rstrip())
    elif kind == "whale_burst":
        side = "buy" if aux > 0 else "sell"
        out.append(f"Burst: {value:.0f} large {side} trades")
    elif kind == "divergence":
        out.append(f"Gap to other exchanges: {value:+.1f} bps for {aux:.1f}s")
    elif kind == "liquidations":
        out.append(f"Liquidated volume: {value:.6g} in the bucket (mean {mean:.6g})")
    elif kind == "funding":
        out.append(f"Funding rate jump: {value:+.6f} to {aux:.6f}")
    if pct is not None and kind != "price_change":
        out.append(f"Price change: {pct:.2f}%")
    return tuple(out)


def build_anomaly(
    kind: str,
    row: Sequence[float],
    ev: Event,
    *,
    quote: str,
    min_samples: int,
    pct: float,
    now: float,
    ident: str | None = None,
) -> Anomaly:
    """The Anomaly for one finding row triggered by ``ev``."""
    value, thr, z, mean, std, samples, lvl, _aux = map(float, row[k.F_VALUE : k.F_COLS])
    level = int(lvl)
    if kind in _Z_KINDS and math.isfinite(mean) and thr != mean:
        ratio = (value - mean) / (thr - mean)  # = z / z-threshold
    else:
        ratio = abs(value / thr) if thr else math.inf
    price_pct = value if kind == "price_change" else _num(pct)
    return Anomaly(
        exchange=ev.exchange,
        symbol=ev.symbol,
        ts=ev.ts,
        ts_recv=ev.ts_recv,
        kind=kind,
        severity=SEVERITIES[max(0, min(3, level))],
        value=value,
        threshold=thr,
        confidence=confidence(ratio, samples, min_samples),
        z_score=_num(z),
        price_change_pct=price_pct,
        reasons=_reasons(kind, row, quote, price_pct),
        window_mean=_num(mean),
        window_std=_num(std),
        samples=int(samples),
        ts_detected=now,
        id=ident if ident is not None else new_ids(1)[0],
    )
