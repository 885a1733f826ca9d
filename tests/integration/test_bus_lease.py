"""The single-writer trading lease, the collector's bounded buffer and the outbound events,
on a private nats-server (DESIGN.md sections 5 and 8)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from decimal import Decimal
from pathlib import Path

import nats
import pytest
from structlog.testing import capture_logs

from cryptomon.bus.collector import CollectorPublisher
from cryptomon.bus.connect import events_stream, meta_stream
from cryptomon.bus.lease import LeasedBroker, TradingLease
from cryptomon.bus.outbound import EventPublisher
from cryptomon.bus.roles import LEASE_REASON, gate_trading, lease_risk_gate
from cryptomon.clock import LiveClock
from cryptomon.config import BusConfig
from cryptomon.events import Anomaly, Fill, OrderIntent, OrderState, OrderUpdate, Severity, Trade
from cryptomon.hub import Hub
from cryptomon.market.state import MarketState
from cryptomon.trading.brokers.base import OrderRejectedError
from cryptomon.trading.brokers.paper import PaperBroker
from cryptomon.trading.risk import RiskState
from tests.integration.bus_support import NatsServer, bus_section
from tests.unit.trading.helpers import book, paper_engine, trading_config
from tests.util import wait_until

pytestmark = pytest.mark.timeout(60)
SYM = "BTC-USDT"


def intent(cid: str) -> OrderIntent:
    now = time.time()
    return OrderIntent(
        exchange="binance",
        symbol=SYM,
        ts=now,
        ts_recv=now,
        client_order_id=cid,
        side="buy",
        type="limit",
        amount=Decimal("0.01"),
        price=Decimal("50"),  # far below the book: the orders rest in the venue's order list
    )


@pytest.mark.asyncio
async def test_two_brains_racing_for_the_lease_never_both_trade(tmp_path: Path) -> None:
    """Two brains with trading on start together against one venue: one holds the lease, the
    other says loudly that it runs without trading and sends nothing; when the holder dies
    (no release) the other takes over only after the holder's last order, and the venue's
    order log never interleaves the two."""
    server = NatsServer(tmp_path)
    await server.start()
    config = BusConfig.model_validate(bus_section(server.url, role="brain", lease_ttl_s=1.0))
    clock, hub = LiveClock(), Hub()
    market = MarketState(hub=hub)
    venue = PaperBroker(config=trading_config().paper, market=market, hub=hub, clock=clock)
    book(hub, clock, bid=100.0, ask=101.0)
    leases = {name: TradingLease(config=config, clock=clock, hub=hub) for name in "ab"}
    brokers = {name: LeasedBroker(venue, lease=lease) for name, lease in leases.items()}
    stop = asyncio.Event()

    async def trade(name: str) -> None:
        for n in itertools.count():
            if stop.is_set():
                return
            with contextlib.suppress(OrderRejectedError):
                await brokers[name].place_order(intent(f"{name}-{n}"))
            await asyncio.sleep(0.005)  # pacing of the order flow, not a wait for a result

    try:
        with capture_logs() as logs:
            await asyncio.gather(*(lease.start() for lease in leases.values()))
        holders = [name for name, lease in leases.items() if lease.held()]
        assert len(holders) == 1
        holder, other = holders[0], "b" if holders[0] == "a" else "a"
        loud = [e for e in logs if e["event"] == "bus.lease_not_held"]
        assert loud
        assert loud[0]["log_level"] == "critical"
        traders = [asyncio.ensure_future(trade(name)) for name in "ab"]
        await wait_until(lambda: brokers[holder].inner is venue and len(venue._orders) > 5)
        task = leases[holder]._task
        assert task is not None
        task.cancel()
        await wait_until(leases[other].held, timeout=10, message="takeover")
        await wait_until(lambda: any(c.startswith(other) for c in venue._orders), timeout=5)
        stop.set()
        await asyncio.gather(*traders)
        log = [cid[0] for cid in venue._orders]
        switch = log.index(other)
        assert set(log[:switch]) == {holder}
        assert set(log[switch:]) == {other}
        assert brokers[other].refused > 0
        assert brokers[holder].refused > 0  # the dead holder's validity ran out before the TTL
    finally:
        for lease in leases.values():
            await lease.stop()
        await server.stop()


@pytest.mark.asyncio
async def test_losing_the_lease_makes_the_engine_reducing_and_holding_it_active() -> None:
    """The lease's on_change puts the engine in reducing without it and back to active with it;
    a kill switch (halted) is never undone by the lease."""
    engine, _, _, _, _ = paper_engine()
    apply = lease_risk_gate(engine.context)
    engine.context.set_risk_state(RiskState.ACTIVE, "test")
    apply(False)
    assert engine.risk_state == RiskState.REDUCING
    assert engine.state_reason == LEASE_REASON
    apply(True)
    assert engine.risk_state == RiskState.ACTIVE
    engine.context.set_risk_state(RiskState.HALTED, "kill switch")
    apply(True)
    apply(False)
    assert engine.risk_state == RiskState.HALTED


def test_a_standby_engine_is_never_active_without_the_lease() -> None:
    """Without the lease, the engine's own return to active (the start-up reconciliation, a
    resume) is turned back to reducing at once, not at the next lease renewal; with it, the
    engine may be active."""
    engine, _, hub, _, clock = paper_engine()
    config = BusConfig.model_validate({"role": "brain"})
    lease = TradingLease(config=config, clock=clock, hub=hub)
    gate_trading(lease, engine.context, hub=hub)
    engine.context.set_risk_state(RiskState.ACTIVE, "reconciled with the broker")
    assert engine.risk_state == RiskState.REDUCING
    assert engine.state_reason == LEASE_REASON
    lease.valid_until = clock.monotonic() + 5  # as a successful renewal sets it
    assert lease.on_change is not None
    lease.on_change(True)
    assert engine.risk_state == RiskState.ACTIVE


@pytest.mark.asyncio
async def test_bounded_buffer_drops_only_market_data_while_nats_is_away(tmp_path: Path) -> None:
    """With NATS away the collector keeps at most buffer_max_batches market data batches,
    dropping (and counting) the oldest; instrument specs are kept; all kept ones arrive once
    NATS is back."""
    server = NatsServer(tmp_path)
    await server.start()
    config = BusConfig.model_validate(
        bus_section(server.url, role="collector", collector_id="b", buffer_max_batches=5)
    )
    hub, clock = Hub(), LiveClock()
    specs = {"x": [{"symbol": "A-USDT"}]}
    publisher = CollectorPublisher(
        config=config, hub=hub, clock=clock, health=dict, instruments=lambda: specs
    )
    await publisher.start()
    try:
        await wait_until(lambda: not publisher.control, message="first specs sent")
        await server.stop()
        await wait_until(lambda: not publisher.connected, message="disconnected")
        specs["x"].append({"symbol": "B-USDT"})
        publisher.queue_instruments()
        for n in range(20):
            now = time.time()
            hub.publish(
                Trade(
                    exchange="x",
                    symbol=f"S{n}-USDT",
                    ts=now,
                    ts_recv=now,
                    price=1.0,
                    amount=1.0,
                    side="buy",
                )
            )
            publisher.flush()
        stats = publisher.stats()
        assert (stats["dropped_batches"], stats["dropped_events"]) == (15, 15)
        assert stats["buffered_batches"] == 5
        assert len(publisher.control) == 1
        await server.start()
        await wait_until(
            lambda: not publisher.queue and not publisher.control, timeout=20, message="drained"
        )
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        md = await js.stream_info(config.stream)
        meta = await js.stream_info(meta_stream(config))
        last = await js.get_last_msg(meta_stream(config), f"{config.subject_prefix}.instruments.x")
        await nc.close()
        assert md.state.messages == 5
        assert meta.state.last_seq == 2
        assert b"B-USDT" in last.data
    finally:
        await publisher.stop()
        await server.stop()


@pytest.mark.asyncio
async def test_outbound_events_are_published_once_with_their_schema(tmp_path: Path) -> None:
    """Anomalies and fills published on the brain's hub land on their subjects in the events
    stream as schema-1 JSON; the same anomaly published twice (a reprocessing) is stored once."""
    server = NatsServer(tmp_path)
    await server.start()
    config = BusConfig.model_validate(bus_section(server.url, role="brain"))
    hub, clock = Hub(), LiveClock()
    publisher = EventPublisher(config=config, hub=hub, clock=clock)
    await hub.start()
    await publisher.start()
    try:
        now = time.time()
        anomaly = Anomaly(
            exchange="binance",
            symbol=SYM,
            ts=now,
            ts_recv=now,
            kind="volume_spike",
            severity=Severity.HIGH,
            value=5.0,
            threshold=3.0,
            confidence=0.9,
            id="a" * 32,
        )
        fill = Fill(
            exchange="binance",
            symbol=SYM,
            ts=now,
            ts_recv=now,
            trade_id="t1",
            client_order_id="c1",
            side="buy",
            amount=Decimal("0.5"),
            price=Decimal("100.10"),
            fee=Decimal("0.05"),
            fee_currency="USDT",
        )
        for event in (anomaly, anomaly, fill):
            hub.publish(event)
        await wait_until(lambda: publisher.published == 3, message="published")
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        info = await js.stream_info(events_stream(config))
        prefix = config.subject_prefix
        got_anomaly = await js.get_last_msg(
            events_stream(config), f"{prefix}.anomaly.binance.{SYM}"
        )
        got_fill = await js.get_last_msg(events_stream(config), f"{prefix}.fill.binance.{SYM}")
        await nc.close()
        assert info.state.messages == 2  # the second anomaly was a duplicate (Nats-Msg-Id)
        body = json.loads(got_anomaly.data)
        assert (body["schema"], body["type"], body["id"]) == (1, "anomaly", "a" * 32)
        assert json.loads(got_fill.data)["price"] == "100.10"
    finally:
        await publisher.stop()
        await hub.stop()
        await server.stop()


def _strict_json(data: bytes) -> dict[str, object]:
    """``data`` parsed as standard JSON: NaN, Infinity and -Infinity are refused."""

    def refuse(name: str) -> object:
        raise ValueError(f"not JSON: {name}")

    return json.loads(data, parse_constant=refuse)  # type: ignore[no-any-return]


@pytest.mark.asyncio
async def test_outbound_order_ids_ignore_how_the_amount_is_written_and_json_stays_valid(
    tmp_path: Path,
) -> None:
    """The same order state with ``filled`` written 1.0, 1.00 and 1E+0 (and 0, -0, 0E-8) is
    one message each in the events stream (one Nats-Msg-Id); an anomaly with a NaN z-score
    and an infinite window deviation is standard JSON, the non-finite numbers spelled
    "nan"/"inf" and named in ``nf`` as the market-data batches do. Before, each spelling was
    its own message id (stored three times) and the anomaly carried NaN/Infinity literals
    that standard JSON parsers refuse."""
    server = NatsServer(tmp_path)
    await server.start()
    config = BusConfig.model_validate(bus_section(server.url, role="brain"))
    hub, clock = Hub(), LiveClock()
    publisher = EventPublisher(config=config, hub=hub, clock=clock)
    await hub.start()
    await publisher.start()
    try:
        now = time.time()

        def update(state: OrderState, filled: str) -> OrderUpdate:
            return OrderUpdate(
                exchange="binance",
                symbol=SYM,
                ts=now,
                ts_recv=now,
                client_order_id="c1",
                state=state,
                side="buy",
                type="limit",
                amount=Decimal(1),
                filled=Decimal(filled),
            )

        anomaly = Anomaly(
            exchange="binance",
            symbol=SYM,
            ts=now,
            ts_recv=now,
            kind="volume_spike",
            severity=Severity.HIGH,
            value=5.0,
            threshold=3.0,
            confidence=0.9,
            z_score=float("nan"),
            window_std=float("inf"),
            price_change_pct=float("-inf"),
            id="b" * 32,
        )
        events = [update(OrderState.SUBMITTED, f) for f in ("0", "-0", "0E-8")]
        events += [update(OrderState.FILLED, f) for f in ("1.0", "1.00", "1E+0")]
        for event in (*events, anomaly):
            hub.publish(event)
        await wait_until(lambda: publisher.published == 7, message="published")
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        info = await js.stream_info(events_stream(config))
        prefix = config.subject_prefix
        got = await js.get_last_msg(events_stream(config), f"{prefix}.anomaly.binance.{SYM}")
        await nc.close()
        assert info.state.messages == 3  # submitted once, filled once, the anomaly
        body = _strict_json(got.data)
        assert (body["z_score"], body["window_std"], body["price_change_pct"]) == (
            "nan",
            "inf",
            "-inf",
        )
        assert body["nf"] == ["z_score", "price_change_pct", "window_std"]
        assert body["value"] == 5.0
    finally:
        await publisher.stop()
        await hub.stop()
        await server.stop()
