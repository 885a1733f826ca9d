"""Paper broker: market orders walk the live book with taker fees, limit orders fill when
trades cross them with maker fees, balances and idempotent client order ids."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cryptomon.clock import ManualClock
from cryptomon.events import OrderIntent, OrderState
from cryptomon.hub import Hub
from cryptomon.market.state import MarketState
from cryptomon.trading.brokers import paper_book
from cryptomon.trading.brokers.base import Broker, BrokerOrder, OrderRejectedError
from cryptomon.trading.brokers.paper import PaperBroker
from tests.unit.trading.helpers import EX, SYM, book, d, trade, trading_config

S = OrderState


def _setup(**paper: object) -> tuple[PaperBroker, Hub, ManualClock]:
    hub, clock = Hub(), ManualClock()
    cfg = trading_config(
        paper={"taker_fee": 0.001, "maker_fee": 0.0005, "starting_balance": 10000.0, **paper}
    )
    broker = PaperBroker(config=cfg.paper, market=MarketState(hub=hub), hub=hub, clock=clock)
    return broker, hub, clock


def _intent(
    coid: str, side: str, amount: str, type: str = "market", price: str | None = None
) -> OrderIntent:
    return OrderIntent(
        exchange=EX,
        symbol=SYM,
        ts=0.0,
        ts_recv=0.0,
        client_order_id=coid,
        side=side,
        type=type,
        amount=d(amount),  # type: ignore[arg-type]
        price=None if price is None else d(price),
    )


def test_implements_the_broker_protocol() -> None:
    """PaperBroker satisfies the runtime-checkable Broker protocol."""
    broker, _, _ = _setup()
    assert isinstance(broker, Broker)


@pytest.mark.asyncio
async def test_market_buy_walks_the_book_with_taker_fee() -> None:
    """Buying 2.5 against 1.0 per level fills 1@101, 1@102, 0.5@103 with 0.1% fee each."""
    broker, hub, clock = _setup()
    book(hub, clock, bid=100.0, ask=101.0, size=1.0, levels=5)
    order = await broker.place_order(_intent("a", "buy", "2.5"))
    assert order.state == S.FILLED
    assert order.filled == d("2.5")
    assert [(f.amount, f.price) for f in order.fills] == [
        (d(1), d("101.0")),
        (d(1), d("102.0")),
        (d("0.5"), d("103.0")),
    ]
    cost = d(101) + d(102) + d("51.5")
    assert sum(f.fee for f in order.fills) == cost * d("0.001")
    assert all(f.liquidity == "taker" and f.fee_currency == "USDT" for f in order.fills)
    assert order.avg_price == cost / d("2.5")
    bal = await broker.fetch_balances()
    assert bal["BTC"] == d("2.5")
    assert bal["USDT"] == d(10000) - cost * d("1.001")


@pytest.mark.asyncio
async def test_market_order_beyond_visible_depth_expires_partially_filled() -> None:
    """More than the book holds: what is visible fills, the rest expires (IOC)."""
    broker, hub, clock = _setup()
    book(hub, clock, bid=100.0, ask=101.0, size=1.0, levels=2)
    order = await broker.place_order(_intent("a", "buy", "3"))
    assert order.state == S.EXPIRED
    assert order.filled == d(2)


@pytest.mark.asyncio
async def test_newer_book_top_replaces_stale_snapshot_levels() -> None:
    """A BookTop newer than the snapshot sets the best price the walk starts from."""
    broker, hub, clock = _setup()
    book(hub, clock, bid=100.0, ask=101.0, size=1.0, levels=3)
    clock.advance(1)
    from cryptomon.events import BookTop

    now = clock.time()
    hub.publish(
        BookTop(
            exchange=EX,
            symbol=SYM,
            ts=now,
            ts_recv=now,
            bid=95.0,
            bid_size=2.0,
            ask=96.0,
            ask_size=2.0,
            spread=1.0,
            spread_bps=100.0,
            bid_depth=2.0,
            ask_depth=2.0,
            imbalance=0.0,
            levels=1,
        )
    )
    await broker.place_order(_intent("buy", "buy", "1"))  # some BTC to sell
    order = await broker.place_order(_intent("s", "sell", "1"))
    assert order.fills[0].price == d("95.0")


@pytest.mark.asyncio
async def test_a_market_order_converts_only_the_levels_it_takes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deep book, small order: the walk turns the levels it reaches into Decimals, not the
    whole side (and a newer top still comes first, the snapshot's worse levels after it)."""
    broker, hub, clock = _setup()
    book(hub, clock, bid=100.0, ask=101.0, size=1.0, levels=500)
    converted: list[float] = []

    def counted(x: float) -> Decimal:
        converted.append(x)
        return Decimal(str(x))

    monkeypatch.setattr(paper_book, "d", counted)
    order = await broker.place_order(_intent("a", "buy", "1.5"))
    assert [(f.amount, f.price) for f in order.fills] == [
        (d(1), d("101.0")),
        (d("0.5"), d("102.0")),
    ]
    assert not {x for x in converted if x > 102.0}  # levels 103 .. 600 never converted
    levels = paper_book.book_levels(broker.market_state, _intent("b", "sell", "1"))
    assert next(iter(levels)) == (d("100.0"), d("1.0"))


@pytest.mark.asyncio
async def test_limit_order_rests_then_fills_on_crossing_trade_with_maker_fee() -> None:
    """A buy limit below the ask rests; a trade at/below it fills at the limit price."""
    broker, hub, clock = _setup()
    book(hub, clock, bid=100.0, ask=101.0, size=1.0)
    seen: list[BrokerOrder] = []
    broker.set_listener(seen.append)
    order = await broker.place_order(_intent("l", "buy", "2", "limit", "99.5"))
    assert order.state == S.SUBMITTED
    assert order.filled == 0
    trade(hub, clock, price=99.8, amount=5.0)  # above the limit: no fill
    assert (await broker.fetch_order(SYM, "l")).filled == 0  # type: ignore[union-attr]
    trade(hub, clock, price=99.4, amount=0.5, side="sell")
    trade(hub, clock, price=99.5, amount=3.0, side="sell")
    final = await broker.fetch_order(SYM, "l")
    assert final is not None
    assert final.state == S.FILLED
    assert [(f.amount, f.price, f.liquidity) for f in final.fills] == [
        (d("0.5"), d("99.5"), "maker"),
        (d("1.5"), d("99.5"), "maker"),
    ]
    assert final.fills[0].fee == d("0.5") * d("99.5") * d("0.0005")
    assert [o.state for o in seen] == [S.PARTIALLY_FILLED, S.FILLED]
    assert await broker.fetch_open_orders() == []


@pytest.mark.asyncio
async def test_marketable_limit_takes_then_rests() -> None:
    """A buy limit above the ask takes levels up to its price as taker, the rest rests."""
    broker, hub, clock = _setup()
    book(hub, clock, bid=100.0, ask=101.0, size=1.0, levels=5)
    order = await broker.place_order(_intent("l", "buy", "3", "limit", "102"))
    assert order.state == S.PARTIALLY_FILLED
    assert order.filled == d(2)
    assert [o.client_order_id for o in await broker.fetch_open_orders(SYM)] == ["l"]
    canceled = await broker.cancel_order(SYM, "l")
    assert canceled.state == S.CANCELED
    assert canceled.filled == d(2)


@pytest.mark.asyncio
async def test_same_client_order_id_is_never_placed_twice() -> None:
    """Placing an existing client order id returns the existing order, no second fill."""
    broker, hub, clock = _setup()
    book(hub, clock, bid=100.0, ask=101.0, size=5.0)
    first = await broker.place_order(_intent("a", "buy", "1"))
    again = await broker.place_order(_intent("a", "buy", "1"))
    assert again.fills == first.fills
    assert (await broker.fetch_balances())["BTC"] == d(1)
    assert await broker.fetch_order(SYM, "missing") is None


@pytest.mark.asyncio
async def test_a_market_buy_is_paid_for_at_the_levels_it_walks_not_the_touch() -> None:
    """A market buy the cash covers at the best ask but not at the deeper levels it takes is
    refused, as the simulated venue refuses it; before, the check priced it at the touch and
    the walk drove the quote balance below zero (buying with cash the account did not have)."""
    broker, hub, clock = _setup(starting_balance=300.0)
    book(hub, clock, bid=100.0, ask=101.0, size=1.0, levels=5)
    # 2.95 at the touch: 297.95 + fee < 300; walked: 101 + 102 + 0.95 x 103 = 300.85 + fee
    refused = r"insufficient balance: 301\.15085\d* USDT needed, 300"
    with pytest.raises(OrderRejectedError, match=refused):
        await broker.place_order(_intent("a", "buy", "2.95"))
    assert await broker.fetch_balances() == {"USDT": d(300)}
    ok = await broker.place_order(_intent("b", "buy", "2.9"))  # walked: 295.7 + fee
    assert ok.state == S.FILLED
    left = (await broker.fetch_balances())["USDT"]
    assert left == d(300) - (d(101) + d(102) + d("92.7")) * d("1.001")
    assert left >= 0


@pytest.mark.asyncio
async def test_insufficient_balance_and_unsupported_types_are_rejected() -> None:
    """No quote for the buy, no base for the sell, a stop order type: clear rejections."""
    broker, hub, clock = _setup(starting_balance=50.0)
    book(hub, clock, bid=100.0, ask=101.0, size=5.0)
    with pytest.raises(OrderRejectedError, match=r"insufficient balance.*USDT"):
        await broker.place_order(_intent("a", "buy", "1"))
    with pytest.raises(OrderRejectedError, match=r"insufficient balance.*BTC"):
        await broker.place_order(_intent("b", "sell", "1"))
    bad = OrderIntent(
        exchange=EX,
        symbol=SYM,
        ts=0.0,
        ts_recv=0.0,
        client_order_id="c",
        side="sell",
        type="stop_market",
        amount=Decimal(1),
        stop_price=d(90),
    )
    with pytest.raises(OrderRejectedError, match="market and limit"):
        await broker.place_order(bad)
    with pytest.raises(OrderRejectedError, match="unknown order"):
        await broker.cancel_order(SYM, "nope")


@pytest.mark.asyncio
async def test_market_info_from_config() -> None:
    """Tick, lot and min notional come from the paper section; stops are emulated."""
    broker, _, _ = _setup()
    info = await broker.market("ETH-USDT")
    assert (info.base, info.quote) == ("ETH", "USDT")
    assert info.tick_size == d("0.01")
    assert info.lot_size == d("0.00001")
    assert info.native_stop_loss is False


def test_a_perpetual_symbol_keeps_its_quote_not_perp() -> None:
    """``BTC-USDT-PERP`` is BTC against USDT (its quote), never against ``PERP``."""
    from cryptomon.trading.brokers.paper import split_symbol

    assert split_symbol("BTC-USDT-PERP") == ("BTC", "USDT")
    assert split_symbol("BTC-USD-22K27") == ("BTC", "USD")
    assert split_symbol("ETH-BTC") == ("ETH", "BTC")


@pytest.mark.asyncio
async def test_an_orders_running_sums_match_its_fills() -> None:
    """Filled amount and cost kept as fills arrive equal the sums over the fills (a market
    walk over three levels, then a resting limit order filled by two trades)."""
    broker, hub, clock = _setup()
    book(hub, clock, bid=100.0, ask=101.0, size=1.0, levels=5)
    walked = await broker.place_order(_intent("a", "buy", "2.5"))
    resting = await broker.place_order(_intent("b", "buy", "3", type="limit", price="99.5"))
    trade(hub, clock, price=99.0, amount=1.25, side="sell")
    trade(hub, clock, price=99.4, amount=0.5, side="sell")
    for coid, fills in (("a", 3), ("b", 2)):
        order = broker._orders[coid]
        assert len(order.fills) == fills
        assert order.filled == sum((f.amount for f in order.fills), Decimal(0))
        assert order.cost == sum((f.amount * f.price for f in order.fills), Decimal(0))
    view = await broker.fetch_order(SYM, "b")
    assert view is not None
    assert view.filled == d("1.75")
    assert view.avg_price == d("99.5")
    assert walked.avg_price == (d(101) + d(102) + d("51.5")) / d("2.5")
    assert resting.state == S.SUBMITTED
