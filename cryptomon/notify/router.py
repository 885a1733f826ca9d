"""The notifier component: hub events -> alerts -> channels -> apprise, off the hot path.

Flow per alert and matching channel: quiet hours (only P0 passes) -> dedup by
(exchange, symbol, kind) within ``dedup_window_s`` -> token bucket (P0 has its own bucket of
the same size, so a flood of criticals is bounded too and never delays the digest) -> send, or
collapse into the channel's digest, flushed once per ``digest_interval_s`` when a token is
available; a digest that cannot be delivered records each of its alerts as failed. Each
channel has its own outbox and worker task, so a dead channel only delays itself. Every
outcome is published as a :class:`~cryptomon.events.NotificationRecord` (sent / failed /
suppressed / digested).

Time comes from the injected clock, except the shutdown budget (``stop_timeout_s``), which is
real time because it bounds the process's own exit. In a replay (``event_time``) the windows
that describe the market (dedup, the digest interval, quiet hours) follow the recording's time
instead (:class:`RoutingTime`); the token buckets stay on the clock: they pace real messages
to real services, however fast the recording plays.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import structlog

from cryptomon.clock import Clock
from cryptomon.config import AlertsConfig, ChannelConfig
from cryptomon.errors import ConfigError, Problem
from cryptomon.events import (
    Anomaly,
    Event,
    FeedStatus,
    Fill,
    Notice,
    OrderIntent,
    OrderUpdate,
    RiskEvent,
    Signal,
)
from cryptomon.hub import Hub, QueuedSubscription
from cryptomon.notify.alerts import Alert, AlertBuilder
from cryptomon.notify.channel import ChannelState, Outgoing
from cryptomon.notify.delivery import AppriseSender, InvalidChannelURL
from cryptomon.notify.dispatch import Dispatcher
from cryptomon.notify.feedwatch import FeedWatch
from cryptomon.notify.records import Recorder
from cryptomon.notify.templates import Rendered, Renderer
from cryptomon.notify.transport import Transport
from cryptomon.tasks import cancel_and_wait

log = structlog.get_logger()

TOPICS: tuple[type[Event], ...] = (
    Anomaly,
    Signal,
    OrderIntent,
    OrderUpdate,
    Fill,
    RiskEvent,
    FeedStatus,
    Notice,
)


class UnknownChannelError(ValueError):
    """A channel name that is not configured; ``valid`` lists the configured names."""

    def __init__(self, name: str, valid: Sequence[str]) -> None:
        self.name = name
        self.valid = list(valid)
        names = ", ".join(self.valid) or "(none configured)"
        super().__init__(f"unknown channel {name!r}; configured channels: {names}")


STOP_MARGIN_S = 0.1
"""Kept from the App's stop budget to record the undelivered messages as failed."""


class RoutingTime:
    """The time axis of the router's windows: dedup, the digest interval, quiet hours.

    Live: the injected clock. With ``event_time`` (a replay): the recorded market's time, the
    latest anomaly's own ``ts`` (never backwards), so a recording of hours played in seconds is
    deduplicated and digested as the live daemon would have on that market; until the first
    anomaly it stands at 0 on the monotonic axis and at the clock for quiet hours. Alerts that
    are not anomalies (notices, feed status, orders) are routed at the market time reached.
    The channels' token buckets never use it (see :class:`NotificationRouter`)."""

    __slots__ = ("_clock", "_now", "event_time")

    def __init__(self, clock: Clock, *, event_time: bool) -> None:
        self._clock = clock
        self.event_time = event_time
        self._now: float | None = None

    def see(self, alert: Alert) -> None:
        """An alert is routed: an anomaly moves the market time to its ``ts``."""
        if self.event_time and alert.category == "anomaly":
            now = self._now
            if now is None or alert.ts > now:
                self._now = alert.ts

    def monotonic(self) -> float:
        if not self.event_time:
            return self._clock.monotonic()
        return 0.0 if self._now is None else self._now

    def time(self) -> float:
        if not self.event_time or self._now is None:
            return self._clock.time()
        return self._now


class NotificationRouter:
    """Queued (never_drop) hub subscriber that routes alerts to apprise channels."""

    name = "notifier"

    def __init__(
        self,
        *,
        hub: Hub,
        clock: Clock,
        config: AlertsConfig,
        transport: Transport | None = None,
        event_time: bool = False,
        links: bool = True,
    ) -> None:
        """``transport`` carries every channel's messages (apprise's own I/O by default).
        ``event_time``: the events are a replay's (see :class:`RoutingTime`). ``links``:
        the daemon serves its API, so messages link to it (else a link would point at a
        port nobody listens on)."""
        self.links = links
        self.hub = hub
        self.transport = transport
        self.clock = clock
        self.routing_time = RoutingTime(clock, event_time=event_time)
        self.config = config
        # set by the App before stop(): the share of shutdown_timeout_s this stop may take
        # (the store writer after it keeps its own); None: alerts.stop_timeout_s alone
        self.stop_budget_s: float | None = None
        self.builder = AlertBuilder(api_base_url=config.api_base_url if links else "")
        self.renderer = Renderer(config.templates)
        self.feeds = FeedWatch(config.feed_down_after_s)
        self.channels: dict[str, ChannelState] = {}
        problems: list[Problem] = []
        for i, cfg in enumerate(config.channels):
            try:
                sender = self._sender(cfg)
            except InvalidChannelURL as exc:
                problems.append(Problem(f"alerts.channels.{i}.url", "***", str(exc)))
                continue
            self.channels[cfg.name] = ChannelState(
                cfg, sender=sender, dedup_window_s=config.dedup_window_s, now=clock.monotonic()
            )
        if problems:
            raise ConfigError(problems)
        self.records = Recorder(hub=hub, clock=clock)
        self.dispatch = Dispatcher(
            channels=self.channels, records=self.records, clock=clock, renderer=self.renderer
        )
        self._sub: QueuedSubscription | None = None
        self._ticker: asyncio.Task[None] | None = None

    def _sender(self, cfg: ChannelConfig) -> AppriseSender:
        c = self.config
        return AppriseSender(
            name=cfg.name,
            url=cfg.url.get_secret_value(),
            clock=self.clock,
            attempt_timeout_s=c.attempt_timeout_s,
            retries=c.retries,
            retry_backoff_s=c.retry_backoff_s,
            retry_backoff_cap_s=c.retry_backoff_cap_s,
            transport=self.transport,
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.dispatch.start()
        if self.config.enabled:
            self._sub = self.hub.subscribe_queued(
                TOPICS, self._on_batch, name=self.name, policy="never_drop", batch_size=500
            )
            self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())
        log.info(
            "notify.started",
            enabled=self.config.enabled,
            channels=[c.redacted()["url"] for c in self.channels.values()],
        )

    async def stop(self) -> None:
        """Route what the hub still holds, flush digests, deliver within ``stop_timeout_s``;
        whatever is left is recorded as failed."""
        budget = self.config.stop_timeout_s
        if self.stop_budget_s is not None:  # finish (and record what is left) in time
            budget = max(0.0, min(budget, self.stop_budget_s - STOP_MARGIN_S))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        if self._sub is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sub.join(), budget)
            self._sub.close()
            leftover = list(self._sub.queue)  # routing never awaits: safe to finish here
            self._sub.queue.clear()
            self._sub = None
            await self._on_batch(leftover)
        await cancel_and_wait(self._ticker)
        self._ticker = None
        await self.dispatch.drain(deadline - loop.time())

    # ------------------------------------------------------------------ intake

    async def _on_batch(self, events: list[Event]) -> None:
        now_m, now = self.clock.monotonic(), self.clock.time()
        for event in events:
            try:
                if isinstance(event, FeedStatus):
                    for down, since in self.feeds.on_status(event, now_m, now):
                        self.route(self.builder.feed_recovered(down, since, now))
                    continue
                alert = self.builder.build(event)
                if alert is not None:
                    self.route(alert)
            except Exception as exc:  # one bad event must not lose the rest of the batch
                log.error("notify.event_failed", event_type=type(event).__name__, error=repr(exc))

    def route(self, alert: Alert) -> None:
        """Decide, per matching channel: suppress, send, or collapse into the digest.

        Cheap checks first; rendering happens once per format, and suppressed alerts are
        recorded with their title only. Dedup, digest and quiet hours on
        :attr:`routing_time`, the token buckets on the clock."""
        self.routing_time.see(alert)
        now_m, now = self.routing_time.monotonic(), self.routing_time.time()
        wall_m = self.clock.monotonic()
        for key in alert.clears:  # in every channel, whether or not this alert reaches it
            for ch in self.channels.values():
                ch.dedup.forget(key)
        rendered: dict[str, Rendered] = {}
        title = dup_why = ""
        for ch in self.channels.values():
            if not ch.accepts(alert):
                continue
            why = ""
            if ch.quiet is not None and alert.priority != "P0" and ch.quiet.active(now):
                why = "quiet hours"
            elif not ch.dedup.admit(alert.dedup_key, alert.severity.rank, now_m):
                why = dup_why or self._dup_why(alert)
                dup_why = why
            if why:
                title = title or self.renderer.title(alert.event_type, alert.fields)
                self.records.alert(ch.name, alert, "suppressed", title, "", error=why)
                continue
            r = rendered.get(ch.format)
            if r is None:
                r = rendered[ch.format] = self.renderer.render(
                    alert.event_type, alert.fields, ch.format
                )
            if not ch.behind() and self._token(ch, alert, wall_m):
                ch.outbox.put_nowait(
                    Outgoing(r.title, r.body, alert.priority, alert.event_type, alert)
                )
            else:
                if not ch.digest:
                    ch.digest_due = now_m + ch.cfg.digest_interval_s
                ch.digest.append((alert, r))

    def _dup_why(self, alert: Alert) -> str:
        key = "/".join(alert.dedup_key or ())
        return f"duplicate of {key} within {self.config.dedup_window_s:g}s"

    # ------------------------------------------------------------------ timers

    async def _tick_loop(self) -> None:
        while True:
            await self.clock.sleep(self.config.tick_s)
            try:
                self.tick()
            except Exception as exc:
                log.error("notify.tick_failed", error=repr(exc))

    def tick(self) -> None:
        """Report feeds down long enough; flush due digests that have a token (not during the
        channel's quiet hours, unless the digest holds a P0: those pass quiet hours).
        Feeds and tokens on the clock; digests' due times and quiet hours on
        :attr:`routing_time`."""
        for status, since, down_for in self.feeds.due(self.clock.monotonic()):
            self.route(self.builder.feed_down(status, since, since + down_for))
        now_m, now = self.routing_time.monotonic(), self.routing_time.time()
        wall_m = self.clock.monotonic()
        for ch in self.channels.values():
            due = ch.digest_due
            quiet = (  # held until quiet hours end, unless criticals are waiting in it
                ch.quiet is not None
                and ch.quiet.active(now)
                and not any(a.priority == "P0" for a, _ in ch.digest)
            )
            ready = ch.digest and due is not None and now_m >= due and not quiet
            ready = ready and not ch.behind()  # a channel still catching up: the digest waits
            if ready and self._digest_token(ch, wall_m):
                self.dispatch.flush_digest(ch)
            ch.dedup.prune(now_m)

    @staticmethod
    def _token(ch: ChannelState, alert: Alert, now_m: float) -> bool:
        """Whether ``alert`` may go out alone now: a critical from its own budget; others
        from the channel's, unless a digest is already collecting."""
        if alert.priority == "P0":
            return ch.critical.take(now_m)
        return not ch.digest and ch.bucket.take(now_m)

    @staticmethod
    def _digest_token(ch: ChannelState, now_m: float) -> bool:
        """A token for the digest: the channel's, or the critical budget's when it holds a P0."""
        if ch.bucket.take(now_m):
            return True
        return any(a.priority == "P0" for a, _ in ch.digest) and ch.critical.take(now_m)

    # ------------------------------------------------------------------ for the API and CLI

    def channels_redacted(self) -> list[dict[str, Any]]:
        """Every channel with its routing and a redacted URL (never the secret)."""
        return [ch.redacted() for ch in self.channels.values()]

    def _channel(self, name: str) -> ChannelState:
        ch = self.channels.get(name)
        if ch is None:
            raise UnknownChannelError(name, list(self.channels))
        return ch

    def update_routing(self, name: str, **fields: Any) -> dict[str, Any]:
        """Change routing/rate fields of one channel (validated; never name or URL).

        Raises :class:`UnknownChannelError` or :class:`ConfigError` (one problem per field).
        """
        ch = self._channel(name)
        cfg = ch.validated_update(fields)
        ch.apply(cfg, now=self.clock.monotonic())
        log.info("notify.routing_updated", channel=name, fields=sorted(fields))
        return ch.redacted()

    def reload(self, config: AlertsConfig) -> None:
        """The config file was read again. Every channel that keeps its name and URL takes the
        file's settings (API routing changes are reset); the templates, ``dedup_window_s``,
        the delivery settings (``attempt_timeout_s``, ``retries``, the backoff),
        ``api_base_url``, ``feed_down_after_s``, ``tick_s`` and ``stop_timeout_s`` apply at
        once. What needs a restart (:meth:`needs_restart`) is left as it runs."""
        now = self.clock.monotonic()
        kept = []
        for cfg in config.channels:
            ch = self.channels.get(cfg.name)
            if ch is not None and ch.cfg.url == cfg.url:
                ch.apply(cfg, now=now)
                kept.append(cfg.name)
        self.config = config.model_copy(update={"enabled": self.config.enabled})
        self.builder.set_api_base_url(config.api_base_url if self.links else "")
        self.renderer = self.dispatch.renderer = Renderer(config.templates)
        self.feeds.after_s = config.feed_down_after_s
        for ch in self.channels.values():
            ch.dedup.window_s = config.dedup_window_s
            ch.sender.configure(
                attempt_timeout_s=config.attempt_timeout_s,
                retries=config.retries,
                retry_backoff_s=config.retry_backoff_s,
                retry_backoff_cap_s=config.retry_backoff_cap_s,
            )
        log.info("notify.reloaded", channels=kept)

    async def send_test(self, channel: str | None = None) -> dict[str, dict[str, Any]]:
        """Send one test message (one attempt) to ``channel`` or to every channel."""
        targets = [self._channel(channel)] if channel is not None else list(self.channels.values())
        return await self.dispatch.send_test(targets)

    def stats(self) -> dict[str, Any]:
        """Counters for ``/metrics``: records by channel and status, queue depths, digests."""
        by_channel: dict[str, dict[str, int]] = {}
        for (channel, status), n in self.records.counts.items():
            by_channel.setdefault(channel, {})[status] = n
        sub = self._sub
        return {
            "enabled": self.config.enabled,
            "notifications": by_channel,
            "queue_depth": len(sub.queue) if sub is not None else 0,
            "outbox": {n: ch.pending() for n, ch in self.channels.items()},
            "digest_pending": {n: len(ch.digest) for n, ch in self.channels.items()},
            "feeds_down": self.feeds.down,
        }
