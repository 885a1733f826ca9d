"""Scale-out over NATS JetStream with real nats-server processes and real recordings:
collectors and brains as separate processes (DESIGN.md section 8)."""

from __future__ import annotations

import asyncio
import shutil
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
from nats.js.errors import NotFoundError

from cryptomon.app import build_app
from cryptomon.bus.collector import CollectorPublisher
from cryptomon.clock import LiveClock
from cryptomon.config import BusConfig, Settings
from cryptomon.events import Trade
from cryptomon.hub import Hub
from tests.integration.bus_support import (
    NatsServer,
    bus_section,
    count_kinds,
    free_port,
    replay_exchange,
    spawn,
    terminate,
    write_config,
)
from tests.util import wait_until

pytestmark = pytest.mark.timeout(120)
TOKEN = "scale-test-token-0123456789"


async def single_process_counts(
    tmp: Path, exchanges: list[dict[str, Any]]
) -> tuple[Counter[str], dict[str, Any]]:
    """What one process (``role: all``, the default daemon) sees from the same recordings:
    market data and flagged trades per kind on its hub, and each feed's health."""
    app = build_app(
        Settings.model_validate(
            {
                "exchanges": exchanges,
                "api": {"enabled": False},
                "database": {"url": f"sqlite+aiosqlite:///{tmp / 'single.db'}"},
            }
        )
    )
    counts = count_kinds(app.hub)
    await app.start()
    try:
        await app.services.feeds.wait_replays()  # type: ignore[union-attr]
        health = app.services.feeds.health()  # type: ignore[union-attr]
    finally:
        await app.stop()
    return counts, health


def brain_settings(tmp: Path, bus: dict[str, Any], **extra: Any) -> Settings:
    return Settings.model_validate(
        {
            "bus": {**bus, "role": "brain"},
            "api": {"enabled": False},
            "database": {"url": f"sqlite+aiosqlite:///{tmp / 'brain.db'}"},
            **extra,
        }
    )


@pytest.mark.asyncio
async def test_two_collectors_and_a_brain_see_what_one_process_sees(
    tmp_path: Path, shared_data: Path
) -> None:
    """2 collector processes + 1 brain deliver exactly the market data per kind that a single
    process sees on the same recordings; the brain gets instrument specs and collector health;
    a collector serves its own /health and /metrics."""
    server = NatsServer(tmp_path)
    await server.start()
    bus = bus_section(server.url)
    ex1, ex2 = replay_exchange(shared_data, "BINANCE_FUTURES"), replay_exchange(shared_data, "OKX")
    expected, single_health = await single_process_counts(tmp_path, [ex1, ex2])
    assert expected["FlaggedTrade"] > 0  # the quality layer is on the compared path
    brain_port = free_port()
    brain = build_app(
        brain_settings(
            tmp_path,
            bus,
            api={"port": brain_port, "tokens": [{"name": "t", "token": TOKEN, "scopes": ["read"]}]},
        )
    )
    got = count_kinds(brain.hub)
    await brain.start()
    port = free_port()
    procs = []
    try:
        for n, ex in enumerate((ex1, ex2)):
            cfg = write_config(
                tmp_path / f"c{n}.yaml",
                exchanges=[ex],
                bus={**bus, "collector_id": f"c{n}"},
                api={"enabled": n == 0, "port": port},
            )
            procs.append(await spawn(cfg, "collector"))
        total = sum(expected.values())
        await wait_until(lambda: sum(got.values()) >= total, timeout=60, message="brain events")
        source = brain.services.feeds.sources[0]  # type: ignore[union-attr]
        await wait_until(lambda: len(source.instruments) == 2, message="instrument specs")
        await wait_until(lambda: len(source.bus_health.collectors) == 2, message="health")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                health = await resp.json()
                assert resp.status == 200
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                metrics = await resp.text()
        assert health["collector_id"] == "c0"
        assert 'cryptomon_bus_dropped_events_total{collector="c0"} 0' in metrics
        assert (
            'cryptomon_feed_quality_total{collector="c0",exchange="binance_futures",'
            'kind="duplicates"} 0'
        ) in metrics
        assert got == expected
        assert source.counters["duplicates"] == 0
        market_kinds = {k: v for k, v in source.bus_health.by_kind.items() if k != "FeedStatus"}
        assert market_kinds == dict(expected)
        assert set(source.instruments) == {"binance_futures", "okx"}
        # the brain's registry holds the collectors' specs (sizing and risk use them)
        registry = brain.services.instruments
        assert registry is not None
        assert registry.specs("okx")

        # each collector's quality counters reach the brain's feed health and /metrics
        def quality() -> dict[str, Any]:
            feeds = brain.services.feeds.health()  # type: ignore[union-attr]
            return {ex: (feeds[ex]["collector"], feeds[ex]["quality"]) for ex in single_health}

        want = {ex: (f"c{n}", single_health[ex]["quality"]) for n, ex in enumerate(single_health)}
        await wait_until(lambda: quality() == want, message="quality in the collectors' health")
        async with aiohttp.ClientSession() as http:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with http.get(f"http://127.0.0.1:{brain_port}/metrics", headers=auth) as resp:
                brain_metrics = await resp.text()
        historical = single_health["okx"]["quality"]["historical"]
        assert historical == expected["FlaggedTrade"]
        assert (
            f'cryptomon_feed_quality_total{{exchange="okx",kind="historical"}} {historical}.0'
            in brain_metrics
        )
        assert 'cryptomon_bus_collector_connected{collector="c1"} 1.0' in brain_metrics
    finally:
        codes = [await terminate(proc) for proc in procs]
        await brain.stop()
        await server.stop()
    assert codes == [0, 0]


async def stream_state(url: str, bus: dict[str, Any]) -> tuple[int, Any]:
    """(messages in the market data stream, the brain's consumer info)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(bus["stream"])
        try:
            consumer = await js.consumer_info(bus["stream"], bus["durable"])
        except NotFoundError:  # no brain has consumed yet
            consumer = None
        return info.state.messages, consumer
    finally:
        await nc.close()


@pytest.mark.asyncio
async def test_collector_kill9_and_nats_restart_lose_and_duplicate_nothing(
    tmp_path: Path, shared_data: Path
) -> None:
    """kill -9 of a collector (the brain marks its exchange stale), then a NATS restart, then a
    new collector: every batch the stream stored is processed by the brain exactly once and
    everything is acknowledged."""
    server = NatsServer(tmp_path)
    await server.start()
    bus = bus_section(server.url)
    brain = build_app(brain_settings(tmp_path, bus))
    await brain.start()
    source = brain.services.feeds.sources[0]  # type: ignore[union-attr]
    cfg = write_config(
        tmp_path / "c.yaml",
        exchanges=[{**replay_exchange(shared_data, "KRAKEN"), "replay_speed": "20x"}],
        bus={**bus, "collector_id": "k"},
        api={"enabled": False},
    )
    proc: asyncio.subprocess.Process | None = None
    try:
        proc = await spawn(cfg, "collector")
        await wait_until(lambda: source.counters["events"] > 100, timeout=30, message="flow")
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        market = brain.services.market
        assert market is not None
        await wait_until(lambda: market.is_stale("kraken", "XBT-USD"), message="marked stale")
        await server.stop()
        await server.start()  # same port and storage: the stream and the consumer survive
        restarted = time.time()
        proc = await spawn(cfg, "collector")

        def new_collector_publishes() -> bool:
            info = source.bus_health.collectors.get("k", {})
            return info.get("ts", 0) > restarted and info["nats"]["published_batches"] > 0

        await wait_until(new_collector_publishes, timeout=30, message="new collector")
        assert not market.is_stale("kraken", "XBT-USD")

        async def settled() -> bool:
            stored, consumer = await stream_state(server.url, bus)
            return (
                consumer is not None
                and stored == source.counters["batches"]
                and consumer.num_pending == 0
                and consumer.num_ack_pending == 0
            )

        await wait_until(settled, timeout=60, interval=0.2, message="all stored batches acked")
        assert await terminate(proc) == 0
        stored, _ = await stream_state(server.url, bus)  # after the collector's last batch
        assert source.counters["batches"] == stored
        assert source.counters["duplicates"] == source.counters["redelivered"]
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        await brain.stop()
        await server.stop()


async def brain_counters(http: aiohttp.ClientSession, port: int) -> dict[str, Any]:
    """The brain's bus counters from its API (empty while it is not up)."""
    try:
        async with http.get(f"http://127.0.0.1:{port}/api/v1/feeds") as resp:
            body = await resp.json()
    except aiohttp.ClientError:
        return {}
    assert "feeds" in body, body
    return dict(body["feeds"]["bus"]["bus"])


@pytest.mark.asyncio
async def test_brain_kill9_resumes_after_what_it_acknowledged(
    tmp_path: Path, shared_data: Path
) -> None:
    """kill -9 of a brain process once it acknowledged batches (the store committed their
    rows): the restarted brain gets again exactly the batches after the last acknowledged one
    (not from the start), processing them or skipping those the store committed before the
    kill, and at the end every stored batch is acknowledged (nothing lost)."""
    server = NatsServer(tmp_path)
    await server.start()
    bus = bus_section(server.url, fetch_batch=16)
    port = free_port()
    cfg = write_config(
        tmp_path / "brain.yaml",
        bus={**bus, "fetch_batch": 1},  # one message per fetch: still busy at the first ack
        api={"port": port, "tokens": [{"name": "t", "token": TOKEN, "scopes": ["read"]}]},
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'brain.db'}"},
        storage={"batch_max_age_s": 0.05},  # acknowledged soon after the start
    )
    collector = build_app(
        Settings.model_validate(
            {
                "exchanges": [replay_exchange(shared_data, "KRAKEN")],
                "bus": {**bus, "role": "collector", "collector_id": "k"},
                "api": {"enabled": False},
            }
        )
    )
    await collector.start()
    spawned: list[asyncio.subprocess.Process] = []
    try:
        await collector.services.feeds.wait_replays()  # type: ignore[union-attr]
        (publisher,) = [c for c in collector.components if isinstance(c, CollectorPublisher)]
        await wait_until(lambda: not publisher.queue, message="collector drained")
        stored, _ = await stream_state(server.url, bus)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=auth) as http:
            first = await spawn(cfg, "brain")
            spawned.append(first)

            async def acknowledged() -> bool:
                _, consumer = await stream_state(server.url, bus)
                return bool(consumer and consumer.ack_floor and consumer.ack_floor.stream_seq)

            await wait_until(acknowledged, timeout=60, interval=0.05, message="first brain")
            first.send_signal(signal.SIGKILL)
            await first.wait()
            _, consumer = await stream_state(server.url, bus)
            acked = consumer.ack_floor.stream_seq
            second = await spawn(cfg, "brain")
            spawned.append(second)
            done: dict[str, Any] = {}

            async def finished() -> bool:
                done.update(await brain_counters(http, port))
                _, consumer = await stream_state(server.url, bus)
                return (
                    bool(done)
                    and consumer is not None
                    and consumer.num_pending == 0
                    and consumer.num_ack_pending == 0
                )

            await wait_until(finished, timeout=60, interval=0.2, message="second brain done")
            assert await terminate(second) == 0
        _, consumer = await stream_state(server.url, bus)
        assert consumer is not None
        assert consumer.ack_floor is not None
        assert consumer.ack_floor.stream_seq == stored  # every stored batch acknowledged
        assert 0 < acked < stored
        # resumed: each batch after the acknowledged ones once, processed or already stored
        assert done["batches"] + done["committed"] == stored - acked
        assert done["duplicates"] == 0
    finally:
        for proc in spawned:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await collector.stop()
        await server.stop()


@pytest.mark.asyncio
async def test_brain_feed_health_follows_its_nats_connection(tmp_path: Path) -> None:
    """NATS going away makes the brain's `bus` feed disconnected (so /ready and
    /api/v1/feeds say so; it stayed `live` and `connected`), and live again once NATS is back."""
    nats_server = NatsServer(tmp_path)
    await nats_server.start()
    brain = build_app(brain_settings(tmp_path, bus_section(nats_server.url)))
    await brain.start()
    try:
        feeds = brain.services.feeds
        assert feeds is not None

        def bus() -> dict[str, Any]:
            return dict(feeds.health()["bus"])

        assert (bus()["state"], bus()["connected"]) == ("live", True)
        await nats_server.stop()
        await wait_until(lambda: bus()["state"] == "disconnected", timeout=10, message="down")
        assert bus()["connected"] is False
        await nats_server.start()
        await wait_until(lambda: bus()["state"] == "live", timeout=20, message="back")
        assert bus()["connected"] is True
        assert bus()["reconnects"] == 1
    finally:
        await brain.stop()
        await nats_server.stop()


@pytest.mark.asyncio
async def test_nats_back_without_its_storage_gets_streams_and_consumer_again(
    tmp_path: Path,
) -> None:
    """NATS restarted without its JetStream storage (no volume, a stream deleted): the
    collector declares the streams again and re-sends what it holds, the brain makes its
    consumer again, and market data flows (the collector failed every publish and the brain
    waited on a consumer that no longer existed, both for good)."""
    server = NatsServer(tmp_path)
    await server.start()
    section = bus_section(server.url)
    brain = build_app(brain_settings(tmp_path, section))
    got: list[Trade] = []
    brain.hub.subscribe(Trade, got.append, name="test-trades")
    await brain.start()
    hub = Hub()
    config = BusConfig.model_validate({**section, "role": "collector", "collector_id": "w"})
    publisher = CollectorPublisher(
        config=config, hub=hub, clock=LiveClock(), health=dict, instruments=dict
    )
    await publisher.start()

    def send(tag: str) -> None:
        for i in range(3):
            now = time.time()
            trade = Trade(
                exchange="x",
                symbol="A-USDT",
                ts=now,
                ts_recv=now,
                price=1.0,
                amount=1.0,
                side="buy",
                trade_id=f"{tag}{i}",
            )
            hub.publish(trade)
            publisher.flush()

    try:
        send("a")
        await wait_until(lambda: len(got) == 3, timeout=10, message="before")
        await server.stop()
        shutil.rmtree(server.store)
        await server.start()
        await wait_until(lambda: publisher.connected, timeout=10, message="collector back")
        send("b")
        await wait_until(lambda: len(got) == 6, timeout=20, message="after")
        assert [t.trade_id for t in got] == ["a0", "a1", "a2", "b0", "b1", "b2"]
        assert publisher.stats()["dropped_batches"] == 0
    finally:
        await publisher.stop()
        await brain.stop()
        await server.stop()
