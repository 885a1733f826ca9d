"""The live broker checks a perpetual's spec (from ccxt ``binanceusdm``'s markets of the
simulator's USD-M venue) before it sends anything: no leverage call, no order."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
import pytest_asyncio

from cryptomon.clock import ManualClock
from cryptomon.config import LiveTradingConfig
from cryptomon.events import OrderIntent
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.usdm import UsdmVenue
from cryptomon.trading.brokers.base import OrderRejectedError
from cryptomon.trading.brokers.ccxt import CcxtBroker

D = Decimal
EX, PERP, VENUE_ID = "binanceusdm", "BTC-USDT-PERP", "BTCUSDT"
KEY, SECRET = "spec-key", "spec-secret"


@dataclass
class Usdm:
    venue: UsdmVenue
    broker: CcxtBroker


def order(cid: str, amount: str, **kw: object) -> OrderIntent:
    now = time.time()
    fields: dict[str, object] = {"side": "buy", "type": "market", **kw}
    return OrderIntent(
        exchange=EX,
        symbol=PERP,
        ts=now,
        ts_recv=now,
        client_order_id=cid,
        amount=D(amount),
        **fields,  # type: ignore[arg-type]
    )


@pytest_asyncio.fixture
async def usdm() -> AsyncIterator[Usdm]:
    sim = SimExchange(MarketModel(["BTC-USDT"], seed=5), clock=ManualClock(time.time()))
    venue = UsdmVenue(api_key=KEY, api_secret=SECRET)
    venue.set_price(VENUE_ID, D(1000))  # 0.001 (the minimum quantity) is worth 1 USDT < 5
    sim.add_routes(venue.routes())
    await sim.start(run=False)
    live = LiveTradingConfig(exchange=EX, api_key=KEY, secret=SECRET, url=sim.rest_url)
    broker = CcxtBroker(live, exchange_name=EX, contract_markets=True)
    await broker.start()
    try:
        yield Usdm(venue, broker)
    finally:
        await broker.stop()
        await sim.stop()


@pytest.mark.asyncio
async def test_perpetual_orders_off_the_spec_are_refused_before_any_venue_call(
    usdm: Usdm,
) -> None:
    """Off-lot amount, order value below the venue's MIN_NOTIONAL at the touch, and a limit
    price off the tick are refused with the risk checks' words; the venue sees no signed
    request (no leverage, no order)."""
    with pytest.raises(OrderRejectedError) as lot:
        await usdm.broker.place_order(order("cm-p-lot", "0.0015"))
    assert (
        lot.value.reason == "amount 0.0015 is not a whole number of lots (0.001) of BTC-USDT-PERP"
    )
    with pytest.raises(OrderRejectedError) as small:
        await usdm.broker.place_order(order("cm-p-small", "0.001"))
    assert small.value.reason.startswith("order value 1.0")
    assert small.value.reason.endswith(" USDT is below the minimum 5 USDT of BTC-USDT-PERP")
    with pytest.raises(OrderRejectedError) as tick:
        await usdm.broker.place_order(order("cm-p-tick", "0.01", type="limit", price=D("999.95")))
    assert tick.value.reason == "price 999.95 is not a multiple of tick size 0.1"
    assert [r for r in usdm.venue.requests if r[0] == "POST"] == []


@pytest.mark.asyncio
async def test_a_reduce_only_exit_below_the_minimums_still_goes_out(usdm: Usdm) -> None:
    """An exit is not held to the minimum order value (a venue lets a position close): after a
    10-contract entry, a reduce-only sell of 0.001 worth 1 USDT reaches the venue and fills."""
    entry = await usdm.broker.place_order(order("cm-p-in", "0.01"))
    assert entry.filled == D("0.01")
    exit_ = await usdm.broker.place_order(order("cm-p-out", "0.001", side="sell", reduce_only=True))
    assert exit_.filled == D("0.001")
    assert (await usdm.broker.fetch_positions())[PERP] == D("0.009")
