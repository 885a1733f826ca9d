"""Message templates: one per event type, rendered as Markdown (chat) or plain text (SMS, email).

A template is a title, a one-line summary (used in digests) and labelled body lines, all
``str.format`` strings over the alert's fields (:data:`FIELDS`). The config may override the
title and/or body of any event type (``alerts.templates``); overrides are checked at load time
against the fields of that event type with sample values, so a typo is a config error, not a
failed notification.

Which format a channel gets with ``format: auto`` comes from the URL scheme through the table
:data:`SCHEME_FORMATS` (unknown schemes get plain text).
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import structlog

log = structlog.get_logger()

Format = Literal["markdown", "text"]

EVENT_TYPES: tuple[str, ...] = (
    "anomaly",
    "fill",
    "exit",
    "risk",
    "kill_switch",
    "feed_down",
    "feed_recovered",
    "notice",
    "test",
)

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
    "fill": (
        *_COMMON,
        "side",
        "amount",
        "price",
        "fee",
        "fee_currency",
        "liquidity",
        "client_order_id",
    ),
    "exit": (*_COMMON, "exit_kind", "side", "amount", "avg_price", "client_order_id", "reason"),
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
    "amount": Decimal("0.5"),
    "price": Decimal("42000.1"),
    "avg_price": Decimal("42000.1"),
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


@dataclass(frozen=True, slots=True)
class Template:
    """``lines`` are ``(label, value template)``; the link is appended by the renderer."""

    title: str
    summary: str
    lines: tuple[tuple[str, str], ...]


DEFAULTS: dict[str, Template] = {
    "anomaly": Template(
        title="[{priority}] {exchange} {symbol}: {kind} anomaly ({severity})",
        summary="{kind} {value:g} vs {threshold:g} ({severity})",
        lines=(
            ("Market", "{exchange} {symbol}"),
            ("Kind", "{kind}"),
            ("Value", "{value:g} vs threshold {threshold:g}"),
            ("Severity", "{severity} ({priority})"),
            ("Reasons", "{reasons}"),
            ("Time", "{time}"),
        ),
    ),
    "fill": Template(
        title="[{priority}] {exchange} {symbol}: {side} {amount} @ {price}",
        summary="fill {side} {amount} @ {price}",
        lines=(
            ("Market", "{exchange} {symbol}"),
            ("Fill", "{side} {amount} @ {price} ({liquidity})"),
            ("Fee", "{fee} {fee_currency}"),
            ("Order", "{client_order_id}"),
            ("Time", "{time}"),
        ),
    ),
    "exit": Template(
        title="[{priority}] {exchange} {symbol}: {exit_kind} hit",
        summary="{exit_kind} {side} {amount} @ {avg_price}",
        lines=(
            ("Market", "{exchange} {symbol}"),
            ("Exit", "{exit_kind}: {side} {amount} @ {avg_price}"),
            ("Order", "{client_order_id}"),
            ("Reason", "{reason}"),
            ("Time", "{time}"),
        ),
    ),
    "risk": Template(
        title="[{priority}] risk {kind}: {reason}",
        summary="risk {kind} ({state}): {reason}",
        lines=(
            ("Market", "{exchange} {symbol}"),
            ("Event", "{kind} (check {check})"),
            ("State", "{state}"),
            ("Reason", "{reason}"),
            ("Order", "{client_order_id}"),
            ("Time", "{time}"),
        ),
    ),
    "kill_switch": Template(
        title="[{priority}] KILL SWITCH: trading {state}",
        summary="kill switch ({state}): {reason}",
        lines=(("State", "{state}"), ("Reason", "{reason}"), ("Time", "{time}")),
    ),
    "feed_down": Template(
        title="[{priority}] feed down: {feed}",
        summary="feed down ({status}) for {down_for_s:.0f}s: {feed}",
        lines=(
            ("Feed", "{feed}"),
            ("Status", "{status} for {down_for_s:.0f}s {detail}"),
            ("Since", "{time}"),
        ),
    ),
    "feed_recovered": Template(
        title="[{priority}] feed recovered: {feed}",
        summary="feed live again after {down_for_s:.0f}s: {feed}",
        lines=(
            ("Feed", "{feed}"),
            ("Down for", "{down_for_s:.0f}s"),
            ("Time", "{time}"),
        ),
    ),
    "notice": Template(
        title="[{priority}] cryptomon: {message}",
        summary="{code}: {message}",
        lines=(
            ("Notice", "{code}"),
            ("Message", "{message}"),
            ("Level", "{level}"),
            ("Time", "{time}"),
        ),
    ),
    "test": Template(
        title="cryptomon test notification",
        summary="test message",
        lines=(("Channel", "{channel_name}"), ("Message", "{message}"), ("Time", "{time}")),
    ),
}

SCHEME_FORMATS: Mapping[str, Format] = {
    # chat services that render Markdown (apprise converts to HTML where a service needs it)
    **dict.fromkeys(
        (
            "tgram",
            "telegram",
            "slack",
            "discord",
            "wecombot",
            "dingtalk",
            "msteams",
            "mmost",
            "mmosts",
            "rocket",
            "rockets",
            "matrix",
            "matrixs",
            "zulip",
            "gotify",
            "gotifys",
            "ntfy",
            "ntfys",
            "guilded",
            "revolt",
        ),
        "markdown",
    ),
    # email, SMS and machine webhooks: plain text
    **dict.fromkeys(
        (
            "mailto",
            "mailtos",
            "twilio",
            "sns",
            "plivo",
            "vonage",
            "nexmo",
            "clicksend",
            "msg91",
            "sinch",
            "signal",
            "signals",
            "feishu",
            "lark",
            "json",
            "jsons",
            "xml",
            "xmls",
            "form",
            "forms",
        ),
        "text",
    ),
}
DEFAULT_FORMAT: Format = "text"


def scheme_of(url: str) -> str:
    return url.partition("://")[0].lower()


def format_for(url: str, configured: str = "auto") -> Format:
    """The body format of a channel: its configured one, or by URL scheme for ``auto``."""
    if configured in ("markdown", "text"):
        return configured  # type: ignore[return-value]
    return SCHEME_FORMATS.get(scheme_of(url), DEFAULT_FORMAT)


@dataclass(frozen=True, slots=True)
class Rendered:
    title: str
    body: str
    summary: str


class Renderer:
    """Renders alerts with the defaults, or the config's per-event-type overrides."""

    def __init__(self, overrides: Mapping[Any, Any] | None = None) -> None:
        self._overrides: dict[str, tuple[str | None, str | None]] = {}
        for event_type, ov in (overrides or {}).items():
            title = getattr(ov, "title", None) if not isinstance(ov, dict) else ov.get("title")
            body = getattr(ov, "body", None) if not isinstance(ov, dict) else ov.get("body")
            self._overrides[event_type] = (title, body)

    def title(self, event_type: str, fields: Mapping[str, Any]) -> str:
        """The title alone (for records of suppressed alerts)."""
        title_ov = self._overrides.get(event_type, (None, None))[0]
        if title_ov:
            try:
                return title_ov.format_map(fields)
            except (ValueError, TypeError, KeyError):
                pass  # render() logs it
        return DEFAULTS[event_type].title.format_map(_Lenient(fields))

    def render(self, event_type: str, fields: Mapping[str, Any], fmt: Format) -> Rendered:
        tpl = DEFAULTS[event_type]
        title_ov, body_ov = self._overrides.get(event_type, (None, None))
        summary = tpl.summary.format_map(_Lenient(fields))
        title = body = None
        try:  # overrides were checked at load; a None field may still not take a format spec
            title = title_ov.format_map(fields) if title_ov else None
            body = body_ov.format_map(fields) if body_ov else None
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("notify.template_failed", event_type=event_type, error=str(exc))
        if title is None:
            title = tpl.title.format_map(_Lenient(fields))
        if body is None:
            body = _body(tpl.lines, fields, fmt)
        return Rendered(title=title, body=body, summary=summary)


class _Lenient(dict[str, Any]):
    """Built-in templates never fail: a missing field renders as ``-``."""

    def __missing__(self, key: str) -> str:
        return "-"


def _body(lines: Sequence[tuple[str, str]], fields: Mapping[str, Any], fmt: Format) -> str:
    out: list[str] = []
    for label, value_tpl in lines:
        value = value_tpl.format_map(_Lenient(fields)).strip()
        if not value or value in ("None", "None None"):
            continue
        out.append(f"**{label}:** {value}" if fmt == "markdown" else f"{label}: {value}")
    link = fields.get("link")
    if link:
        out.append(f"[Open in cryptomon]({link})" if fmt == "markdown" else f"Link: {link}")
    return "\n".join(out)


def render_digest(
    channel: str, items: Sequence[tuple[str, str, str, Rendered]], fmt: Format, window_s: float
) -> tuple[str, str]:
    """Title and body of a digest; ``items`` are ``(priority, time, market, rendered)``."""
    title = f"[digest] {len(items)} alerts for {channel} (rate limit reached)"
    head = f"{len(items)} alerts were collapsed into this digest over up to {window_s:g}s:"
    lines = [f"**{head}**" if fmt == "markdown" else head]
    bullet = "- " if fmt == "markdown" else "* "
    lines.extend(
        f"{bullet}[{prio}] {when} {market}: {r.summary}" for prio, when, market, r in items
    )
    return title, "\n".join(lines)


# --------------------------------------------------------------------------- validation


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
                f"unknown field {{{name}}} for {event_type}; fields: {', '.join(allowed)}"
            )
    try:
        text.format_map(sample_fields(event_type))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ValueError(f"a template that formats with sample values ({exc})") from None
