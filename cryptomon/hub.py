"""In-process pub/sub (DESIGN.md sections 1, 3.5, 6).

Topics are event classes. ``publish`` is synchronous and never blocks the loop.

Two kinds of subscriber:

- **inline** handlers run inside ``publish``. For CPU-light in-loop consumers (detectors).
  Cost per event and subscriber is one Python call; statistics for unfiltered inline
  subscribers are derived from the topic counter so the hot path does no bookkeeping.
- **queued** subscribers own a bounded deque and a task that hands them batches
  (``async handler(list[Event])``). For I/O consumers (store writer, WebSocket clients,
  notifications). Overflow policy per subscription: ``drop_oldest`` (counted) or
  ``never_drop`` (unbounded; a warning each time depth crosses the high-water mark).

A raising handler is counted and logged (rate-limited); it never stops the other
subscribers or the publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

import structlog

from cryptomon.events import Event

log = structlog.get_logger()

InlineHandler = Callable[[Any], None]
BatchHandler = Callable[[list[Any]], Awaitable[None]]
Policy = Literal["drop_oldest", "never_drop"]

_ERROR_LOG_INTERVAL_S = 10.0


class _Topic:
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
        hub: Hub,
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


_Route = tuple[_Topic, tuple[Callable[[Any], None], ...], tuple["Subscription", ...]]


class Hub:
    """Synchronous publish, inline and queued subscribers, per-topic and per-subscriber stats."""

    def __init__(self) -> None:
        self._topics: dict[type[Event], _Topic] = {}
        self._subs: list[Subscription] = []
        # Per event class: (topic, tuple of callables). Built lazily, invalidated on (un)subscribe.
        self._routes: dict[type, _Route] = {}
        self._started = False

    # ------------------------------------------------------------------ subscribing

    def topic(self, cls: type[Event]) -> _Topic:
        t = self._topics.get(cls)
        if t is None:
            t = self._topics[cls] = _Topic(cls.__name__)
        return t

    def subscribe(
        self,
        types: type[Event] | Iterable[type[Event]],
        handler: InlineHandler,
        *,
        name: str | None = None,
        exchanges: Iterable[str] | None = None,
        symbols: Iterable[str] | None = None,
    ) -> InlineSubscription:
        """Call ``handler(event)`` inside ``publish`` for every matching event."""
        tys = _as_types(types)
        sub = InlineSubscription(
            self,
            name or _name_of(handler),
            tys,
            _as_set(exchanges),
            _as_set(symbols),
            handler=handler,
        )
        sub._base = {t: self.topic(t).published for t in tys}
        self._add(sub)
        return sub

    def subscribe_queued(
        self,
        types: type[Event] | Iterable[type[Event]],
        handler: BatchHandler,
        *,
        name: str,
        policy: Policy,
        maxsize: int = 10_000,
        batch_size: int = 500,
        high_water: int = 100_000,
        exchanges: Iterable[str] | None = None,
        symbols: Iterable[str] | None = None,
    ) -> QueuedSubscription:
        """Queue matching events; a task hands them to ``await handler(batch)`` in order.

        ``policy="drop_oldest"`` bounds the queue at ``maxsize`` and counts drops;
        ``policy="never_drop"`` never drops and warns when depth reaches ``high_water``.
        """
        if policy not in ("drop_oldest", "never_drop"):
            raise ValueError(f"unknown overflow policy {policy!r}: use drop_oldest or never_drop")
        sub = QueuedSubscription(
            self,
            name,
            _as_types(types),
            _as_set(exchanges),
            _as_set(symbols),
            handler=handler,
            policy=policy,
            maxsize=maxsize,
            batch_size=batch_size,
            high_water=high_water,
        )
        self._add(sub)
        if self._started:
            sub.start()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
            sub.closed = True
            self._invalidate()
            if isinstance(sub, QueuedSubscription) and sub._task is not None:
                sub._task.cancel()
                sub._task = None

    def _add(self, sub: Subscription) -> None:
        self._subs.append(sub)
        self._invalidate()

    def _invalidate(self) -> None:
        self._routes.clear()

    def _route(self, cls: type) -> _Route:
        calls: list[tuple[Subscription, Callable[[Any], None]]] = []
        for sub in self._subs:
            if not any(issubclass(cls, t) for t in sub.types):
                continue
            if isinstance(sub, QueuedSubscription):
                calls.append((sub, sub.put))
            elif isinstance(sub, InlineSubscription):
                calls.append((sub, sub if sub.filtered else sub.handler))
        route = (self.topic(cls), tuple(c for _, c in calls), tuple(s for s, _ in calls))
        self._routes[cls] = route
        return route

    # ------------------------------------------------------------------ publishing

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every matching subscriber. Never raises, never blocks."""
        cls = event.__class__
        route = self._routes.get(cls)
        if route is None:
            route = self._route(cls)
        topic, calls, subs = route
        topic.published += 1
        for call in calls:
            try:
                call(event)
            except Exception as exc:  # isolation is the point: count, log, go on
                subs[calls.index(call)].record_error(exc, event)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._started = True
        for sub in self._subs:
            if isinstance(sub, QueuedSubscription):
                sub.start()

    async def stop(self, timeout: float = 5.0) -> None:
        """Drain every queued subscriber (each within ``timeout``), then stop their tasks."""
        self._started = False
        queued = [s for s in self._subs if isinstance(s, QueuedSubscription)]
        await asyncio.gather(*(s.stop(timeout) for s in queued))

    async def join(self) -> None:
        """Wait until every queued subscriber has handled what was queued so far."""
        for sub in list(self._subs):
            if isinstance(sub, QueuedSubscription):
                await sub.join()

    # ------------------------------------------------------------------ stats

    def stats(self) -> dict[str, Any]:
        """Per topic and per subscriber counters, for ``/metrics`` and ``/api/v1/status``."""
        topics = {t.name: {"published": t.published} for t in self._topics.values()}
        subs: dict[str, Any] = {}
        for sub in self._subs:
            key = sub.name
            n = 2
            while key in subs:
                key = f"{sub.name}#{n}"
                n += 1
            subs[key] = sub.stats()
        return {"topics": topics, "subscribers": subs}


def _as_types(types: type[Event] | Iterable[type[Event]]) -> tuple[type[Event], ...]:
    if isinstance(types, type):
        return (types,)
    out = tuple(types)
    if not out:
        raise ValueError("subscribe needs at least one event type")
    return out


def _as_set(values: Iterable[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


def _name_of(handler: Callable[..., Any]) -> str:
    return getattr(handler, "__qualname__", None) or type(handler).__name__
