"""The scorecard's text report writes anomaly kinds as the names the rest of the CLI uses."""

from __future__ import annotations

from cryptomon.evaluate.scorecard import _score, format_report
from cryptomon.events import Anomaly, Severity
from cryptomon.kinds import AnomalyKind


def _anomaly(kind: AnomalyKind, ts: float) -> Anomaly:
    return Anomaly(
        exchange="simulator",
        symbol="BTC-USDT",
        ts=ts,
        ts_recv=ts,
        kind=kind,
        severity=Severity.HIGH,
        value=1.0,
        threshold=1.0,
        confidence=60.0,
    )


def test_false_alerts_by_kind_read_as_plain_kind_names() -> None:
    """Calm and unexplained false alerts print as {'price_change': 2}, as the README shows,
    never as the enum's repr (<AnomalyKind.PRICE_CHANGE: 'price_change'>)."""
    calm = [_anomaly(AnomalyKind.PRICE_CHANGE, 1.0), _anomaly(AnomalyKind.PRICE_CHANGE, 2.0)]
    scored = [_anomaly(AnomalyKind.PRICE_CHANGE, 3.0)]
    report = {"seed": 42, "symbols": ["BTC-USDT"], "sim_seconds": 10.0}
    report |= _score([], scored, calm, 3.0, 60.0)
    text = format_report(report)
    assert "per symbol-hour {'price_change': 2}" in text
    assert "unexplained {'price_change': 1}" in text
    assert "AnomalyKind" not in text
