"""The brain's durable consumer on the shared nats-server (127.0.0.1:4222): what another
client was delivered but never acknowledged reaches the brain (the consumer's ack policy
``all`` would otherwise acknowledge it with the next ack), and one brain at a time consumes a
durable (DESIGN.md section 8)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from structlog.testing import capture_logs

from cryptomon.bus.codec import encode
from cryptomon.bus.connect import ensure_streams, events_stream, meta_stream
from cryptomon.bus.lease import TradingLease
from cryptomon.bus.roles import lease_follows_durable
from cryptomon.bus.source import BusFeedSource
from cryptomon.clock import LiveClock
from cryptomon.config import BusConfig
from cryptomon.errors import TemporaryError
from cryptomon.events import Trade
from cryptomon.hub import Hub
from tests.integration.bus_support import NatsServer, bus_section
from tests.util import wait_until

pytestmark = pytest.mark.timeout(90)

NATS_URL = "nats://127.0.0.1:4222"


def trade(n: int) -> Trade:
    now = time.time()
    return Trade(
        exchange="x",
        symbol="BTC-USDT",
        ts=now,
        ts_recv=now,
        price=60000.0 + n,
        amount=0.5,
        side="buy",
        trade_id=str(n),
    )


class Stream:
    """The test's own streams on the shared server: publishes one-trade batches."""

    def __init__(self, config: BusConfig) -> None:
        self.config = config
        self.nc: Any = None
        self.js: Any = None
        self.sent = 0

    async def publish(self, count: int) -> None:
        for _ in range(count):
            n = self.sent
            self.sent += 1
            payload = encode(
                [trade(n)], collector="c", seq=n + 1, exchange="x", symbol="BTC-USDT", sent=0.0
            )
            subject = f"{self.config.subject_prefix}.md.x.BTC-USDT"
            await self.js.publish(subject, payload, headers={"Nats-Msg-Id": f"c:{n + 1}"})

    async def steal(self, count: int, *, timeout: float) -> int:
        """Another client on the brain's durable fetches up to ``count`` messages and goes
        away without acknowledging them (a brain that died mid-fetch, deliveries lost in
        flight); how many it was delivered."""
        nc = await nats.connect(NATS_URL)
        try:
            sub = await nc.jetstream().pull_subscribe(
                f"{self.config.subject_prefix}.md.>",
                durable=self.config.durable,
                stream=self.config.stream,
                config=consumer_config(self.config),
            )
            try:
                return len(await sub.fetch(count, timeout=timeout))
            except (nats.errors.TimeoutError, TimeoutError):
                return 0
        finally:
            await nc.close()


def consumer_config(config: BusConfig) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=config.durable,
        ack_policy=AckPolicy.ALL,
        ack_wait=config.ack_wait_s,
        filter_subject=f"{config.subject_prefix}.md.>",
        max_ack_pending=-1,
    )


@contextlib.asynccontextmanager
async def streams(**extra: Any) -> AsyncIterator[Stream]:
    config = BusConfig.model_validate(
        bus_section(NATS_URL, role="brain", ack_wait_s=120.0, **extra)
    )
    stream = Stream(config)
    stream.nc = await nats.connect(NATS_URL)
    stream.js = stream.nc.jetstream()
    await ensure_streams(stream.js, config)
    try:
        yield stream
    finally:
        for name in (config.stream, meta_stream(config), events_stream(config)):
            with contextlib.suppress(Exception):
                await stream.js.delete_stream(name)
        with contextlib.suppress(Exception):
            await stream.js.delete_key_value(config.lease_bucket)
        await stream.nc.close()


def trade_ids(hub: Hub) -> list[str]:
    got: list[str] = []
    hub.subscribe(Trade, lambda event: got.append(event.trade_id), name="test-trades")
    return got


@pytest.mark.asyncio
async def test_what_a_dead_brain_fetched_reaches_the_next_one() -> None:
    """A brain that died with batches fetched but not acknowledged: the next brain on the
    durable gets them at once, in order, before what came after (they were lost: the next
    brain's first acknowledgement, ack policy ``all``, covered them)."""
    async with streams() as stream:
        await stream.publish(20)
        assert await stream.steal(5, timeout=5) == 5
        hub = Hub()
        got = trade_ids(hub)
        source = BusFeedSource(config=stream.config, hub=hub, clock=LiveClock())
        await source.start()
        try:
            await wait_until(lambda: len(got) >= 20, timeout=15, message="20 trades")
            await stream.publish(5)
            await wait_until(lambda: len(got) >= 25, timeout=15, message="25 trades")
            assert got == [str(n) for n in range(25)]
        finally:
            await source.stop()


@pytest.mark.asyncio
async def test_deliveries_lost_in_flight_are_fetched_again() -> None:
    """Deliveries the running brain never received (lost while NATS was away, taken by
    another client) are fetched again instead of being acknowledged unseen by the brain's
    next acknowledgement (ack policy ``all``)."""
    async with streams(fetch_batch=1) as stream:
        hub = Hub()
        got = trade_ids(hub)
        gate, held = asyncio.Event(), asyncio.Event()

        async def slow_store(events: list[Any]) -> None:  # holds the brain before its ack
            if any(event.trade_id == "2" for event in events):
                held.set()
                await gate.wait()

        hub.subscribe_queued(Trade, slow_store, name="test-slow", policy="never_drop")
        await hub.start()
        source = BusFeedSource(config=stream.config, hub=hub, clock=LiveClock())
        await source.start()
        try:
            await stream.publish(5)
            await asyncio.wait_for(held.wait(), 15)  # the brain holds trade 2, fetches nothing
            assert await stream.steal(1, timeout=5) == 1  # trade 3: delivered elsewhere
            gate.set()
            await stream.publish(3)
            sent = stream.sent
            await wait_until(
                lambda: sorted(set(got), key=int) == [str(n) for n in range(sent)],
                timeout=15,
                message="every trade",
            )
            assert sorted(got, key=int) == [str(n) for n in range(sent)]
            assert source.counters["rewinds"] >= 1
        finally:
            gate.set()
            await source.stop()
            await hub.stop()


@pytest.mark.asyncio
async def test_a_second_brain_on_the_same_durable_waits_and_takes_over() -> None:
    """Two brains started with one config (one ``bus.durable``) split the market data between
    them (each saw about half, the trading one included). The second now waits: it says why
    (error ``bus.durable_in_use`` naming bus.durable, its ``bus`` feed not live) and
    consumes nothing until the first stops; then it takes over where the first left off."""
    async with streams(lease_ttl_s=1.0) as stream:
        hub1, hub2 = Hub(), Hub()
        got1, got2 = trade_ids(hub1), trade_ids(hub2)
        first = BusFeedSource(config=stream.config, hub=hub1, clock=LiveClock())
        second = BusFeedSource(config=stream.config, hub=hub2, clock=LiveClock())
        await first.start()
        try:
            with capture_logs() as logs:
                await second.start()
                await stream.publish(30)
                await wait_until(lambda: len(got1) == 30, timeout=15, message="first: 30")
            assert got2 == []
            errors = [e for e in logs if e["event"] == "bus.durable_in_use"]
            assert errors
            assert errors[0]["log_level"] == "error"
            assert "bus.durable" in errors[0]["detail"]
            snap = second.health.snapshot()
            assert snap["state"] != "live"
            assert "bus.durable" in snap["detail"]
            await first.stop()
            await stream.publish(10)
            await wait_until(lambda: len(got2) == 10, timeout=15, message="second: 10")
            assert got2 == [str(n) for n in range(30, 40)]
            assert second.health.snapshot()["state"] == "live"
        finally:
            await first.stop()
            await second.stop()


@pytest.mark.asyncio
async def test_nats_away_longer_than_the_claim_names_nats_and_resumes(tmp_path: Path) -> None:
    """NATS away (a private nats-server stopped, then started on its storage) for longer than
    the claim's TTL: the brain's ``bus`` feed says NATS is unreachable and where to look; once
    NATS is back the brain takes its expired claim again without calling it another brain's,
    and every batch arrives once."""
    server = NatsServer(tmp_path)
    await server.start()
    config = BusConfig.model_validate(bus_section(server.url, role="brain", lease_ttl_s=1.0))
    stream = Stream(config)
    hub = Hub()
    got = trade_ids(hub)
    source = BusFeedSource(config=config, hub=hub, clock=LiveClock())
    try:
        stream.nc = await nats.connect(server.url, max_reconnect_attempts=-1)
        stream.js = stream.nc.jetstream()
        with capture_logs() as logs:
            await source.start()
            await stream.publish(3)
            await wait_until(lambda: len(got) == 3, timeout=15, message="3 trades")
            await server.stop()
            await wait_until(
                lambda: source.health.snapshot()["state"] == "disconnected",
                timeout=15,
                message="bus disconnected",
            )
            detail = source.health.snapshot()["detail"]
            assert "NATS" in detail
            assert "bus.nats_url" in detail

            def failures() -> int:
                return sum(e["event"] == "bus.durable_claim_failed" for e in logs)

            await wait_until(lambda: failures() >= 3, timeout=30, message="claim expired")
            await server.start()
            await wait_until(
                lambda: source.health.snapshot()["state"] == "live", timeout=30, message="live"
            )
            await stream.publish(3)
            await wait_until(lambda: len(got) == 6, timeout=30, message="6 trades")
        assert got == [str(n) for n in range(6)]
        assert not [e for e in logs if e["event"] == "bus.durable_in_use"]
        assert "detail" not in source.health.snapshot()
    finally:
        await source.stop()
        if stream.nc is not None:
            await stream.nc.close()
        await server.stop()


@pytest.mark.asyncio
async def test_only_the_brain_consuming_the_market_data_holds_the_trading_lease() -> None:
    """Two brains of one config starting together: the one that got the durable (the market
    data) must be the one that trades. The trading lease and the durable were taken
    independently, so one brain could trade blind (no prices: its stops never fire) while
    the other saw the data and could not trade. Now the lease follows the durable, and
    moves with it when the consuming brain stops."""
    async with streams(lease_ttl_s=1.0) as stream:
        config = stream.config
        hub_a, hub_b = Hub(), Hub()
        source_b = BusFeedSource(config=config, hub=hub_b, clock=LiveClock())
        lease_b = TradingLease(config=config, clock=LiveClock(), hub=hub_b)
        lease_follows_durable(lease_b, source_b)
        await source_b.start()  # B consumes
        source_a = BusFeedSource(config=config, hub=hub_a, clock=LiveClock())
        lease_a = TradingLease(config=config, clock=LiveClock(), hub=hub_a)
        lease_follows_durable(lease_a, source_a)
        try:
            await lease_a.start()  # A is first at the lease (its start order: lease, feeds)
            await source_a.start()
            await lease_b.start()
            assert source_b.claim is not None
            assert source_b.claim.held
            await wait_until(lease_b.held, timeout=10, message="B trades")
            assert not lease_a.held()
            await source_b.stop()
            await lease_b.stop()
            await wait_until(lease_a.held, timeout=15, message="A takes over the lease")
            assert source_a.claim is not None
            assert source_a.claim.held
        finally:
            for part in (source_b, lease_b, source_a, lease_a):
                await part.stop()


@pytest.mark.asyncio
async def test_the_trading_lease_comes_back_after_nats_lost_its_storage(tmp_path: Path) -> None:
    """NATS restarted without its JetStream storage (no volume): the lease bucket is gone, so
    the brain makes it again and holds the lease again (it failed every renewal for good:
    a brain that never trades again until someone restarts it)."""
    server = NatsServer(tmp_path)
    await server.start()
    config = BusConfig.model_validate(bus_section(server.url, role="brain", lease_ttl_s=1.0))
    lease = TradingLease(config=config, clock=LiveClock(), hub=Hub())
    try:
        await lease.start()
        assert lease.held()
        await server.stop()
        shutil.rmtree(server.store)
        await wait_until(lambda: not lease.held(), timeout=10, message="validity over")
        await server.start()
        await wait_until(lease.held, timeout=20, message="the lease held again")
    finally:
        await lease.stop()
        await server.stop()


@pytest.mark.asyncio
async def test_a_lease_bucket_that_cannot_be_used_fails_the_start_naming_it() -> None:
    """The bucket that holds the claim on the durable cannot be used (here a stream of the
    bucket's name that is not a key-value bucket; elsewhere no permission): the brain's start
    fails with a line naming bus.lease_bucket, instead of waiting for ever as if another
    brain had the durable."""
    async with streams() as stream:
        config = stream.config
        await stream.js.add_stream(
            StreamConfig(name=f"KV_{config.lease_bucket}", subjects=[f"{config.stream}x.>"])
        )
        source = BusFeedSource(config=config, hub=Hub(), clock=LiveClock())
        try:
            with pytest.raises(TemporaryError, match=r"bus\.lease_bucket"):
                await source.start()
        finally:
            await source.stop()
            with contextlib.suppress(Exception):
                await stream.js.delete_stream(f"KV_{config.lease_bucket}")


@pytest.mark.asyncio
async def test_a_brain_stops_promptly_while_nats_is_away(tmp_path: Path) -> None:
    """SIGTERM while NATS is away: the bus source and the trading lease stop at once (giving
    the claim or the lease back waited for a NATS answer that could not come, past the
    component's stop timeout, so the daemon's stop was not clean)."""
    server = NatsServer(tmp_path)
    await server.start()
    config = BusConfig.model_validate(bus_section(server.url, role="brain"))
    source = BusFeedSource(config=config, hub=Hub(), clock=LiveClock())
    lease = TradingLease(config=config, clock=LiveClock(), hub=Hub())
    try:
        await lease.start()
        await source.start()
        assert source.consuming()
        assert lease.held()
        await server.stop()
        await wait_until(lambda: not source.health.connected, timeout=15, message="away")
        assert lease.held()  # still valid for most of its TTL
        for part in (source, lease):
            started = time.monotonic()
            await asyncio.wait_for(part.stop(), 10)
            assert time.monotonic() - started < 2.0, part
    finally:
        await source.stop()
        await lease.stop()
        await server.stop()
