"""Graded signals as notifications: strong and medium ones alert, with the grade in the text."""

from __future__ import annotations

import pytest

from cryptomon.events import Signal
from cryptomon.kinds import SignalGrade
from cryptomon.notify.alerts import AlertBuilder
from cryptomon.notify.templates import Renderer
from tests.unit.notify.factories import T0

C = {"exchange": "binance", "symbol": "BTC-USDT", "ts": T0, "ts_recv": T0}


def _signal(grade: SignalGrade | None, strength: float = 0.85) -> Signal:
    return Signal(
        **C,
        side="buy",
        strength=strength,
        source="webhook:tv",
        reason="TradingView alert",
        price=42000.0,
        grade=grade,
    )


@pytest.mark.parametrize(
    ("grade", "severity"),
    [(SignalGrade.STRONG, "medium"), (SignalGrade.MEDIUM, "low")],
)
def test_strong_and_medium_signals_alert_with_their_grade(
    grade: SignalGrade, severity: str
) -> None:
    """A strong signal alerts at medium severity, a medium one at low; title and body name the
    grade, the strength and the source, in Markdown and in text."""
    alert = AlertBuilder(api_base_url="http://api:8080").build(_signal(grade))
    assert alert is not None
    assert alert.event_type == "signal"
    assert alert.severity == severity
    assert alert.fields["grade"] == grade
    assert "/api/v1/signals?" in alert.fields["link"]
    for fmt in ("markdown", "text"):
        rendered = Renderer().render("signal", alert.fields, fmt)  # type: ignore[arg-type]
        assert f"{grade} buy signal (webhook:tv)" in rendered.title
        assert f"grade {grade}" in rendered.body
        assert "0.85" in rendered.body


@pytest.mark.parametrize("grade", [SignalGrade.WEAK, SignalGrade.IGNORE, None])
def test_weak_ignored_and_ungraded_signals_do_not_alert(grade: SignalGrade | None) -> None:
    """Weak and ignored signals are stored, not notified."""
    assert AlertBuilder(api_base_url="http://api:8080").build(_signal(grade, 0.3)) is None


def test_signal_template_override_may_use_the_grade() -> None:
    """alerts.templates.signal may name {grade} and {strength}."""
    r = Renderer({"signal": {"title": "{grade}/{strength:.1f} {symbol}"}})
    alert = AlertBuilder(api_base_url="http://api:8080").build(_signal(SignalGrade.STRONG))
    assert alert is not None
    assert r.render("signal", alert.fields, "text").title == "strong/0.8 BTC-USDT"
