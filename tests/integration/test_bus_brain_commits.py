"""The brain acknowledges a JetStream message only once the store committed its rows: a
``kill -9`` of the brain while its writer still holds them loses nothing, and the messages a
restarted brain gets again after the store committed them (the acknowledgement lost) are
stored once, candles from trades included (real nats-server, real SQLite, real recordings)."""

from __future__ import annotations

import asyncio
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from nats.aio.msg import Msg
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from cryptomon.app import build_app
from cryptomon.bus.collector import CollectorPublisher
from cryptomon.config import Settings
from cryptomon.store.models import CandleRow, TradeRow
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
from tests.integration.test_bus_scale import brain_counters, stream_state
from tests.util import wait_until

pytestmark = pytest.mark.timeout(150)
TOKEN = "commit-test-token-0123456789"
# trades stored; rows kept until the age flush; the recordings' old rows kept by retention
TRADES = {"trades": True, "market_batch_size": 1_000_000, "retention_days": 100_000}
VENUES = ("BINANCE_FUTURES", "OKX", "BITFINEX", "HUOBI_SWAP")  # ~400 trades, flagged included


async def published_by_collector(shared_data: Path, bus: dict[str, Any]) -> int:
    """Replay the recordings of ``VENUES`` through a collector into the stream; the trades
    (flagged ones included) it published."""
    collector = build_app(
        Settings.model_validate(
            {
                "exchanges": [replay_exchange(shared_data, venue) for venue in VENUES],
                "bus": {**bus, "role": "collector", "collector_id": "k"},
                "api": {"enabled": False},
            }
        )
    )
    counts = count_kinds(collector.hub)
    await collector.start()
    try:
        await collector.services.feeds.wait_replays()  # type: ignore[union-attr]
        (publisher,) = [c for c in collector.components if isinstance(c, CollectorPublisher)]
        await wait_until(lambda: not publisher.queue, message="collector drained")
    finally:
        await collector.stop()
    return counts["Trade"] + counts["FlaggedTrade"]


async def consumed(url: str, bus: dict[str, Any]) -> bool:
    """Every stored message delivered and acknowledged."""
    _, consumer = await stream_state(url, bus)
    return consumer is not None and consumer.num_pending == 0 and consumer.num_ack_pending == 0


async def stored_rows(db: Path) -> tuple[list[Any], list[Any]]:
    """(trades, 1-minute candles) in the brain's database."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with engine.connect() as conn:
            t, c = TradeRow, CandleRow
            trades = (
                await conn.execute(select(t.exchange, t.symbol, t.ts, t.amount, t.trade_id, t.flag))
            ).all()
            candles = (
                await conn.execute(
                    select(
                        c.exchange, c.symbol, c.open_time, c.volume, c.trade_count, c.source
                    ).where(c.interval == "1m")
                )
            ).all()
    finally:
        await engine.dispose()
    return list(trades), list(candles)


async def assert_stored_once(db: Path, published: int) -> None:
    """Every published trade stored exactly once; each candle from trades holds exactly its
    minute's (unflagged) trades (a minute the venue sent its own candle for keeps the venue's)."""
    trades, candles = await stored_rows(db)
    keys = [(r.exchange, r.symbol, r.trade_id, r.ts) for r in trades]
    assert len(set(keys)) == len(keys), "a trade stored twice"
    assert len(trades) == published
    minutes: dict[tuple[str, str, Any], list[float]] = defaultdict(list)
    for r in trades:
        if r.flag is None:
            start = r.ts.replace(second=0, microsecond=0)
            minutes[r.exchange, r.symbol, start].append(r.amount)
    from_trades = {
        (c.exchange, c.symbol, c.open_time): (c.volume, c.trade_count)
        for c in candles
        if c.source == "trades"
    }
    from_venue = {(c.exchange, c.symbol, c.open_time) for c in candles if c.source != "trades"}
    assert from_trades
    assert set(minutes) - set(from_trades) <= from_venue  # every other minute has its bar
    assert set(from_trades) <= set(minutes)
    for key, (volume, count) in from_trades.items():
        assert count == len(minutes[key]), key
        assert volume == pytest.approx(sum(minutes[key]), rel=1e-9), key


@pytest.mark.asyncio
async def test_brain_kill9_before_its_writer_flushed_loses_no_trade(
    tmp_path: Path, shared_data: Path
) -> None:
    """kill -9 of a brain that processed (and, before, acknowledged) batches its store writer
    had not written yet (storage.batch_max_age_s far away): a new brain gets them again, and
    every trade the collector published is stored exactly once, candles' volumes the sums."""
    server = NatsServer(tmp_path)
    await server.start()
    bus = bus_section(server.url, fetch_batch=16, ack_wait_s=120.0)
    db = tmp_path / "brain.db"
    port = free_port()
    common: dict[str, Any] = {
        "bus": bus,
        "api": {"port": port, "tokens": [{"name": "t", "token": TOKEN, "scopes": ["read"]}]},
        "database": {"url": f"sqlite+aiosqlite:///{db}"},
    }
    slow = write_config(
        tmp_path / "slow.yaml", storage={**TRADES, "batch_max_age_s": 100.0}, **common
    )
    quick = write_config(
        tmp_path / "quick.yaml", storage={**TRADES, "batch_max_age_s": 0.5}, **common
    )
    spawned: list[asyncio.subprocess.Process] = []
    try:
        published = await published_by_collector(shared_data, bus)
        assert published > 100
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession(headers=auth) as http:
            first = await spawn(slow, "brain")
            spawned.append(first)

            async def progressed() -> bool:
                return (await brain_counters(http, port)).get("batches", 0) > 0

            await wait_until(progressed, timeout=60, interval=0.05, message="first brain")
            first.send_signal(signal.SIGKILL)
            await first.wait()
            second = await spawn(quick, "brain")
            spawned.append(second)
            await wait_until(
                lambda: consumed(server.url, bus), timeout=90, interval=0.2, message="all acked"
            )
            assert await terminate(second) == 0
        await assert_stored_once(db, published)
    finally:
        for proc in spawned:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await server.stop()


@pytest.mark.asyncio
async def test_messages_committed_but_never_acknowledged_are_stored_once(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A brain whose acknowledgements never reach NATS (a crash between the store's commit and
    the ack) stops part-way; the next brain gets every message again: the ones the store
    committed are skipped, the rest stored, each trade once and each candle from trades (the
    minute the first brain stopped in included) with exactly its minute's volume."""
    server = NatsServer(tmp_path)
    await server.start()
    bus = bus_section(server.url, fetch_batch=4, ack_wait_s=120.0)
    db = tmp_path / "brain.db"
    settings = Settings.model_validate(
        {
            "bus": {**bus, "role": "brain"},
            "api": {"enabled": False},
            "database": {"url": f"sqlite+aiosqlite:///{db}"},
            "storage": {**TRADES, "market_batch_size": 100, "batch_max_age_s": 0.2},
        }
    )
    try:
        published = await published_by_collector(shared_data, bus)

        async def lost(self: Msg) -> None:  # the acknowledgement never reaches NATS
            return None

        with monkeypatch.context() as patch:
            patch.setattr(Msg, "ack", lost)
            first = build_app(settings)
            await first.start()
            try:
                writer = first.services.store_writer
                await wait_until(
                    lambda: writer.rows.get("trades", 0) > 0, timeout=60, message="a commit"
                )
            finally:
                await first.stop()
        _, consumer = await stream_state(server.url, bus)
        assert consumer is not None
        assert consumer.ack_floor.stream_seq == 0  # nothing acknowledged: all delivered again
        second = build_app(settings)
        await second.start()
        try:
            source = second.services.feeds.sources[0]  # type: ignore[union-attr]
            await wait_until(
                lambda: consumed(server.url, bus), timeout=90, interval=0.2, message="all acked"
            )
        finally:
            await second.stop()
        await assert_stored_once(db, published)
        assert source.counters["committed"] > 0  # skipped: stored by the first brain
        assert source.counters["batches"] > 0  # the rest: stored by this one
    finally:
        await server.stop()
