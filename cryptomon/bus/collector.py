"""The collector role's publisher: market data from the hub onto JetStream.

Inline hub handlers append each market data event to its ``(exchange, symbol)`` list; one
``loop.call_soon`` per event-loop turn (``call_later(bus.batch_linger_s)`` when set) encodes
every list as one columnar batch
(:mod:`cryptomon.bus.codec`) with the next sequence number and queues it. A sender task
publishes the queue in order, ``publish_concurrency`` acknowledged publishes at a time, each
with ``Nats-Msg-Id: <collector_id>:<seq>`` so a batch sent again after a reconnect is stored
once (the stream's duplicate window).

While NATS is away the queue keeps at most ``buffer_max_batches`` batches: beyond that the
oldest market data batch is dropped and counted (``dropped_batches``, ``dropped_events``).
Instrument specs travel in a separate list that is never dropped (zlib-compressed when their
JSON exceeds the server's ``max_payload``); health is the latest state
only (core NATS, skipped while disconnected), sent every ``health_interval_s`` and at once
when a brain asks (``<prefix>.health_request``, as it starts).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext

from cryptomon.bus import subjects
from cryptomon.bus.codec import TRANSPORTED, encode
from cryptomon.bus.connect import connect, ensure_streams, redeclare_streams
from cryptomon.clock import Clock
from cryptomon.config import BusConfig
from cryptomon.events import Event
from cryptomon.hub import Hub
from cryptomon.tasks import cancel_and_wait

log = structlog.get_logger()

_PUBLISH_TIMEOUT_S = 5.0
_RETRY_S = 0.2
_DEFAULT_MAX_PAYLOAD = 1024 * 1024  # nats-server's default, before the first connection
_HEADER_ROOM = 1024  # Nats-Msg-Id and the other headers travel within max_payload


@dataclass(slots=True)
class Outgoing:
    """One message waiting to be published."""

    subject: str
    msg_id: str
    payload: bytes
    events: int  # market data events inside (0: not market data, never dropped)


class CollectorPublisher:
    """See the module docstring."""

    name = "bus-collector"

    def __init__(
        self,
        *,
        config: BusConfig,
        hub: Hub,
        clock: Clock,
        health: Callable[[], dict[str, Any]],
        instruments: Callable[[], dict[str, list[dict[str, Any]]]] | None = None,
        markets: Callable[[], Mapping[str, Collection[str]] | None] | None = None,
    ) -> None:
        self.config = config
        self.hub = hub
        self.clock = clock
        self.health_source = health
        self.instruments = instruments
        self.markets = markets  # exchange -> symbols the feeds watch, carried by the health
        self.collector = config.collector_id
        # this process: a brain seeing two instances under one collector_id warns (their
        # message ids can meet, and the stream drops the later batch as a duplicate)
        self.instance = uuid.uuid4().hex[:12]
        self.seq = 0
        self.control_seq = 0
        self.queue: deque[Outgoing] = deque()
        self.control: deque[Outgoing] = deque()  # instrument specs: never dropped
        self.stats_counts = dict.fromkeys(
            (
                "published_batches",
                "published_events",
                "dropped_batches",
                "dropped_events",
                "publish_errors",
            ),
            0,
        )
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self._pending: dict[tuple[str, str], list[Event]] = {}
        self._scheduled = False
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[Any] = []

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.nc = await connect(self.config, name=f"cryptomon-{self.collector}")
        self.js = self.nc.jetstream(timeout=_PUBLISH_TIMEOUT_S)
        await ensure_streams(self.js, self.config)
        # sequences continue across restarts (microseconds of the start time): a restarted
        # collector never reuses a Nats-Msg-Id that the stream would drop as a duplicate
        self.seq = max(self.seq, int(self.clock.time() * 1_000_000))
        self.control_seq = self.seq
        self.queue_instruments()
        self._subs = [
            self.hub.subscribe(cls, self.on_event, name=f"bus-collector.{cls.__name__}")
            for cls in TRANSPORTED
        ]
        # a brain that starts asks: its webhooks need the markets before the next report
        await self.nc.subscribe(
            subjects.health_request(self.config.subject_prefix), cb=self._on_health_request
        )
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._send_loop(), name="bus-collector-send"),
            loop.create_task(self._health_loop(), name="bus-collector-health"),
        ]
        log.info("bus.collector_started", collector=self.collector, url=self.config.nats_url)

    async def stop(self) -> None:
        for sub in self._subs:
            self.hub.unsubscribe(sub)
        self._subs = []
        self.flush()
        # what can still go out does (bounded by the app's shutdown timeout), then close
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._drain(), timeout=max(1.0, _PUBLISH_TIMEOUT_S))
        for task in self._tasks:
            await cancel_and_wait(task)
        self._tasks = []
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
        log.info("bus.collector_stopped", collector=self.collector, **self.stats())

    async def _drain(self) -> None:
        while (self.queue or self.control) and self.connected:
            await self._send_some()

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    # ------------------------------------------------------------------ hot path

    def on_event(self, event: Event) -> None:
        key = (event.exchange, event.symbol)
        pending = self._pending.get(key)
        if pending is None:
            self._pending[key] = [event]
        else:
            pending.append(event)
        if not self._scheduled:
            self._scheduled = True
            linger = self.config.batch_linger_s
            if linger:
                asyncio.get_running_loop().call_later(linger, self.flush)
            else:
                asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Encode this loop turn's events, one batch per symbol, and queue them."""
        self._scheduled = False
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        prefix = self.config.subject_prefix
        sent = self.clock.time()
        for (exchange, symbol), events in pending.items():
            self._batch(subjects.market_data(prefix, exchange, symbol), events, sent)
        self._wake.set()

    @property
    def max_payload(self) -> int:
        """The largest batch NATS takes (the server's ``max_payload``, less room for the
        headers)."""
        limit = self.nc.max_payload if self.nc is not None else 0
        return (limit or _DEFAULT_MAX_PAYLOAD) - _HEADER_ROOM

    def _batch(self, subject: str, events: list[Event], sent: float) -> None:
        """Queue ``events`` (one symbol) as one batch, or as consecutive smaller ones when the
        encoded batch exceeds the server's ``max_payload`` (a busy turn, a long linger, big
        book snapshots): a batch NATS refuses would be retried forever, holding up every
        batch behind it. A single event too large on its own is dropped and counted."""
        first = events[0]
        payload = encode(
            events,
            collector=self.collector,
            seq=self.seq + 1,
            exchange=first.exchange,
            symbol=first.symbol,
            sent=sent,
        )
        if len(payload) > self.max_payload:
            if len(events) > 1:
                half = len(events) // 2
                self._batch(subject, events[:half], sent)
                self._batch(subject, events[half:], sent)
                return
            self.stats_counts["dropped_batches"] += 1
            self.stats_counts["dropped_events"] += 1
            log.error(
                "bus.event_too_large",
                exchange=first.exchange,
                symbol=first.symbol,
                kind=type(first).__name__,
                size=len(payload),
                max_payload=self.max_payload,
            )
            return
        self.seq += 1
        self._enqueue(Outgoing(subject, f"{self.collector}:{self.seq}", payload, len(events)))

    def _enqueue(self, item: Outgoing) -> None:
        self.queue.append(item)
        self._trim()

    def _trim(self) -> None:
        """Drop the oldest market data batches beyond the bound (counted)."""
        queue, counts = self.queue, self.stats_counts
        while len(queue) > self.config.buffer_max_batches:
            dropped = queue.popleft()
            counts["dropped_batches"] += 1
            counts["dropped_events"] += dropped.events

    def queue_instruments(self) -> None:
        """Queue the instrument specs of every exchange of this collector (never dropped)."""
        if self.instruments is None:
            return
        prefix = self.config.subject_prefix
        for exchange, specs in self.instruments().items():
            payload = json.dumps({"exchange": exchange, "instruments": specs}).encode()
            if len(payload) > self.max_payload:  # a venue's whole list (thousands of specs)
                payload = zlib.compress(payload, 6)  # ~8x smaller; the brain inflates it
            if len(payload) > self.max_payload:  # refused for good: it would block the queue
                log.error(
                    "bus.instruments_too_large",
                    exchange=exchange,
                    size=len(payload),
                    max_payload=self.max_payload,
                )
                continue
            self.control_seq += 1
            msg_id = f"{self.collector}:instruments:{exchange}:{self.control_seq}"
            self.control.append(
                Outgoing(subjects.instruments(prefix, exchange), msg_id, payload, 0)
            )
        self._wake.set()

    # ------------------------------------------------------------------ sending

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.queue or self.control:
                if not self.connected:
                    await self.clock.sleep(_RETRY_S)
                    continue
                if not await self._send_some():
                    await self.clock.sleep(_RETRY_S)

    async def _send_some(self) -> bool:
        """Publish the control messages, then up to ``publish_concurrency`` batches; failed
        ones go back to the front in order. False when something failed."""
        source = self.control if self.control else self.queue
        items = [source.popleft() for _ in range(min(len(source), self.config.publish_concurrency))]
        results = await self._publish(items)
        counts = self.stats_counts
        failed: list[Outgoing] = []
        for item, res in zip(items, results, strict=True):
            if res is not None:
                failed.append(item)
            elif item.events:
                counts["published_batches"] += 1
                counts["published_events"] += item.events
        if failed:
            counts["publish_errors"] += len(failed)
            error = next(r for r in results if r is not None)
            log.warning("bus.publish_failed", count=len(failed), error=repr(error))
            source.extendleft(reversed(failed))
            if source is self.queue:
                self._trim()
            assert self.js is not None
            await redeclare_streams(self.js, self.config, error)
        return not failed

    async def _publish(self, items: list[Outgoing]) -> list[BaseException | None]:
        """Publish ``items`` with one shared reply subscription (``publish_async``) and wait
        for all their acknowledgements at once; the error of each (None: stored)."""
        js = self.js
        assert js is not None
        futures: list[asyncio.Future[Any]] = []
        errors: list[BaseException | None] = []
        for item in items:
            try:
                futures.append(
                    await js.publish_async(
                        item.subject, item.payload, headers={"Nats-Msg-Id": item.msg_id}
                    )
                )
            except Exception as exc:  # disconnected while sending: this and the rest again
                errors = [exc] * (len(items) - len(futures))
                break
        if futures:
            _, pending = await asyncio.wait(futures, timeout=_PUBLISH_TIMEOUT_S)
            for future in pending:
                future.cancel()
        out: list[BaseException | None] = [
            TimeoutError("no acknowledgement") if future.cancelled() else future.exception()
            for future in futures
        ]
        return out + errors

    async def _health_loop(self) -> None:
        while True:
            await self._publish_health()
            await self.clock.sleep(self.config.health_interval_s)

    async def _publish_health(self) -> None:
        if self.connected and self.nc is not None:
            subject = subjects.health(self.config.subject_prefix, self.collector)
            try:
                await self.nc.publish(subject, json.dumps(self.health()).encode())
            except Exception as exc:
                log.debug("bus.health_publish_failed", error=repr(exc))

    async def _on_health_request(self, _msg: Any) -> None:
        await self._publish_health()

    # ------------------------------------------------------------------ reporting

    def stats(self) -> dict[str, Any]:
        return {
            **self.stats_counts,
            "seq": self.seq,
            "buffered_batches": len(self.queue),
            "buffered_control": len(self.control),
            "buffer_max_batches": self.config.buffer_max_batches,
            "connected": self.connected,
        }

    def health(self) -> dict[str, Any]:
        """What ``/health`` returns and ``<prefix>.health.<collector>`` carries; with
        ``markets`` (exchange -> the symbols its feed watches, empty: any), by which the brain
        checks webhook signals."""
        out = {
            "role": "collector",
            "collector_id": self.collector,
            "instance": self.instance,
            "ts": self.clock.time(),
            "nats": self.stats(),
            "feeds": self.health_source(),
        }
        markets = self.markets() if self.markets is not None else None
        if markets is not None:
            out["markets"] = {ex: sorted(symbols) for ex, symbols in markets.items()}
        return out
