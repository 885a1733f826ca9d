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
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from cryptomon.events import Event
from cryptomon.hub.subscriptions import (
    BatchHandler,
    InlineHandler,
    InlineSubscription,
    Policy,
    QueuedSubscription,
    Subscription,
    Topic,
)

E = TypeVar("E", bound=Event)
_Route = tuple[Topic, tuple[Callable[[Any], None], ...], tuple["Subscription", ...]]


class Hub:
    """Synchronous publish, inline and queued subscribers, per-topic and per-subscriber stats."""

    def __init__(self) -> None:
        self._topics: dict[type[Event], Topic] = {}
        self._subs: list[Subscription] = []
        # Per event class: (topic, tuple of callables). Built lazily, invalidated on (un)subscribe.
        self._routes: dict[type, _Route] = {}
        self._started = False

    # ------------------------------------------------------------------ subscribing

    def topic(self, cls: type[Event]) -> Topic:
        t = self._topics.get(cls)
        if t is None:
            t = self._topics[cls] = Topic(cls.__name__)
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

    def publish_built(self, cls: type[E], build: Callable[..., E], *args: Any) -> None:
        """Publish ``build(*args)``, an event of class ``cls``, building it only when a
        subscriber takes ``cls``; counted as published either way. For an event that costs
        more to build than to route and that may have no reader (a position update after
        every fill and mark: the daemon's store and WebSocket read them, a backtest nothing)."""
        route = self._routes.get(cls)
        if route is None:
            route = self._route(cls)
        if route[1]:
            self.publish(build(*args))
        else:
            route[0].published += 1

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
