"""Batches larger than the NATS server's max_payload (a busy turn, big book snapshots), on a
private nats-server (DESIGN.md section 8)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nats
import pytest
from structlog.testing import capture_logs

from cryptomon.bus.codec import decode
from cryptomon.bus.collector import CollectorPublisher
from cryptomon.bus.source import BusFeedSource
from cryptomon.clock import LiveClock
from cryptomon.config import BusConfig
from cryptomon.events import BookSnapshot, Event, Trade
from cryptomon.hub import Hub
from cryptomon.market.registry import InstrumentRegistry
from tests.integration.bus_support import NatsServer, bus_section
from tests.util import wait_until

pytestmark = pytest.mark.timeout(60)


def snapshot(symbol: str, levels: int, n: int) -> BookSnapshot:
    now = time.time()
    return BookSnapshot(
        exchange="x",
        symbol=symbol,
        ts=now,
        ts_recv=now,
        bids=tuple((60000.0 - i * 0.01 - n, 0.123456789 + i) for i in range(levels)),
        asks=tuple((60001.0 + i * 0.01 + n, 0.987654321 + i) for i in range(levels)),
    )


def trade(symbol: str, n: int) -> Trade:
    now = time.time()
    return Trade(
        exchange="x",
        symbol=symbol,
        ts=now,
        ts_recv=now,
        price=60000.0 + n,
        amount=0.5,
        side="buy",
        trade_id=str(n),
    )


@pytest.mark.asyncio
async def test_a_turn_larger_than_max_payload_goes_out_as_several_batches(tmp_path: Path) -> None:
    """One turn's events of a symbol encoding to more than max_payload are published as
    consecutive batches (every event once, in order) instead of a batch NATS refuses forever,
    which held up every batch behind it; a single event too large on its own is dropped and
    counted, and the data after it still flows."""
    server = NatsServer(tmp_path)
    await server.start()
    config = BusConfig.model_validate(bus_section(server.url, role="collector", collector_id="p"))
    hub, clock = Hub(), LiveClock()
    publisher = CollectorPublisher(config=config, hub=hub, clock=clock, health=dict)
    await publisher.start()
    try:
        sent: list[Event] = []
        for n in range(4):  # ~1.6 MB of one symbol in one turn
            sent += [snapshot("BTC-USDT", 9000, n), trade("BTC-USDT", n)]
        sent.append(trade("ETH-USDT", 99))
        with capture_logs() as logs:
            hub.publish(snapshot("BIG-USDT", 30000, 0))  # > 1 MB alone
            for event in sent:
                hub.publish(event)
            publisher.flush()
        assert [e["event"] for e in logs if e["log_level"] == "error"] == ["bus.event_too_large"]
        await wait_until(
            lambda: publisher.stats_counts["published_events"] == len(sent),
            timeout=20,
            message="all published",
        )
        stats = publisher.stats()
        assert stats["publish_errors"] == 0
        assert (stats["dropped_batches"], stats["dropped_events"]) == (1, 1)
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe(f"{config.subject_prefix}.md.>", stream=config.stream)
            batches = [decode(msg.data) for msg in await sub.fetch(100, timeout=5)]
        finally:
            await nc.close()
        assert len(batches) > 2  # BTC-USDT split, ETH-USDT whole
        assert max(map(len, (b.events for b in batches))) < len(sent)
        got = [event for batch in batches for event in batch.events]
        by_symbol = {sym: [e for e in got if e.symbol == sym] for sym in ("BTC-USDT", "ETH-USDT")}
        assert by_symbol["BTC-USDT"] == [e for e in sent if e.symbol == "BTC-USDT"]
        assert by_symbol["ETH-USDT"] == [e for e in sent if e.symbol == "ETH-USDT"]
        assert len(got) == len(sent)
        assert len({b.seq for b in batches}) == len(batches)
    finally:
        await publisher.stop()
        await server.stop()


@pytest.mark.asyncio
async def test_a_venue_list_of_specs_beyond_max_payload_reaches_the_brain(tmp_path: Path) -> None:
    """A collector's instrument specs whose JSON exceeds max_payload (a venue's whole list)
    reach the brain's registry, and the market data queued behind them flows: the refused
    message was retried forever ahead of every batch."""
    server = NatsServer(tmp_path)
    await server.start()
    section = bus_section(server.url, collector_id="s")
    specs = [
        {
            "exchange": "x",
            "symbol": f"COIN{n}-USDT",
            "base": f"COIN{n}",
            "quote": "USDT",
            "kind": "spot",
            "tick_size": "0.0001",
            "lot_size": "0.001",
            "min_qty": "0.001",
            "min_notional": "5",
        }
        for n in range(8000)
    ]
    assert len(json.dumps(specs)) > 1024 * 1024
    hub, clock = Hub(), LiveClock()
    publisher = CollectorPublisher(
        config=BusConfig.model_validate({**section, "role": "collector"}),
        hub=hub,
        clock=clock,
        health=dict,
        instruments=lambda: {"x": specs},
    )
    brain_hub = Hub()
    registry = InstrumentRegistry()
    source = BusFeedSource(
        config=BusConfig.model_validate({**section, "role": "brain"}),
        hub=brain_hub,
        clock=clock,
        registry=registry,
    )
    trades: list[Event] = []
    brain_hub.subscribe(Trade, trades.append, name="test-trades")
    await publisher.start()
    await source.start()
    try:
        hub.publish(trade("COIN7-USDT", 1))
        await wait_until(lambda: len(registry.specs("x")) == len(specs), timeout=20)
        await wait_until(lambda: len(trades) == 1, timeout=20, message="data behind the specs")
        assert registry.get("x", "COIN7999-USDT") is not None
        assert source.counters["bad"] == 0
    finally:
        await source.stop()
        await publisher.stop()
        await server.stop()
