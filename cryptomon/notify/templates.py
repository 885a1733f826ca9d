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

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, NamedTuple

import structlog

from cryptomon.config.templates import (  # noqa: F401 - re-exported for the notifier's users
    EVENT_TYPES,
    FIELDS,
    check_override,
    sample_fields,
)
from cryptomon.decimals import plain_decimal

log = structlog.get_logger()

Format = Literal["markdown", "text"]


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
    "signal": Template(
        title="[{priority}] {exchange} {symbol}: {grade} {side} signal ({source})",
        summary="{grade} {side} signal {strength:.2f} from {source}",
        lines=(
            ("Market", "{exchange} {symbol}"),
            ("Signal", "{side}, strength {strength:.2f}, grade {grade}"),
            ("Source", "{source}"),
            ("Reason", "{reason}"),
            ("Price", "{price}"),
            ("Time", "{time}"),
        ),
    ),
    "fill": Template(
        title="[{priority}] {exchange} {symbol}: {side} {amount} {unit} @ {price} {quote}",
        summary="fill {side} {amount} {unit} @ {price} {quote}",
        lines=(
            ("Market", "{exchange} {symbol}"),
            ("Fill", "{side} {amount} {unit} @ {price} {quote} ({liquidity})"),
            ("Fee", "{fee} {fee_currency}"),
            ("Order", "{client_order_id}"),
            ("Time", "{time}"),
        ),
    ),
    "exit": Template(
        title="[{priority}] {exchange} {symbol}: closed by {exit_kind}",
        summary="{exit_kind} {side} {amount} {unit} @ {avg_price} {quote}",
        lines=(
            ("Market", "{exchange} {symbol}"),
            ("Exit", "{exit_kind}: {side} {amount} {unit} @ {avg_price} {quote}"),
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


def format_for(
    url: str,
    configured: str = "auto",
    plugin_formats: Iterable[str] | None = None,
    plugin_schemes: Iterable[str] = (),
) -> Format:
    """The body format of a channel: its configured one, or by URL scheme for ``auto``.

    ``plugin_formats`` are the formats the channel's apprise plugin takes (its
    ``notify_format``): one that takes neither Markdown nor HTML gets plain text even for a
    chat scheme, since apprise would hand the Markdown over as it is (WeCom's bot sends a text
    message: the reader saw ``**Market:**`` and ``price\\_change``). ``plugin_schemes`` are
    the plugin's own schemes (:func:`plugin_schemes`): a service's native web address
    (``https://discord.com/api/webhooks/...``, ``https://hooks.slack.com/...``) is the chat
    service its plugin is, not a plain-text webhook."""
    if configured in ("markdown", "text"):
        return configured  # type: ignore[return-value]
    schemes = [scheme_of(url), *(str(s).lower() for s in plugin_schemes)]
    fmt = next((SCHEME_FORMATS[s] for s in schemes if s in SCHEME_FORMATS), DEFAULT_FORMAT)
    takes = None if plugin_formats is None else {str(f).lower() for f in plugin_formats}
    if fmt == "markdown" and takes is not None and not {"markdown", "html"} & takes:
        return "text"
    return fmt


def plugin_schemes(plugin: Any) -> list[str]:
    """The URL schemes of an apprise plugin (``protocol`` and ``secure_protocol``: one value
    or a tuple each), e.g. ``discord`` for a Discord plugin built from its https address."""
    out: list[str] = []
    for attr in ("secure_protocol", "protocol"):
        value = getattr(plugin, attr, None)
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, tuple | list):
            out.extend(str(v) for v in value)
    return out


def plugin_formats(plugin: Any) -> list[str]:
    """The body formats an apprise plugin takes (``notify_format``: one value or a tuple)."""
    formats = getattr(plugin, "notify_format", None)
    if formats is None:
        return []
    items = formats if isinstance(formats, tuple | list | set | frozenset) else (formats,)
    return [str(getattr(f, "value", f)) for f in items]


@dataclass(frozen=True, slots=True)
class Rendered:
    title: str
    body: str
    summary: str


def plain_number(value: float | Decimal, spec: str = "") -> str:
    """A number as people read it, never in exponent notation: ``1.23457e+06`` (a whale's
    notional through ``:g``) becomes ``1234568``, a Decimal ``1E-8`` becomes ``0.00000001``
    and ``65000.10000000`` becomes ``65000.1`` (a Decimal zero is ``0``, never ``-0``; its
    digits are all kept: :func:`cryptomon.decimals.plain_decimal`). ``spec`` is ``""`` or
    ``"g"``."""
    if isinstance(value, Decimal):
        return plain_decimal(value)
    if not math.isfinite(value):
        return str(value)
    text = f"{value:.6g}" if spec == "g" else repr(value)
    if "e" not in text:
        return text
    if spec == "g" and abs(value) >= 1:
        return f"{value:.0f}"
    return format(Decimal(text), "f")


MISSING = "-"
"""How a value an event does not have reads (a whale's z-score, a signal without a price)."""


class _PlainFormatter(string.Formatter):
    """``str.format`` whose numbers never come out in exponent notation (:func:`plain_number`)
    for an empty or ``g`` spec; every other spec (``.2f``, ``,.0f``, ...) is Python's own. A
    missing value (None, or the alert's ``-``) under a spec is ``-``: an override such as
    ``{z_score:.2f}``, checked against a number at load, must not fail on an event that has
    none (a whale has no z-score) and fall back to the built-in template."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        if format_spec and (value is None or (isinstance(value, str) and value == MISSING)):
            return MISSING
        if format_spec in ("", "g") and isinstance(value, float | Decimal):
            return plain_number(value, format_spec)
        return format(value, format_spec)


_FORMATTER = _PlainFormatter()


def _fmt(template: str, fields: Mapping[str, Any]) -> str:
    return _FORMATTER.vformat(template, (), fields)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>])")
_NOT_ESCAPED = frozenset({"link"})
"""A URL is written as the link's destination, not as text."""


def md_escape(text: str) -> str:
    """``text`` as literal CommonMark: ``__init__``, ``RSI*2`` or ``[15m]`` in a reason or a
    message stay as written instead of turning into emphasis or links (apprise converts the
    escapes to each chat service's own markup)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields with every text value escaped for Markdown (numbers keep their type)."""
    return {
        k: md_escape(v) if isinstance(v, str) and k not in _NOT_ESCAPED else v
        for k, v in fields.items()
    }


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
                return _fmt(title_ov, fields)
            except (ValueError, TypeError, KeyError, IndexError):
                pass  # render() logs it
        return _fmt(DEFAULTS[event_type].title, _Lenient(fields))

    def render(self, event_type: str, fields: Mapping[str, Any], fmt: Format) -> Rendered:
        tpl = DEFAULTS[event_type]
        title_ov, body_ov = self._overrides.get(event_type, (None, None))
        # titles are plain text everywhere; Markdown bodies (and digest lines) get escaped text
        text = _md_fields(fields) if fmt == "markdown" else fields
        summary = _fmt(tpl.summary, _Lenient(text))
        title = body = None
        try:  # overrides were checked at load; a None field may still not take a format spec
            title = _fmt(title_ov, fields) if title_ov else None
            body = _fmt(body_ov, text) if body_ov else None
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            log.warning("notify.template_failed", event_type=event_type, error=str(exc))
        if title is None:
            title = _fmt(tpl.title, _Lenient(fields))
        if body is None:
            body = _body(tpl.lines, text, fmt)
        return Rendered(title=title, body=body, summary=summary)


class _Lenient(dict[str, Any]):
    """Built-in templates never fail: a missing field renders as ``-``."""

    def __missing__(self, key: str) -> str:
        return "-"


def _body(lines: Sequence[tuple[str, str]], fields: Mapping[str, Any], fmt: Format) -> str:
    out: list[str] = []
    for label, value_tpl in lines:
        value = _fmt(value_tpl, _Lenient(fields)).strip()
        if not value or value in ("None", "None None"):
            continue
        out.append(f"**{label}:** {value}" if fmt == "markdown" else f"{label}: {value}")
    link = fields.get("link")
    if link:
        out.append(f"[Open in cryptomon]({link})" if fmt == "markdown" else f"Link: {link}")
    return "\n".join(out)


class DigestItem(NamedTuple):
    """One alert of a digest: ``rank`` is its severity's (higher first), ``kind`` what the
    count of the alerts left out groups it under."""

    priority: str
    time: str
    market: str
    rendered: Rendered
    kind: str
    rank: int


def render_digest(
    channel: str,
    items: Sequence[DigestItem],
    fmt: Format,
    window_s: float,
    *,
    max_items: int | None = None,
    max_chars: int | None = None,
) -> tuple[str, str]:
    """Title and body of a digest that lists at most ``max_items`` of ``items`` (the most
    severe, then the latest; shown in the order they came) and, when the body would pass
    ``max_chars``, fewer: one digest is one message of the service. The last line counts the
    alerts left out, by kind."""
    title = f"[digest] {len(items)} alerts for {channel} (rate limit reached)"
    head = f"{len(items)} alerts were collapsed into this digest over up to {window_s:g}s:"
    bullet = "- " if fmt == "markdown" else "* "
    esc = md_escape if fmt == "markdown" else str
    # most severe first, the latest first among equals
    order = sorted(range(len(items)), key=lambda i: (-items[i].rank, -i))
    keep = len(items) if max_items is None else min(max_items, len(items))
    while True:
        shown = sorted(order[:keep])
        lines = [f"**{head}**" if fmt == "markdown" else head]
        lines.extend(
            f"{bullet}{esc(f'[{it.priority}]')} {it.time} {esc(it.market)}: {it.rendered.summary}"
            for it in (items[i] for i in shown)
        )
        left = [items[i] for i in order[keep:]]
        if left:
            kinds = Counter(it.kind for it in left)
            by_kind = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items(), key=_by_count))
            lines.append(esc(f"... and {len(left)} more (by kind: {by_kind})"))
        body = "\n".join(lines)
        if max_chars is None or len(body) <= max_chars or keep == 0:
            return title, body
        keep -= 1


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]
