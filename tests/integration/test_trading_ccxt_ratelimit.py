"""The venue gate against the simulator: a 429/418 with Retry-After holds every request of
every caller of the ccxt broker (lookups included) until the venue's wait has passed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
import pytest_asyncio

from cryptomon.clock import ManualClock
from cryptomon.config import LiveTradingConfig
from cryptomon.errors import TemporaryError
from cryptomon.events import OrderIntent
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.trading import Fault, TradingEndpoints
from cryptomon.sim.venue import install
from cryptomon.trading.brokers.base import OrderRejectedError
from cryptomon.trading.brokers.ccxt import CcxtBroker
from cryptomon.trading.brokers.ccxt_gate import VenueGate
from tests.util import wait_until

KEY, SECRET = "sim-key", "sim-secret"
ORDER = ("GET", "/api/v3/order")
ACCOUNT = ("GET", "/api/v3/account")


@dataclass
class Rig:
    endpoints: TradingEndpoints
    broker: CcxtBroker
    clock: ManualClock


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    sim = SimExchange(MarketModel(["BTC-USDT"], seed=7), clock=ManualClock(time.time()))
    endpoints = install(sim, api_key=KEY, api_secret=SECRET, balances={"USDT": Decimal(10_000)})
    await sim.start(run=False)
    clock = ManualClock(time.time())
    cfg = LiveTradingConfig(exchange="binance", api_key=KEY, secret=SECRET, url=sim.rest_url)
    gate = VenueGate("ccxt:binance", clock=clock, max_wait_s=30.0)
    broker = CcxtBroker(cfg, clock=clock, exchange_name="simulator", gate=gate)
    await broker.start()
    try:
        yield Rig(endpoints, broker, clock)
    finally:
        await broker.stop()
        await sim.stop()


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
async def test_429_on_a_lookup_holds_every_caller_until_retry_after_has_passed(rig: Rig) -> None:
    """After a 429 with Retry-After: 10 on a lookup, neither the lookup's retry nor another
    caller's balance read reaches the venue before 10 s; both go through after."""
    fault = rig.endpoints.faults.add(
        Fault(kind="status", status=429, retry_after_s=10, method="GET", path=ORDER[1])
    )
    lookup = asyncio.create_task(rig.broker.fetch_order("BTC-USDT", "cm-none"))
    await wait_until(lambda: fault.reached.is_set() and rig.clock.sleepers == 1)
    balances = asyncio.create_task(rig.broker.fetch_balances())
    await wait_until(lambda: rig.clock.sleepers == 2, message="both callers at the gate")
    account_before = rig.endpoints.requests[ACCOUNT]
    rig.clock.advance(9.9)
    await wait_until(lambda: rig.clock.sleepers == 2, message="still waiting at 9.9 s")
    assert rig.endpoints.requests[ORDER] == 1
    assert rig.endpoints.requests[ACCOUNT] == account_before
    rig.clock.advance(0.2)
    assert await asyncio.wait_for(lookup, 10) is None
    assert (await asyncio.wait_for(balances, 10))["USDT"] == Decimal(10_000)
    assert rig.endpoints.requests[ORDER] == 2
    assert rig.broker.gate.hits == 1


@pytest.mark.asyncio
async def test_418_ban_longer_than_the_gate_waits_sends_nothing_and_says_why(rig: Rig) -> None:
    """A 418 (IP ban, default 60 s) beyond the gate's wait: reads fail as temporary and an
    order is rejected as not sent, naming the wait; the venue sees neither."""
    rig.endpoints.faults.add(Fault(kind="status", status=418, method="GET", path=ACCOUNT[1]))
    with pytest.raises(TemporaryError, match=r"wait 60\.0 s more \(HTTP 418\)"):
        await rig.broker.fetch_balances()
    assert rig.endpoints.requests[ACCOUNT] == 1
    with pytest.raises(OrderRejectedError, match="not sent") as refused:
        await rig.broker.place_order(buy("cm-418"))
    # the book read that values the order met the ban: said so, not as a failed spec
    reason = str(refused.value)
    assert "the venue's book could not be read" in reason
    assert "spec check failed" not in reason
    assert reason.count("not sent") == 1
    assert rig.endpoints.requests[("POST", "/api/v3/order")] == 0
    rig.clock.advance(60.0)
    assert (await rig.broker.fetch_balances())["USDT"] == Decimal(10_000)
