"""The ccxt broker against the loopback simulator: real ccxt code (signing, parsing) talking
to the SimExchange with the Binance trading endpoints and matching engine installed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import pytest
import pytest_asyncio

from cryptomon.clock import ManualClock
from cryptomon.config import LiveTradingConfig
from cryptomon.errors import FatalError, TemporaryError
from cryptomon.events import OrderIntent, OrderState
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.trading import Fault, TradingEndpoints
from cryptomon.sim.venue import install
from cryptomon.trading.brokers.base import OrderOutcomeUnknown, OrderRejectedError
from cryptomon.trading.brokers.ccxt import CcxtBroker
from cryptomon.trading.brokers.ccxt_spec import market_spec
from cryptomon.trading.risk import Limits, MarketView, PortfolioView, check

KEY, SECRET = "sim-key", "sim-secret"


@dataclass
class Venue:
    sim: SimExchange
    endpoints: TradingEndpoints
    broker: CcxtBroker
    clock: ManualClock


def intent(cid: str, side: str = "buy", type_: str = "market", amount: str = "0.01", **kw):
    now = time.time()
    return OrderIntent(
        exchange="simulator",
        symbol="BTC-USDT",
        ts=now,
        ts_recv=now,
        client_order_id=cid,
        side=side,  # type: ignore[arg-type]
        type=type_,  # type: ignore[arg-type]
        amount=Decimal(amount),
        **kw,
    )


def live_config(url: str, secret: str = SECRET) -> LiveTradingConfig:
    return LiveTradingConfig(exchange="binance", api_key=KEY, secret=secret, url=url)


@pytest_asyncio.fixture
async def venue() -> AsyncIterator[Venue]:
    clock = ManualClock(time.time())
    sim = SimExchange(MarketModel(["BTC-USDT"], seed=7), clock=clock)
    endpoints = install(
        sim,
        api_key=KEY,
        api_secret=SECRET,
        balances={"USDT": Decimal(10_000), "BTC": Decimal("0.5")},
    )
    await sim.start(run=False)
    broker = CcxtBroker(live_config(sim.rest_url), exchange_name="simulator")  # live clock
    await broker.start()
    try:
        yield Venue(sim, endpoints, broker, clock)
    finally:
        await broker.stop()
        await sim.stop()


def best(venue: Venue) -> tuple[float, float]:
    bids, asks = venue.sim.market.book("BTC-USDT")
    return bids[0][0], asks[0][0]


@pytest.mark.asyncio
async def test_market_info_comes_from_the_simulator_filters(venue: Venue) -> None:
    """MarketInfo carries the simulator's tick, lot and min notional; no native SL/TP legs on
    spot (two resting sells would both lock the base asset)."""
    info = await venue.broker.market("BTC-USDT")
    assert (info.base, info.quote) == ("BTC", "USDT")
    assert info.tick_size == Decimal("0.01")
    assert info.lot_size == Decimal("0.00001")
    assert info.min_notional == Decimal(5)
    assert info.native_stop_loss is False


@pytest.mark.asyncio
async def test_market_buy_fills_at_the_book_with_taker_fee_and_moves_balances(
    venue: Venue,
) -> None:
    """A market buy walks the book; fills, fee and balances agree with the book it hit."""
    _, ask = best(venue)
    before = await venue.broker.fetch_balances()
    order = await venue.broker.place_order(intent("cm-mkt-1", amount="0.01"))
    assert order.state is OrderState.FILLED
    assert order.client_order_id == "cm-mkt-1"
    assert {f.exchange for f in order.fills} == {"simulator"}
    assert order.filled == Decimal("0.01")
    assert sum(f.amount for f in order.fills) == Decimal("0.01")
    assert order.fills[0].price == Decimal(str(ask))
    cost = sum(f.amount * f.price for f in order.fills)
    fee = sum(f.fee for f in order.fills)
    assert fee == cost * Decimal("0.001")
    after = await venue.broker.fetch_balances()
    assert after["BTC"] - before["BTC"] == Decimal("0.01")
    assert before["USDT"] - after["USDT"] == cost + fee
    sim_order = venue.endpoints.engine.orders[1]
    assert sim_order.client_order_id == "cm-mkt-1"
    fetched = await venue.broker.fetch_fills("BTC-USDT")
    assert [(f.trade_id, f.client_order_id) for f in fetched] == [
        (f.trade_id, "cm-mkt-1") for f in order.fills
    ]


@pytest.mark.asyncio
async def test_limit_order_round_trip_fetch_open_cancel(venue: Venue) -> None:
    """A resting limit is visible by client id and in open orders, and cancels cleanly."""
    bid, _ = best(venue)
    price = Decimal(str(bid)) - Decimal(100)
    placed = await venue.broker.place_order(
        intent("cm-lim-1", type_="limit", amount="0.02", price=price)
    )
    assert placed.state is OrderState.SUBMITTED
    fetched = await venue.broker.fetch_order("BTC-USDT", "cm-lim-1")
    assert fetched is not None
    assert (fetched.state, fetched.price, fetched.amount) == (
        OrderState.SUBMITTED,
        price,
        Decimal("0.02"),
    )
    open_orders = await venue.broker.fetch_open_orders()
    assert [o.client_order_id for o in open_orders] == ["cm-lim-1"]
    canceled = await venue.broker.cancel_order("BTC-USDT", "cm-lim-1")
    assert canceled.state is OrderState.CANCELED
    assert canceled.client_order_id == "cm-lim-1"
    assert await venue.broker.fetch_open_orders("BTC-USDT") == []
    balances = await venue.broker.fetch_balances()
    assert balances["USDT"] == Decimal(10_000)


@pytest.mark.asyncio
async def test_amount_and_price_are_rounded_to_the_market_precision(venue: Venue) -> None:
    """An amount on the lot reaches the venue as sent; a limit price on the tick too."""
    bid, _ = best(venue)
    price = (Decimal(str(bid)) - Decimal(50)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    await venue.broker.place_order(
        intent("cm-prec-1", type_="limit", amount="0.01234", price=price)
    )
    sim_order = venue.endpoints.engine.orders[1]
    assert sim_order.orig_qty == Decimal("0.01234")
    assert sim_order.price == price


@pytest.mark.asyncio
async def test_the_spec_refuses_off_lot_off_tick_and_too_small_orders_before_sending(
    venue: Venue,
) -> None:
    """Lot, tick and minimum order value are checked against the market's spec before anything
    is sent, with the reason text of the risk checks and the paper broker."""
    bid, _ = best(venue)
    off_tick = Decimal(str(bid)) - Decimal("50.123456")
    with pytest.raises(OrderRejectedError) as lot:
        await venue.broker.place_order(intent("cm-lot-1", amount="0.0123456789"))
    assert lot.value.reason == (
        "amount 0.0123456789 is not a whole number of lots (0.00001) of BTC-USDT"
    )
    ex = venue.broker.exchange
    spec = market_spec(ex, ex.markets["BTC/USDT"], "simulator")
    assert spec is not None
    by_risk = check(
        intent("cm-lot-1", amount="0.0123456789", origin="manual"),
        PortfolioView(equity=Decimal(10_000)),
        MarketView(mid=Decimal(str(bid)), spec=spec),
        Limits(),
    )
    assert (by_risk.check, by_risk.reason) == ("lot_size", lot.value.reason)
    with pytest.raises(OrderRejectedError) as tick:
        await venue.broker.place_order(
            intent("cm-tick-1", type_="limit", amount="0.01234", price=off_tick)
        )
    assert tick.value.reason == f"price {off_tick} is not a multiple of tick size 0.01"
    with pytest.raises(OrderRejectedError) as small:
        await venue.broker.place_order(intent("cm-small-1", amount="0.00001"))
    assert small.value.reason.startswith("order value ")
    assert small.value.reason.endswith(" USDT is below the minimum 5 USDT of BTC-USDT")
    assert venue.endpoints.engine.orders == {}
    assert venue.endpoints.order_posts == 0


@pytest.mark.asyncio
async def test_dropped_response_after_acceptance_is_unknown_and_found_by_lookup(
    venue: Venue,
) -> None:
    """Accepted-but-response-dropped: OrderOutcomeUnknown, then lookup finds the one order."""
    venue.endpoints.faults.add(Fault(kind="drop", after_accept=True))
    with pytest.raises(OrderOutcomeUnknown) as info:
        await venue.broker.place_order(intent("cm-drop-1"))
    assert info.value.client_order_id == "cm-drop-1"
    found = await venue.broker.fetch_order("BTC-USDT", "cm-drop-1")
    assert found is not None
    assert found.state is OrderState.FILLED
    assert found.fills
    assert sum(f.amount for f in found.fills) == Decimal("0.01")
    engine = venue.endpoints.engine
    assert engine.client_order_ids() == ["cm-drop-1"]
    assert engine.duplicate_client_order_ids == 0
    assert venue.endpoints.order_posts == 1


@pytest.mark.asyncio
async def test_429_before_acceptance_is_unknown_with_retry_after_and_no_order(
    venue: Venue,
) -> None:
    """A 429 is 'unknown' (Retry-After kept); the lookup proves no order exists."""
    venue.endpoints.faults.add(
        Fault(kind="status", status=429, retry_after_s=3, after_accept=False)
    )
    with pytest.raises(OrderOutcomeUnknown) as info:
        await venue.broker.place_order(intent("cm-429-1"))
    assert info.value.retry_after_s == 3.0
    assert await venue.broker.fetch_order("BTC-USDT", "cm-429-1") is None
    assert venue.endpoints.engine.orders == {}


@pytest.mark.asyncio
async def test_5xx_after_acceptance_is_unknown_and_the_order_exists(venue: Venue) -> None:
    """A 503 after the venue accepted: unknown, and the lookup finds the order once."""
    venue.endpoints.faults.add(Fault(kind="status", status=503, after_accept=True))
    with pytest.raises(OrderOutcomeUnknown):
        await venue.broker.place_order(intent("cm-503-1"))
    found = await venue.broker.fetch_order("BTC-USDT", "cm-503-1")
    assert found is not None
    assert found.state is OrderState.FILLED
    assert venue.endpoints.engine.client_order_ids() == ["cm-503-1"]


@pytest.mark.asyncio
async def test_resending_an_accepted_order_returns_it_instead_of_a_second_one(
    venue: Venue,
) -> None:
    """Placing the same client id again yields the existing order, never a second one."""
    first = await venue.broker.place_order(intent("cm-dup-1"))
    again = await venue.broker.place_order(intent("cm-dup-1"))
    assert again.exchange_order_id == first.exchange_order_id
    assert venue.endpoints.engine.client_order_ids() == ["cm-dup-1"]


@pytest.mark.asyncio
async def test_insufficient_funds_and_too_small_orders_are_rejected(venue: Venue) -> None:
    """Venue refusals become OrderRejectedError naming the reason."""
    with pytest.raises(OrderRejectedError, match="InsufficientFunds"):
        await venue.broker.place_order(intent("cm-big-1", amount="5"))
    with pytest.raises(OrderRejectedError, match="below the minimum 5 USDT"):
        await venue.broker.place_order(intent("cm-tiny-1", amount="0.00001"))
    assert venue.endpoints.engine.orders == {}


@pytest.mark.asyncio
async def test_resting_limit_fills_as_maker_when_the_market_moves_through_it(
    venue: Venue,
) -> None:
    """A sell limit above the market fills at its price (maker fee) after a jump up."""
    _, ask = best(venue)
    price = (Decimal(str(ask)) * Decimal("1.002")).quantize(Decimal("0.01"))
    await venue.broker.place_order(
        intent("cm-tp-1", side="sell", type_="limit", amount="0.01", price=price)
    )
    venue.sim.market.market("BTC-USDT").jump(1.0)
    await venue.sim.advance(0.2)
    order = await venue.broker.fetch_order("BTC-USDT", "cm-tp-1")
    assert order is not None
    assert order.state is OrderState.FILLED
    assert [(f.price, f.liquidity) for f in order.fills] == [(price, "maker")]
    fills = await venue.broker.fetch_fills("BTC-USDT")
    assert [(f.exchange, f.client_order_id, f.fee) for f in fills] == [
        ("simulator", "cm-tp-1", price * Decimal("0.01") * Decimal("0.001"))
    ]
    assert fills[0].trade_id == order.fills[0].trade_id


@pytest.mark.asyncio
async def test_native_stop_loss_triggers_when_the_market_falls(venue: Venue) -> None:
    """A stop_market sell rests on the venue (STOP_LOSS) and fills after the price drops."""
    bid, _ = best(venue)
    stop = (Decimal(str(bid)) * Decimal("0.995")).quantize(Decimal("0.01"))
    placed = await venue.broker.place_order(
        intent("cm-sl-1", side="sell", type_="stop_market", amount="0.01", stop_price=stop)
    )
    assert placed.state is OrderState.SUBMITTED
    assert venue.endpoints.engine.orders[1].type == "STOP_LOSS"
    venue.sim.market.market("BTC-USDT").jump(-1.0)
    await venue.sim.advance(0.3)
    order = await venue.broker.fetch_order("BTC-USDT", "cm-sl-1")
    assert order is not None
    assert order.state is OrderState.FILLED
    assert order.fills
    assert all(f.price <= stop for f in order.fills)


@pytest.mark.asyncio
async def test_wrong_secret_is_an_authentication_failure_not_a_retry(venue: Venue) -> None:
    """A bad signature is fatal for reads and a rejection for placements."""
    broker = CcxtBroker(live_config(venue.sim.rest_url, secret="wrong"))
    await broker.start()
    try:
        with pytest.raises(FatalError, match="authentication"):
            await broker.fetch_balances()
        with pytest.raises(OrderRejectedError, match="authentication"):
            await broker.place_order(intent("cm-auth-1"))
    finally:
        await broker.stop()
    assert venue.endpoints.engine.orders == {}


@pytest.mark.asyncio
async def test_reads_retry_a_passing_5xx_and_give_up_as_temporary(venue: Venue) -> None:
    """A 503 on a read is retried; when it persists the caller gets a TemporaryError."""
    path = "/api/v3/account"
    venue.endpoints.faults.add(Fault(kind="status", status=503, method="GET", path=path))
    balances = await venue.broker.fetch_balances()
    assert balances["USDT"] == Decimal(10_000)
    assert venue.endpoints.requests[("GET", path)] == 2
    venue.endpoints.faults.add(Fault(kind="status", status=503, method="GET", path=path, times=10))
    with pytest.raises(TemporaryError, match="ExchangeNotAvailable"):
        await venue.broker.fetch_balances()


@pytest.mark.asyncio
async def test_unknown_symbol_is_a_rejection_naming_it(venue: Venue) -> None:
    """An order for a market the venue does not list is rejected with the symbol named."""
    bad = OrderIntent(
        exchange="simulator",
        symbol="DOGE-USDT",
        ts=0.0,
        ts_recv=0.0,
        client_order_id="cm-doge",
        side="buy",
        type="market",
        amount=Decimal(1),
    )
    with pytest.raises(OrderRejectedError, match="DOGE-USDT is not a market of binance"):
        await venue.broker.place_order(bad)
