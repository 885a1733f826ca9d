"""Turn kernel findings into :class:`~cryptomon.events.Anomaly` events: severity from the
level the kernel computed, a 0-100 confidence, short human reasons."""

from __future__ import annotations

import math
from collections.abc import Sequence

from cryptomon.detect import detectors_nb as k
from cryptomon.events import Anomaly, Event, Severity

_Z_KINDS = frozenset({"volume", "liquidations", "volatility", "spread"})
SEVERITIES = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)


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
    value = float(row[k.F_VALUE])
    thr = float(row[k.F_THR])
    z = float(row[k.F_Z])
    mean = float(row[k.F_MEAN])
    aux = float(row[k.F_AUX])
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
        out.append(f"Bucket return: {value:.3f}% (std {float(row[k.F_STD]):.3f}%)")
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
) -> Anomaly:
    """The Anomaly for one finding row triggered by ``ev``."""
    value = float(row[k.F_VALUE])
    thr = float(row[k.F_THR])
    z = float(row[k.F_Z])
    level = int(row[k.F_LEVEL])
    samples = float(row[k.F_N])
    mean = float(row[k.F_MEAN])
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
        window_mean=_num(float(row[k.F_MEAN])),
        window_std=_num(float(row[k.F_STD])),
        samples=int(samples),
        ts_detected=now,
    )
