"""The trading lease against the ccxt broker on the simulator: an order held at the venue's
rate-limit gate past the lease's validity is not sent (DESIGN.md sections 5 and 8)."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from pathlib import Path

import pytest

from cryptomon.bus.lease import LeasedBroker, TradingLease
from cryptomon.clock import ManualClock
from cryptomon.config import BusConfig, LiveTradingConfig
from cryptomon.events import OrderIntent
from cryptomon.hub import Hub
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.trading import Fault
from cryptomon.sim.venue import install
from cryptomon.trading.brokers.base import OrderRejectedError
from cryptomon.trading.brokers.ccxt import CcxtBroker
from cryptomon.trading.brokers.ccxt_gate import VenueGate
from tests.integration.bus_support import NatsServer, bus_section
from tests.util import wait_until

pytestmark = pytest.mark.timeout(60)
KEY, SECRET = "sim-key", "sim-secret"
PLACE = ("POST", "/api/v3/order")


def buy(cid: str) -> OrderIntent:
    now = time.time()
    return OrderIntent(
        exchange="simulator",
        symbol="BTC-USDT",
        ts=now,
        ts_recv=now,
        client_order_id=cid,
        side="buy",
        type="market",
        amount=Decimal("0.01"),
    )


@pytest.mark.asyncio
async def test_an_order_waiting_at_the_venue_gate_past_the_lease_is_not_sent(
    tmp_path: Path,
) -> None:
    """The brain holds the lease and places an order while the venue's gate is closed by a
    429 (Retry-After 10 s, beyond the lease's local validity of 8 s); NATS goes away
    meanwhile, so the lease is not renewed. When the gate opens the order is refused, never
    sent: a standby brain may hold the lease by then. With the lease still valid after the
    wait, the next order goes out."""
    server = NatsServer(tmp_path)
    await server.start()
    sim = SimExchange(MarketModel(["BTC-USDT"], seed=7), clock=ManualClock(time.time()))
    endpoints = install(sim, api_key=KEY, api_secret=SECRET, balances={"USDT": Decimal(10_000)})
    await sim.start(run=False)
    clock = ManualClock(time.time())
    cfg = LiveTradingConfig(exchange="binance", api_key=KEY, secret=SECRET, url=sim.rest_url)
    gate = VenueGate("ccxt:binance", clock=clock, max_wait_s=30.0)
    inner = CcxtBroker(cfg, clock=clock, exchange_name="simulator", gate=gate)
    config = BusConfig.model_validate(bus_section(server.url, role="brain", lease_ttl_s=10.0))
    lease = TradingLease(config=config, clock=clock, hub=Hub())
    broker = LeasedBroker(inner, lease=lease)
    await broker.start()
    await lease.start()
    try:
        assert lease.held()
        fault = endpoints.faults.add(
            Fault(kind="status", status=429, retry_after_s=10, method="GET", path="/api/v3/account")
        )
        balances = asyncio.create_task(broker.fetch_balances())  # its 429 closes the gate
        await wait_until(fault.reached.is_set, message="429")
        await wait_until(lambda: gate.remaining() > 0, message="gate closed")
        waiting = clock.sleepers
        placing = asyncio.create_task(broker.place_order(buy("cm-late")))
        await wait_until(lambda: clock.sleepers > waiting, message="the order waits at the gate")
        await server.stop()  # NATS away: the lease cannot be renewed
        clock.advance(10.1)
        with pytest.raises(OrderRejectedError, match="trading lease"):
            await asyncio.wait_for(placing, 10)
        assert not lease.held()
        assert endpoints.requests[PLACE] == 0
        assert broker.refused == 1
        assert (await asyncio.wait_for(balances, 10))["USDT"] == Decimal(10_000)
    finally:
        await lease.stop()
        await broker.stop()
        await sim.stop()
        await server.stop()
