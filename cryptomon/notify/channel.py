"""One configured channel at run time: routing filter, spam-control state, outbox."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from cryptomon.config import ChannelConfig, problems_from
from cryptomon.errors import ConfigError, Problem
from cryptomon.events import Severity
from cryptomon.notify.alerts import Alert
from cryptomon.notify.delivery import MIN_SPLIT_BODY, AppriseSender
from cryptomon.notify.ratelimit import Deduper, QuietHours, TokenBucket
from cryptomon.notify.templates import (
    Format,
    Rendered,
    format_for,
    plugin_formats,
    plugin_schemes,
    scheme_of,
)

ROUTING_FIELDS = frozenset(
    {
        "min_severity",
        "kinds",
        "exchanges",
        "symbols",
        "events",
        "format",
        "rate_limit_per_min",
        "rate_limit_burst",
        "digest_interval_s",
        "quiet_hours",
        "quiet_hours_tz",
    }
)
"""What ``update_routing`` may change; never ``name`` or ``url``."""


DIGEST_TITLE_ROOM = 100
"""Characters kept for a digest's title on a service that puts it in the body."""
DIGEST_MARGIN = 64
"""Characters kept for what the service adds around the body (line ends, markup)."""


@dataclass(slots=True)
class Outgoing:
    """A message waiting for delivery on one channel."""

    title: str
    body: str
    priority: str
    event_type: str
    alert: Alert | None = None
    digest: list[tuple[Alert, Rendered]] = field(default_factory=list)


class ChannelState:
    """Routing and spam control of one channel; the router owns the worker task."""

    def __init__(
        self, cfg: ChannelConfig, *, sender: AppriseSender, dedup_window_s: float, now: float
    ) -> None:
        self.sender = sender
        self.dedup = Deduper(dedup_window_s)
        self.outbox: asyncio.Queue[Outgoing] = asyncio.Queue()
        self.digest: list[tuple[Alert, Rendered]] = []
        self.digest_due: float | None = None
        self.in_flight: Outgoing | None = None
        self.task: asyncio.Task[None] | None = None
        self.apply(cfg, now=now)

    def apply(self, cfg: ChannelConfig, *, now: float) -> None:
        """(Re)configure routing, format, bucket and quiet hours from ``cfg``."""
        self.cfg = cfg
        self.name = cfg.name
        plugin = self.sender.plugin
        self.format: Format = format_for(
            cfg.url.get_secret_value(), cfg.format, plugin_formats(plugin), plugin_schemes(plugin)
        )
        self.min_rank = Severity(cfg.min_severity).rank
        self.kinds = None if cfg.kinds is None else frozenset(cfg.kinds)
        self.exchanges = None if cfg.exchanges is None else frozenset(cfg.exchanges)
        self.symbols = None if cfg.symbols is None else frozenset(cfg.symbols)
        self.categories = frozenset(cfg.events)
        self.bucket = _rebuilt(getattr(self, "bucket", None), cfg, now)
        # Criticals (P0) have their own budget of the same size: they never spend the tokens
        # the other alerts and the digest need, and beyond it they are digested too.
        self.critical = _rebuilt(getattr(self, "critical", None), cfg, now)
        # messages that may wait for the channel (in flight included) before new alerts go to
        # its digest: both buckets' bursts and one in flight. A healthy channel never has more;
        # a dead or hung one collects one digest instead of a backlog of single alerts that
        # would go out one by one, hours stale, when it comes back
        self.backlog_cap = 2 * cfg.burst + 1
        self.quiet = QuietHours(cfg.quiet_hours, cfg.quiet_hours_tz) if cfg.quiet_hours else None

    @property
    def digest_max_chars(self) -> int | None:
        """The body size one digest may have to go out as one message of the service
        (Telegram 4096 characters, its title included: it has none of its own); None for a
        service with no useful limit and for SMS-sized ones (those truncate, see delivery)."""
        plugin = self.sender.plugin
        size = int(getattr(plugin, "body_maxlen", 0) or 0)
        if size < MIN_SPLIT_BODY:
            return None
        if int(getattr(plugin, "title_maxlen", 0) or 0) <= 0:  # the title goes in the body
            size -= DIGEST_TITLE_ROOM
        return size - DIGEST_MARGIN

    def validated_update(self, fields: dict[str, Any]) -> ChannelConfig:
        """This channel's config with ``fields`` changed; ConfigError per bad field. Only
        :data:`ROUTING_FIELDS` may change (never ``name`` or ``url``)."""
        where = f"alerts.channels.{self.name}"
        bad = sorted(set(fields) - ROUTING_FIELDS)
        if bad:
            allowed = ", ".join(sorted(ROUTING_FIELDS))
            raise ConfigError(
                [
                    Problem(
                        f"{where}.{k}",
                        "***" if k == "url" else fields[k],
                        f"a routing field ({allowed}); name and url come from config only",
                    )
                    for k in bad
                ]
            )
        try:
            return ChannelConfig.model_validate({**self.cfg.model_dump(), **fields})
        except ValidationError as exc:
            raise ConfigError(
                [Problem(f"{where}.{p.path}", p.value, p.expected) for p in problems_from(exc)]
            ) from None

    def accepts(self, alert: Alert) -> bool:
        """The channel's routing filter (min_severity, events, kinds, exchanges, symbols)."""
        if alert.category not in self.categories or alert.severity.rank < self.min_rank:
            return False
        if alert.category == "anomaly" and self.kinds is not None and alert.kind not in self.kinds:
            return False
        if alert.exchange and self.exchanges is not None and alert.exchange not in self.exchanges:
            return False
        return not (alert.symbol and self.symbols is not None and alert.symbol not in self.symbols)

    def behind(self) -> bool:
        """The channel has all the messages it may have waiting (see ``backlog_cap``)."""
        return self.pending() >= self.backlog_cap

    def pending(self) -> int:
        return self.outbox.qsize() + (1 if self.in_flight is not None else 0)

    def redacted(self) -> dict[str, Any]:
        c = self.cfg
        return {
            "name": c.name,
            "url": self.sender.redacted_url,
            "scheme": scheme_of(c.url.get_secret_value()),
            "format": self.format,
            "format_setting": c.format,
            "min_severity": c.min_severity,
            "events": list(c.events),
            "kinds": c.kinds,
            "exchanges": c.exchanges,
            "symbols": c.symbols,
            "rate_limit_per_min": c.rate_limit_per_min,
            "rate_limit_burst": c.burst,
            "digest_interval_s": c.digest_interval_s,
            "quiet_hours": c.quiet_hours,
            "quiet_hours_tz": c.quiet_hours_tz,
        }


def _rebuilt(old: TokenBucket | None, cfg: ChannelConfig, now: float) -> TokenBucket:
    """A bucket for ``cfg`` that keeps what ``old`` had already spent."""
    bucket = TokenBucket(rate_per_min=cfg.rate_limit_per_min, burst=cfg.burst, now=now)
    if old is not None:
        spent = old.burst - old.available(now)
        bucket._tokens = max(0.0, min(bucket.burst, bucket.burst - spent))
    return bucket
