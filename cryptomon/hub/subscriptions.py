"""The two kinds of hub subscriber: inline (called inside ``publish``) and queued (a bounded
deque drained in batches by its own task), with their filters, error accounting and stats."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

import structlog

from cryptomon.events import Event

log = structlog.get_logger()

InlineHandler = Callable[[Any], None]
BatchHandler = Callable[[list[Any]], Awaitable[None]]
Policy = Literal["drop_oldest", "never_drop"]

_ERROR_LOG_INTERVAL_S = 10.0


class SubscriptionOwner(Protocol):
    """What a subscription needs of its hub: topic counters and leaving it."""

    def topic(self, cls: type[Event]) -> Topic: ...

    def unsubscribe(self, sub: Subscription) -> None: ...


class Topic:
    """Counter of one event class."""

    __slots__ = ("name", "published")

    def __init__(self, name: str) -> None:
        self.name = name
        self.published = 0


class Subscription:
    """Common part of both subscriber kinds: identity, filters and error accounting."""

    kind: str = ""

    def __init__(
        self,
        hub: SubscriptionOwner,
        name: str,
        types: tuple[type[Event], ...],
        exchanges: frozenset[str] | None,
        symbols: frozenset[str] | None,
    ) -> None:
        self.hub = hub
        self.name = name
        self.types = types
        self.exchanges = exchanges
        self.symbols = symbols
        self.errors = 0
        self._filtered_delivered = 0
        self._last_error_log = -1e18
        self._suppressed = 0
        self.closed = False

    @property
    def filtered(self) -> bool:
        return self.exchanges is not None or self.symbols is not None

    def matches(self, event: Event) -> bool:
        if self.exchanges is not None and event.exchange not in self.exchanges:
            return False
        return self.symbols is None or event.symbol in self.symbols

    def record_error(self, exc: BaseException, event: object) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._last_error_log >= _ERROR_LOG_INTERVAL_S:
            log.error(
                "hub.subscriber_error",
                subscriber=self.name,
                event_type=type(event).__name__,
                error=repr(exc),
                suppressed=self._suppressed,
                exc_info=exc,
            )
            self._last_error_log = now
            self._suppressed = 0
        else:
            self._suppressed += 1

    def close(self) -> None:
        """Stop receiving events."""
        self.hub.unsubscribe(self)

    def stats(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "topics": [t.__name__ for t in self.types],
            "delivered": self.delivered,
            "errors": self.errors,
        }

    @property
    def delivered(self) -> int:
        return self._filtered_delivered


class InlineSubscription(Subscription):
    kind = "inline"

    def __init__(self, *args: Any, handler: InlineHandler, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handler = handler
        # Topic counters at subscribe time: delivered = published since then (unfiltered).
        self._base: dict[type[Event], int] = {}

    @property
    def delivered(self) -> int:
        if self.filtered:
            return self._filtered_delivered
        return sum(self.hub.topic(t).published - b for t, b in self._base.items())

    def __call__(self, event: Event) -> None:
        """Filtered delivery; only used for subscriptions with filters."""
        if self.matches(event):
            self._filtered_delivered += 1
            self.handler(event)


class QueuedSubscription(Subscription):
    kind = "queued"

    def __init__(
        self,
        *args: Any,
        handler: BatchHandler,
        policy: Policy,
        maxsize: int,
        batch_size: int,
        high_water: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if maxsize < 1:
            raise ValueError(f"queued subscriber {self.name!r}: maxsize must be >= 1")
        self.handler = handler
        self.policy = policy
        self.maxsize = maxsize
        self.batch_size = max(1, batch_size)
        self.high_water = high_water
        self.queue: deque[Event] = deque()
        self.dropped = 0
        self.max_depth = 0
        self.enqueued = 0
        self._above_high_water = False
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def put(self, event: Event) -> None:
        if not self.matches(event):
            return
        q = self.queue
        if self.policy == "drop_oldest" and len(q) >= self.maxsize:
            q.popleft()
            self.dropped += 1
        q.append(event)
        self.enqueued += 1
        depth = len(q)
        self.max_depth = max(self.max_depth, depth)
        if self.policy == "never_drop":
            if depth >= self.high_water and not self._above_high_water:
                self._above_high_water = True
                log.warning("hub.queue_high_water", subscriber=self.name, depth=depth)
            elif depth < self.high_water // 2:
                self._above_high_water = False
        if not self._wakeup.is_set():
            self._idle.clear()
            self._wakeup.set()

    def start(self) -> None:
        if self._task is None and not self.closed:
            self._task = asyncio.get_running_loop().create_task(
                self._drain(), name=f"hub-subscriber:{self.name}"
            )

    async def _drain(self) -> None:
        q = self.queue
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while q:
                n = min(len(q), self.batch_size)
                batch = [q.popleft() for _ in range(n)]
                try:
                    await self.handler(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.record_error(exc, batch[0])
                self._filtered_delivered += n
            self._idle.set()

    async def join(self) -> None:
        """Wait until everything queued so far was handed to the handler."""
        while self.queue or not self._idle.is_set():
            if self._task is None or self._task.done():
                return
            await self._idle.wait()

    async def stop(self, timeout: float) -> None:
        """Drain what is queued (up to ``timeout`` seconds), then end the task."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self.join(), timeout)
        except TimeoutError:
            log.warning("hub.drain_timeout", subscriber=self.name, left=len(self.queue))
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        out.update(
            policy=self.policy,
            dropped=self.dropped,
            depth=len(self.queue),
            max_depth=self.max_depth,
            maxsize=self.maxsize if self.policy == "drop_oldest" else None,
        )
        return out
