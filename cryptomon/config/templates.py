"""The fields each notification event type offers to its message template, with sample values,
and the check of a template override (``alerts.templates``) against them. The notifier renders
with the same table, so a typo in an override is a config error, not a failed notification."""

from __future__ import annotations

import string
from decimal import Decimal
from typing import Any

from cryptomon.kinds import NotifyEventType

EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in NotifyEventType)

_COMMON = ("event_type", "priority", "severity", "exchange", "symbol", "kind", "time", "link")

FIELDS: dict[str, tuple[str, ...]] = {
    "anomaly": (
        *_COMMON,
        "value",
        "threshold",
        "reasons",
        "confidence",
        "z_score",
        "price_change_pct",
        "id",
    ),
    "signal": (*_COMMON, "side", "strength", "grade", "source", "reason", "price", "id"),
    "fill": (
        *_COMMON,
        "side",
        "amount",
        "price",
        "fee",
        "fee_currency",
        "liquidity",
        "client_order_id",
        "unit",
        "quote",
    ),
    "exit": (
        *_COMMON,
        "exit_kind",
        "side",
        "amount",
        "avg_price",
        "client_order_id",
        "reason",
        "unit",
        "quote",
    ),
    "risk": (*_COMMON, "state", "reason", "check", "client_order_id"),
    "kill_switch": (*_COMMON, "state", "reason"),
    "feed_down": (*_COMMON, "feed", "channel", "status", "detail", "down_for_s"),
    "feed_recovered": (*_COMMON, "feed", "channel", "down_for_s"),
    "notice": (*_COMMON, "code", "message", "level"),
    "test": (*_COMMON, "channel_name", "message"),
}
"""The fields each event type offers to its template (and to config overrides)."""

_SAMPLE_COMMON: dict[str, Any] = {
    "event_type": "anomaly",
    "priority": "P1",
    "severity": "high",
    "exchange": "binance",
    "symbol": "BTC-USDT",
    "kind": "volume",
    "time": "2024-01-01T00:00:00Z",
    "link": "http://127.0.0.1:8080/api/v1/anomalies",
}
_SAMPLE_EXTRA: dict[str, Any] = {
    "value": 5.5,
    "threshold": 3.0,
    "reasons": "Z-score: 5.50",
    "confidence": 0.9,
    "z_score": 5.5,
    "price_change_pct": 1.5,
    "id": "0" * 32,
    "side": "buy",
    "strength": 0.85,
    "grade": "strong",
    "source": "indicators",
    "amount": Decimal("0.5"),
    "price": Decimal("42000.1"),
    "avg_price": Decimal("42000.1"),
    "unit": "BTC",
    "quote": "USDT",
    "fee": Decimal("0.01"),
    "fee_currency": "USDT",
    "liquidity": "taker",
    "client_order_id": "cm-1",
    "exit_kind": "stop-loss",
    "reason": "stop_loss",
    "state": "halted",
    "check": "max_drawdown",
    "channel": "trades",
    "status": "stale",
    "detail": "",
    "down_for_s": 60.0,
    "code": "daemon_start",
    "message": "cryptomon running",
    "level": "info",
    "channel_name": "ops",
    "feed": "binance BTC-USDT trades",
}


def sample_fields(event_type: str) -> dict[str, Any]:
    """Typical values for every field of ``event_type`` (validation and docs)."""
    merged = {**_SAMPLE_COMMON, **_SAMPLE_EXTRA}
    return {k: merged[k] for k in FIELDS[event_type]}


def check_override(event_type: str, text: str) -> None:
    """Raise ValueError naming the problem when ``text`` cannot render ``event_type``."""
    allowed = FIELDS[event_type]
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ValueError(f"a str.format template ({exc})") from None
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if name not in allowed:  # plain names only: no attribute or index access
            raise ValueError(
                f"known fields only: unknown field {{{name}}} for {event_type}; "
                f"fields: {', '.join(allowed)}"
            )
    try:
        text.format_map(sample_fields(event_type))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ValueError(f"a template that formats with sample values ({exc})") from None
