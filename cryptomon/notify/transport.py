"""The seam between a channel and the network, as httpx's ``MockTransport`` is for a client.

A :class:`~cryptomon.notify.delivery.AppriseSender` builds its apprise plugin from the
channel's URL (validation, secret scrubbing, timeouts) and hands every attempt to a
:class:`Transport`. The daemon uses :class:`AppriseTransport`, which lets apprise do its own
I/O; tests inject :class:`MockTransport` with a handler that decides each request's outcome
in-process, so routing, retries, timeouts and records are exercised without a socket.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class NotifyRequest:
    """One delivery attempt: the channel, its apprise plugin and the rendered message."""

    channel: str
    plugin: Any  # the apprise plugin built from the channel's URL
    title: str
    body: str
    body_format: str  # apprise.NotifyFormat value
    notify_type: str  # apprise.NotifyType value
    priority: str


class Transport(Protocol):
    """Sends one request; returns None when delivered, else why not (scrubbed by the caller)."""

    async def send(self, request: NotifyRequest) -> str | None: ...


class AppriseTransport:
    """The real transport: apprise's own service I/O (run in its worker threads)."""

    async def send(self, request: NotifyRequest) -> str | None:
        import apprise  # lazy: a daemon without channels never loads it

        notifier = apprise.Apprise()
        notifier.add(request.plugin)
        result = await notifier.async_notify(
            body=request.body,
            title=request.title,
            body_format=request.body_format,
            notify_type=request.notify_type,
        )
        if result:
            return None
        messages = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR")]
        return " | ".join(dict.fromkeys(messages)) or f"apprise status {result.status.name}"


Handler = Callable[[NotifyRequest], "str | Awaitable[str | None] | None"]


class MockTransport:
    """An in-process transport: ``handler(request)`` (plain or async) returns None for
    delivered or the failure reason; an exception it raises is a crashed delivery."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def send(self, request: NotifyRequest) -> str | None:
        outcome = self.handler(request)
        if inspect.isawaitable(outcome):
            return await outcome
        return outcome
