"""The brain role's feed source ``bus``: market data from JetStream into the hub.

A durable pull consumer (``bus.durable``) on ``<prefix>.md.>`` fetches up to ``fetch_batch``
messages; each batch is decoded and its events published on the hub exactly as a local feed
would; after one event-loop turn (the detectors' micro-batch flush runs in it) and once the
hub's queued subscribers (store writer, notifications, outbound events) have taken every
event published so far (``hub.join``), the batch is a checkpoint of the store's
:class:`~cryptomon.store.positions.CommitTracker` (``commits``), and fetching goes on. Its last
message is acknowledged (ack policy ``all``: it acknowledges the ones before it) once the
store committed every row derived from it and the messages before it, durable and market
rows, candles from trades included: within ``storage.batch_max_age_s`` plus a write, in order.
A crash (``kill -9``) loses nothing acknowledged; a restart resumes after the last
acknowledged message, and skips (as ``committed``) the messages up to the position the store
committed with its rows, so none is stored twice. Without a store (``commits`` None) a batch
is acknowledged once the hub's subscribers took it. A batch delivered again within a run (its
ack was lost in a NATS restart, or ``bus.ack_wait_s`` ran out) is recognised by
``(collector, sequence)`` and skipped, counted as ``duplicates``.

Also listens to ``<prefix>.health.*``, asking every collector for it at start
(``<prefix>.health_request``): each collector's health, shown under ``collectors`` in
``/api/v1/feeds``; a collector silent for 3 health intervals has its exchanges marked stale
and its markets no longer count among those the brain's webhooks accept signals for.
It also keeps the latest instrument specs per exchange from ``<stream>_META``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from cryptomon.bus import subjects
from cryptomon.bus.claim import DurableClaim
from cryptomon.bus.codec import Batch, CodecError, decode
from cryptomon.bus.collectors import BusHealth
from cryptomon.bus.connect import connect, ensure_streams, meta_stream
from cryptomon.bus.delivery import SeenBatches, delivered, position
from cryptomon.clock import Clock
from cryptomon.config import BusConfig
from cryptomon.errors import TemporaryError
from cryptomon.events import FeedStatus
from cryptomon.feeds.health import FeedHealth
from cryptomon.hub import Hub
from cryptomon.log import redact_url
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.specs_file import SpecsFileError, spec_from_dict
from cryptomon.store.positions import CommitTracker, Position
from cryptomon.tasks import cancel_and_wait

log = structlog.get_logger()

RELEASE_S = 2.0
"""On stop, how long giving the claim on the durable back may take."""

STOP_FINISH_S = 5.0
"""On stop, how long the batch in hand may take to be finished and acknowledged."""

CONSUMER_CHECK_S = 5.0
"""While nothing arrives, how often the brain checks that its consumer still exists."""


class BusFeedSource:
    """See the module docstring."""

    exchange = "bus"
    name = "feed:bus"

    def __init__(
        self,
        *,
        config: BusConfig,
        hub: Hub,
        clock: Clock,
        registry: InstrumentRegistry | None = None,
    ) -> None:
        self.config = config
        self.registry = registry  # the brain's specs: the collectors' own, as they announce
        self.hub = hub
        self.clock = clock
        self.bus_health = BusHealth(
            hub=hub, clock=clock, silent_after_s=3 * config.health_interval_s
        )
        self.health: FeedHealth = self.bus_health  # the FeedSource protocol's type
        self.counters = self.bus_health.counters
        self.counters.update(
            dict.fromkeys(
                ("batches", "events", "duplicates", "committed", "redelivered", "bad", "rewinds"),
                0,
            )
        )
        self.seen = SeenBatches()
        self.on_batch: Callable[[Batch], None] | None = None  # e.g. a lag probe (benchmark)
        self.instruments: dict[str, list[dict[str, Any]]] = {}
        self.nc: Client | None = None
        self._js: Any = None
        self._task: asyncio.Task[None] | None = None
        self._subs: list[Any] = []
        self.claim: DurableClaim | None = None
        self._claimed = asyncio.Event()
        self._claim_task: asyncio.Task[None] | None = None
        self._standby_told = False
        self._stopping = False
        self._idle: asyncio.Event | None = None  # clear while a fetched batch is processed
        self._next_delivery: int | None = None  # the consumer's next delivery number
        self.on_claim: Callable[[bool], None] | None = None  # told when the claim changes
        # the store's commits (set before start): a batch is acknowledged once they hold it
        self.commits: CommitTracker | None = None
        self._stored: Position | None = None  # committed by a run before: skipped up to it
        self._mark = 0  # checkpoints made (one per processed batch)
        self._position: Position | None = None  # the last processed message's
        self._unacked: deque[tuple[int, Msg]] = deque()  # (checkpoint, its last message)
        self._acked = asyncio.Event()  # set by a commit: the ack task acknowledges
        self._ack_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        cfg = self.config
        if self.commits is not None:
            self._stored = await self.commits.stored()
            self.commits.on_commit = lambda _mark: self._acked.set()
        self.nc = await connect(
            cfg,
            name=f"cryptomon-brain-{cfg.durable}",
            on_disconnected=self._nats_lost,
            on_reconnected=self._nats_back,
        )
        js = self.nc.jetstream()
        await ensure_streams(js, cfg)
        prefix = cfg.subject_prefix
        self._subs.append(await self.nc.subscribe(f"{prefix}.health.*", cb=self._on_health))
        # every collector reports now, not at its next interval: the webhooks check signals
        # against the markets the collectors watch (unknown until one has reported)
        await self.nc.publish(subjects.health_request(prefix), b"")
        self._subs.append(
            await js.subscribe(
                f"{prefix}.instruments.>",
                stream=meta_stream(cfg),
                cb=self._on_instruments,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            )
        )
        self._js = js
        self.claim = DurableClaim(js, cfg)
        self.health.on_connected()
        sub = None
        held = await self._take_claim()
        if self.claim.error is not None:  # the bucket refused (permissions, limits)
            raise TemporaryError(
                f"cannot claim bus.durable {cfg.durable!r} in the JetStream key-value bucket "
                f"{cfg.lease_bucket!r} (bus.lease_bucket): {self.claim.error}; the brain needs "
                "JetStream key-value access on NATS"
            )
        if held:
            sub = await self._subscribe()
            self._consuming()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(sub), name=self.name)
        self._ack_task = loop.create_task(self._ack_committed(), name=f"{self.name}.ack")
        self._claim_task = loop.create_task(self._keep_claim(), name=f"{self.name}.claim")

    def consuming(self) -> bool:
        """True while this brain holds the claim on the durable (it gets the market data)."""
        return self.claim is not None and self.claim.held

    def _consuming(self) -> None:
        self.bus_health.detail = ""
        if self.health.state != "live":
            self.health.state = "live"
            self.health.publish("live", detail=f"consuming durable {self.config.durable}")
        log.info("bus.brain_consuming", durable=self.config.durable, stream=self.config.stream)

    async def _take_claim(self) -> bool:
        """Take or keep the claim on the durable; on a change, say so (log, feed health)."""
        assert self.claim is not None
        was = self.claim.held
        held = await self.claim.take()
        if held:
            self._claimed.set()
        else:
            self._claimed.clear()
        if held != was and self.on_claim is not None:
            self.on_claim(held)
        if not held and self.claim.error is None and (was or not self._standby_told):
            self._standby_told = True
            cfg = self.config
            detail = (
                f"another brain ({self.claim.other or 'unknown'}) consumes bus.durable "
                f"{cfg.durable!r}: this brain waits and takes over when that one stops; give "
                "each brain its own bus.durable to run both"
            )
            log.error("bus.durable_in_use", durable=cfg.durable, detail=detail)
            self.bus_health.detail = detail
            self.health.state = "connecting"
            self.health.publish("connecting", detail=detail)
        elif held and not was and self._standby_told:
            self._standby_told = False
            log.warning("bus.durable_taken_over", durable=self.config.durable)
        return held

    async def _keep_claim(self) -> None:
        while True:
            await self.clock.sleep(self.config.lease_ttl_s / 3)
            await self._take_claim()

    async def _subscribe(self) -> Any:
        """The durable pull consumer, nothing delivered on it that this process has not
        received: what another process (a brain that died or stopped mid-fetch) was
        delivered and never acknowledged is fetched again at once, in order, from the first
        of it (the first acknowledgement here, ack policy ``all``, would cover it unseen)."""
        cfg = self.config
        js = self._js
        assert js is not None
        start: int | None = None
        try:
            info = await js.consumer_info(cfg.stream, cfg.durable)
        except NotFoundError:
            info = None
        if info is not None and info.num_ack_pending:
            start = (info.ack_floor.stream_seq if info.ack_floor else 0) + 1
            with contextlib.suppress(NotFoundError):
                await js.delete_consumer(cfg.stream, cfg.durable)
            log.warning(
                "bus.consumer_rewound",
                durable=cfg.durable,
                from_stream_seq=start,
                unacknowledged=info.num_ack_pending,
            )
        sub = await self._pull_subscribe(start)
        info = await js.consumer_info(cfg.stream, cfg.durable)
        self._next_delivery = (info.delivered.consumer_seq if info.delivered else 0) + 1
        return sub

    async def _pull_subscribe(self, start: int | None = None) -> Any:
        """The durable pull consumer of the market data stream (created when missing, from
        stream sequence ``start`` when given)."""
        cfg = self.config
        prefix = cfg.subject_prefix
        consumer = ConsumerConfig(
            durable_name=cfg.durable,
            ack_policy=AckPolicy.ALL,
            ack_wait=cfg.ack_wait_s,
            filter_subject=f"{prefix}.md.>",
            max_ack_pending=-1,
        )
        if start is not None:
            consumer.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            consumer.opt_start_seq = start
        assert self._js is not None
        return await self._js.pull_subscribe(
            f"{prefix}.md.>", durable=cfg.durable, stream=cfg.stream, config=consumer
        )

    async def _consumer_or_again(self, sub: Any) -> Any:
        """``sub``, or a new one when the consumer no longer exists (NATS came back without
        its JetStream storage, someone deleted the stream): a fetch from a missing consumer
        just times out, so nothing would ever arrive again."""
        js = self._js
        assert js is not None
        try:
            await js.consumer_info(self.config.stream, self.config.durable)
            return sub
        except NotFoundError:
            pass
        except Exception:  # NATS away: the client reconnects; checked again later
            return sub
        try:
            await ensure_streams(js, self.config)
            new = await self._pull_subscribe()
            self._next_delivery = None  # a new consumer: its numbering starts again
        except Exception as exc:
            log.warning("bus.consumer_redeclare_failed", error=repr(exc))
            return sub
        log.warning(
            "bus.consumer_redeclared", stream=self.config.stream, durable=self.config.durable
        )
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        return new

    def _nats_lost(self) -> None:
        detail = (
            f"NATS at {redact_url(self.config.nats_url)} unreachable: reconnecting by itself; "
            "check that nats-server runs there with JetStream (bus.nats_url)"
        )
        if self.claim is None or self.claim.held:
            self.bus_health.detail = detail
        self.health.on_disconnected(detail)

    def _nats_back(self) -> None:
        self.health.on_connected(reconnect=True)
        if self.claim is not None and self.claim.held:
            self.bus_health.detail = ""
        if self.health.state != "live" and self.claim is not None and self.claim.held:
            self.health.state = "live"
            self.health.publish("live", detail="NATS reachable again")

    async def stop(self) -> None:
        # the batch in hand is finished and acknowledged (bounded), so a restart neither
        # processes it again nor waits for its redelivery
        self._stopping = True
        if self._idle is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), STOP_FINISH_S)
        await cancel_and_wait(self._task)
        self._task = None
        if self.commits is not None:  # the store writes what it holds, then it is acknowledged
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.commits.flush(), STOP_FINISH_S)
            await self._ack()
        await cancel_and_wait(self._ack_task)
        self._ack_task = None
        await cancel_and_wait(self._claim_task)
        self._claim_task = None
        if self.claim is not None and self.nc is not None and self.nc.is_connected:
            # a brain waiting for the durable takes over now (NATS away: when it expires)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.claim.release(), RELEASE_S)
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()  # what was fetched and not processed: the next run
        self.health.connected = False
        self.health.state = "disconnected"

    async def _run(self, sub: Any) -> None:
        """Consume while this brain holds the claim on the durable; wait while it does not."""
        while True:
            if sub is None:
                await self._claimed.wait()
                try:
                    sub = await self._subscribe()
                except Exception as exc:  # NATS away: tried again
                    log.warning("bus.subscribe_failed", error=repr(exc))
                    await self.clock.sleep(1.0)
                    continue
                self._consuming()
            sub = await self._consume(sub)
            if self._stopping:
                return
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            sub = None

    async def _consume(self, sub: Any) -> Any:
        """Fetch, process, acknowledge until the claim is lost or deliveries were missed;
        the subscription then."""
        assert self.claim is not None
        checked = self.clock.monotonic()
        self._idle = idle = asyncio.Event()
        idle.set()
        while self.claim.held and not self._stopping:
            try:
                msgs = await sub.fetch(self.config.fetch_batch, timeout=1.0)
            except (NatsTimeoutError, TimeoutError):
                if self.commits is not None and self._position is not None:
                    self.commits.checkpoint(self._mark, self._position)  # written when due
                if self.clock.monotonic() - checked >= CONSUMER_CHECK_S:
                    checked = self.clock.monotonic()
                    sub = await self._consumer_or_again(sub)
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS away: the client reconnects; try again
                log.debug("bus.fetch_failed", error=repr(exc))
                await self.clock.sleep(0.2)
                continue
            if not msgs:
                continue
            if not self._received_all(msgs):
                # deliveries that never reached us (lost while NATS was away, taken by
                # another client): acknowledging these would acknowledge them unseen
                self.counters["rewinds"] += 1
                return sub  # subscribed again from the acknowledged ones on, at once
            idle.clear()
            try:
                for msg in msgs:
                    self.process(msg)
                await asyncio.sleep(0)  # the detectors' flush (call_soon) runs before the ack
                await self.hub.join()  # ... and the store, notifications, outbound took all
                last = msgs[-1]
                if self.commits is None:
                    await self._ack_one(last)
                else:  # acknowledged once the store committed it (_ack_committed)
                    self._mark += 1
                    self._position = position(last)
                    self._unacked.append((self._mark, last))
                    self.commits.checkpoint(self._mark, self._position)
            finally:
                idle.set()
        return sub

    async def _ack_one(self, msg: Msg) -> None:
        try:
            await msg.ack()
        except Exception as exc:  # redelivered later and skipped by sequence
            log.warning("bus.ack_failed", error=repr(exc))

    async def _ack(self) -> None:
        """Acknowledge the newest message whose checkpoint the store committed (ack policy
        ``all``: the ones before it too)."""
        assert self.commits is not None
        committed = self.commits.committed
        newest = None
        unacked = self._unacked
        while unacked and unacked[0][0] <= committed:
            newest = unacked.popleft()[1]
        if newest is not None:
            await self._ack_one(newest)

    async def _ack_committed(self) -> None:
        if self.commits is None:
            return
        while True:
            await self._acked.wait()
            self._acked.clear()
            await self._ack()

    def _received_all(self, msgs: list[Msg]) -> bool:
        """True when ``msgs`` are the deliveries next after the last ones received (the
        consumer numbers every delivery, redeliveries included)."""
        first = msgs[0].metadata.sequence.consumer
        last = msgs[-1].metadata.sequence.consumer
        expected = self._next_delivery
        if (expected is not None and first != expected) or last - first != len(msgs) - 1:
            log.warning(
                "bus.deliveries_missed",
                durable=self.config.durable,
                expected=expected,
                got=first,
                detail="fetched again from the last acknowledged batch",
            )
            return False
        self._next_delivery = last + 1
        return True

    def process(self, msg: Msg) -> None:
        """Publish the events of one batch on the hub (once per collector sequence)."""
        counters = self.counters
        try:
            batch = decode(msg.data)
        except CodecError as exc:
            counters["bad"] += 1
            self.health.on_parse_error(exc, msg.subject)
            return
        if delivered(msg) > 1:
            counters["redelivered"] += 1
        stored = self._stored
        if stored is not None:
            seq, ts_ns = position(msg)
            if seq <= stored[0] and ts_ns <= stored[1]:  # its rows are in the store already
                counters["committed"] += 1
                return
            self._stored = None  # past it: every later message is new to the store
        if not self.seen.add((batch.collector, batch.seq)):
            counters["duplicates"] += 1
            return
        publish = self.hub.publish
        for event in batch.events:
            publish(event)
        if "FeedStatus" in batch.kinds:
            remember = self.bus_health.remember
            for event in batch.events:
                if type(event) is FeedStatus:
                    remember(event)
        counters["batches"] += 1
        counters["events"] += len(batch.events)
        if self.on_batch is not None:
            self.on_batch(batch)
        by_kind = self.bus_health.by_kind
        for kind, count in batch.kinds.items():
            by_kind[kind] = by_kind.get(kind, 0) + count

    async def _on_health(self, msg: Msg) -> None:
        try:
            self.bus_health.report(json.loads(msg.data))
        except (ValueError, KeyError, TypeError):
            self.counters["bad"] += 1

    async def _on_instruments(self, msg: Msg) -> None:
        try:
            data = msg.data
            if data[:1] != b"{":  # a long list, zlib-compressed by the collector
                data = zlib.decompress(data)
            info = json.loads(data)
            exchange = str(info["exchange"])
            entries = list(info["instruments"])
            specs = [
                spec_from_dict(entry, f"{msg.subject}[{n}]") for n, entry in enumerate(entries)
            ]
        except (ValueError, KeyError, TypeError, SpecsFileError, zlib.error) as exc:
            self.counters["bad"] += 1
            log.warning("bus.instruments_unreadable", subject=msg.subject, error=str(exc))
            return
        self.instruments[exchange] = entries
        if self.registry is not None:
            self.registry.add(specs)  # sizing, units and risk on the brain use the same specs

    def remote_markets(self) -> dict[str, frozenset[str]] | None:
        """The markets the collectors heard from lately watch (None: none reported): the
        webhooks of the brain refuse a signal for any other (DESIGN.md section 8)."""
        return self.bus_health.watched()

    def remote_feeds(self) -> dict[str, dict[str, Any]]:
        """Each exchange's feed health as its collector last reported it (channels, quality
        counters, delisted, unknown instruments), with ``collector`` and ``age_s``: the
        brain's ``/api/v1/feeds``, ``/metrics`` and dashboard list them beside ``bus``."""
        now = self.clock.time()
        out: dict[str, dict[str, Any]] = {}
        for name, info in self.bus_health.collectors.items():
            age = round(now - float(info.get("ts", now)), 3)
            for exchange, snap in (info.get("feeds") or {}).items():
                if isinstance(snap, dict):
                    out[str(exchange)] = {**snap, "collector": name, "age_s": age}
        return out
