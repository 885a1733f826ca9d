"""Events -> alerts: priorities, exits recognised from the order's origin, links, dedup keys."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cryptomon.events import (
    Fill,
    Notice,
    OrderIntent,
    OrderState,
    OrderUpdate,
    RiskEvent,
    Severity,
    Ticker,
)
from cryptomon.notify.alerts import AlertBuilder
from tests import stubs
from tests.unit.notify.factories import T0, anomaly

C = {"exchange": "binance", "symbol": "BTC-USDT", "ts": T0, "ts_recv": T0}


def _b() -> AlertBuilder:
    return AlertBuilder(api_base_url="http://api:8080/")


@pytest.mark.parametrize(
    ("severity", "priority"),
    [
        (Severity.CRITICAL, "P0"),
        (Severity.HIGH, "P1"),
        (Severity.MEDIUM, "P2"),
        (Severity.LOW, "P2"),
    ],
)
def test_anomaly_priority_follows_severity(severity: Severity, priority: str) -> None:
    """critical -> P0, high -> P1, medium/low -> P2."""
    alert = _b().build(anomaly(severity=severity))
    assert alert is not None
    assert alert.priority == priority
    assert alert.dedup_key == ("binance", "BTC-USDT", "volume")


def _update(cid: str, state: OrderState, reason: str = "") -> OrderUpdate:
    return OrderUpdate(
        **C,
        client_order_id=cid,
        state=state,
        side="sell",
        type="market",
        amount=Decimal(1),
        filled=Decimal(1),
        avg_price=Decimal(100),
        reason=reason,
    )


def _fill(cid: str) -> Fill:
    return stubs.fill(
        "t1",
        cid,
        **C,
        side="sell",
        amount=Decimal(1),
        price=Decimal(100),
        fee=Decimal("0.1"),
        fee_currency="USDT",
    )


def test_take_profit_exit_from_intent_origin_and_its_fill_is_not_repeated() -> None:
    """An order whose intent came from take_profit is an exit when filled; its fills are not
    reported separately; ordinary fills are P2 'fill' alerts."""
    b = _b()
    intent = OrderIntent(
        **C,
        client_order_id="tp-1",
        side="sell",
        type="market",
        amount=Decimal(1),
        origin="take_profit",
    )
    assert b.build(intent) is None
    assert b.build(_fill("tp-1")) is None
    assert b.build(_update("tp-1", OrderState.SUBMITTED)) is None
    exit_alert = b.build(_update("tp-1", OrderState.FILLED))
    assert exit_alert is not None
    assert (exit_alert.event_type, exit_alert.priority) == ("exit", "P1")
    assert exit_alert.fields["exit_kind"] == "take-profit"
    assert exit_alert.fields["link"] == "http://api:8080/api/v1/trading/orders/tp-1"
    fill = b.build(_fill("sig-1"))
    assert fill is not None
    assert (fill.event_type, fill.priority, fill.dedup_key) == ("fill", "P2", None)


@pytest.mark.parametrize(
    ("origin", "exit_kind", "kind"),
    [
        ("liquidation", "liquidation", "liquidation"),
        ("adl", "auto-deleveraging", "auto_deleveraging"),
        ("settlement", "settlement", "settlement"),
        ("venue", "venue order", "venue_order"),
    ],
)
def test_a_close_the_engine_did_not_send_is_an_exit_naming_its_cause(
    origin: str, exit_kind: str, kind: str
) -> None:
    """An adopted venue close (a venue's mark, or a venue order: a trade by hand) is an exit
    alert whose kind says which, with the venue's reason."""
    b = _b()
    intent = OrderIntent(
        **C,
        client_order_id="venue-42",
        side="sell",
        type="market",
        amount=Decimal(1),
        reduce_only=True,
        origin=origin,  # type: ignore[arg-type]
    )
    assert b.build(intent) is None
    assert b.build(_fill("venue-42")) is None
    alert = b.build(_update("venue-42", OrderState.FILLED, reason="venue order: the venue's"))
    assert alert is not None
    assert (alert.event_type, alert.kind, alert.priority) == ("exit", kind, "P1")
    assert alert.fields["exit_kind"] == exit_kind
    assert alert.fields["reason"] == "venue order: the venue's"


def test_exit_recognised_from_update_reason_without_intent() -> None:
    """Without the intent seen, reason 'stop_loss' on a filled update marks the exit."""
    alert = _b().build(_update("x", OrderState.FILLED, reason="stop_loss"))
    assert alert is not None
    assert alert.fields["exit_kind"] == "stop-loss"


@pytest.mark.parametrize(
    ("kind", "event_type", "priority"),
    [
        ("kill_switch", "kill_switch", "P0"),
        ("state_change", "risk", "P1"),
        ("limit", "risk", "P1"),
        ("rejected", "risk", "P2"),
    ],
)
def test_risk_events(kind: str, event_type: str, priority: str) -> None:
    """Kill switch is P0; state changes (to halted) and limits P1; rejections P2."""
    alert = _b().build(RiskEvent(**C, kind=kind, state="halted", reason="r"))  # type: ignore[arg-type]
    assert alert is not None
    assert (alert.event_type, alert.priority, alert.category) == (event_type, priority, "trading")


@pytest.mark.parametrize(
    ("code", "level", "severity"),
    [
        ("daemon_start", "info", Severity.MEDIUM),
        ("db_unreachable", "error", Severity.HIGH),
        ("whatever", "critical", Severity.CRITICAL),
        ("whatever", "info", Severity.LOW),
    ],
)
def test_notice_severity_by_code_and_level(code: str, level: str, severity: Severity) -> None:
    """Known codes have a floor severity; otherwise the notice level decides."""
    n = Notice(exchange="", symbol="", ts=T0, ts_recv=T0, code=code, message="m", level=level)  # type: ignore[arg-type]
    alert = _b().build(n)
    assert alert is not None
    assert alert.severity == severity
    assert alert.category == "system"


def test_market_data_is_not_an_alert() -> None:
    """Events that are not notification-worthy give no alert."""
    assert _b().build(Ticker(**C, bid=1.0, ask=2.0)) is None


def test_risk_back_to_active_is_informational() -> None:
    """A risk state change back to active is P2, not P1."""
    alert = _b().build(RiskEvent(**C, kind="state_change", state="active", reason="reconciled"))
    assert alert is not None
    assert alert.priority == "P2"
