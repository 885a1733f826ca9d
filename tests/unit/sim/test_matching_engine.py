"""The simulator's matching engine on a hand-set book: walking, resting, triggers, balances,
fees, duplicate client ids."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cryptomon.sim.matching import MatchingEngine
from cryptomon.sim.records import SimError, SymbolRules
from cryptomon.sim.venue import StaticBook

D = Decimal
SYM = "BTCUSDT"


def make(usdt: str = "10000", btc: str = "1") -> tuple[MatchingEngine, StaticBook]:
    book = StaticBook()
    book.set(SYM, bids=[(99.0, 1.0), (98.0, 2.0)], asks=[(101.0, 1.0), (102.0, 2.0)])
    rules = SymbolRules(
        symbol=SYM,
        base="BTC",
        quote="USDT",
        step_size=D("0.001"),
        min_qty=D("0.001"),
        min_notional=D(5),
    )
    engine = MatchingEngine(
        books=book,
        symbols={SYM: rules},
        maker_fee=D("0.001"),
        taker_fee=D("0.002"),
        now_ms=lambda: 1_000,
    )
    engine.deposit("USDT", D(usdt))
    engine.deposit("BTC", D(btc))
    return engine, book


def test_market_buy_walks_levels_and_charges_taker_fee() -> None:
    """A market buy larger than the best level takes the next one; fee at the taker rate."""
    engine, book = make()
    order, fills = engine.place(
        symbol=SYM, side="BUY", type="MARKET", quantity=D("1.5"), client_order_id="a"
    )
    assert order.status == "FILLED"
    assert [(f.price, f.qty) for f in fills] == [(D("101"), D("1")), (D("102"), D("0.5"))]
    cost = D(101) + D(51)
    assert sum(f.commission for f in fills) == cost * D("0.002")
    assert engine.balance("USDT").free == D(10000) - cost - cost * D("0.002")
    assert engine.balance("USDT").locked == 0
    assert engine.balance("BTC").free == D("2.5")
    assert book.book(SYM)[1] == [(102.0, 1.5)]


def test_market_order_beyond_the_book_expires_with_what_filled() -> None:
    """Liquidity runs out: the market order ends EXPIRED with the filled part."""
    engine, _ = make(btc="10")
    order, _ = engine.place(
        symbol=SYM, side="SELL", type="MARKET", quantity=D(5), client_order_id="a"
    )
    assert (order.status, order.executed_qty) == ("EXPIRED", D(3))
    assert engine.balance("BTC").locked == 0
    assert engine.balance("BTC").free == D(7)


def test_limit_rests_locks_funds_and_fills_as_maker_when_the_book_crosses() -> None:
    """A bid below the market rests with quote locked; when asks fall to it, it fills (maker)."""
    engine, book = make()
    order, fills = engine.place(
        symbol=SYM, side="BUY", type="LIMIT", quantity=D(1), price=D(100), client_order_id="a"
    )
    assert (order.status, fills) == ("NEW", [])
    assert engine.balance("USDT").locked == D(100) * D("1.002")
    book.set(SYM, bids=[(98.0, 1.0)], asks=[(99.5, 3.0)])
    new = engine.on_market(SYM)
    assert [(f.price, f.qty, f.is_maker) for f in new] == [(D(100), D(1), True)]
    assert order.status == "FILLED"
    assert engine.balance("USDT").locked == 0
    assert engine.balance("USDT").free == D(10000) - D(100) - D("0.1")


def test_marketable_limit_takes_then_rests_the_remainder() -> None:
    """A crossing limit takes liquidity up to its price (taker) and rests the rest."""
    engine, _ = make()
    order, fills = engine.place(
        symbol=SYM, side="BUY", type="LIMIT", quantity=D(2), price=D("101.5"), client_order_id="a"
    )
    assert [(f.price, f.qty, f.is_maker) for f in fills] == [(D(101), D(1), False)]
    assert (order.status, order.remaining) == ("PARTIALLY_FILLED", D(1))


def test_stop_loss_triggers_on_the_bid_and_sells_at_market() -> None:
    """A sell STOP_LOSS waits (not working) and sells when the best bid reaches the stop."""
    engine, book = make()
    order, _ = engine.place(
        symbol=SYM,
        side="SELL",
        type="STOP_LOSS",
        quantity=D("0.5"),
        stop_price=D(95),
        client_order_id="sl",
    )
    assert (order.status, order.working) == ("NEW", False)
    assert engine.on_market(SYM) == []
    book.set(SYM, bids=[(94.0, 1.0)], asks=[(96.0, 1.0)])
    fills = engine.on_market(SYM)
    assert [(f.price, f.qty) for f in fills] == [(D(94), D("0.5"))]
    assert order.status == "FILLED"


def test_take_profit_triggers_when_the_bid_rises() -> None:
    """A sell TAKE_PROFIT fires when the bid reaches its stop price."""
    engine, book = make()
    order, _ = engine.place(
        symbol=SYM,
        side="SELL",
        type="TAKE_PROFIT",
        quantity=D("0.5"),
        stop_price=D(110),
        client_order_id="tp",
    )
    book.set(SYM, bids=[(111.0, 1.0)], asks=[(112.0, 1.0)])
    assert [f.price for f in engine.on_market(SYM)] == [D(111)]
    assert order.status == "FILLED"


def test_duplicate_client_order_id_is_rejected_and_counted() -> None:
    """Reusing a client order id is refused like Binance (-2010) and counted."""
    engine, _ = make()
    engine.place(symbol=SYM, side="BUY", type="MARKET", quantity=D("0.1"), client_order_id="x")
    with pytest.raises(SimError) as info:
        engine.place(symbol=SYM, side="BUY", type="MARKET", quantity=D("0.1"), client_order_id="x")
    assert (info.value.code, info.value.msg) == (-2010, "Duplicate order sent.")
    assert engine.duplicate_client_order_ids == 1
    assert engine.client_order_ids() == ["x"]


@pytest.mark.parametrize(
    ("kwargs", "code", "msg"),
    [
        ({"quantity": D("0.0015")}, -1013, "LOT_SIZE"),
        ({"quantity": D("0.01")}, -1013, "NOTIONAL"),
        ({"quantity": D(1), "type": "LIMIT", "price": D("100.001")}, -1013, "PRICE_FILTER"),
        ({"quantity": D(1), "type": "LIMIT"}, -1102, "price"),
        ({"quantity": D(200), "type": "LIMIT", "price": D(100)}, -2010, "insufficient"),
        ({"quantity": D(1), "type": "ICEBERG"}, -1116, "orderType"),
    ],
)
def test_invalid_orders_are_refused_with_binance_codes(kwargs: dict, code: int, msg: str) -> None:
    """Filters and funds are checked; the error names what was wrong."""
    engine, _ = make()
    args = {"symbol": SYM, "side": "BUY", "type": "MARKET", "client_order_id": "bad", **kwargs}
    with pytest.raises(SimError) as info:
        engine.place(**args)
    assert info.value.code == code
    assert msg in info.value.msg
    assert engine.orders == {}


def test_cancel_releases_locked_funds_and_unknown_cancel_is_2011() -> None:
    """Cancel returns the lock; cancelling twice is 'Unknown order sent.'"""
    engine, _ = make()
    engine.place(
        symbol=SYM, side="SELL", type="LIMIT", quantity=D("0.5"), price=D(120), client_order_id="s"
    )
    assert engine.balance("BTC").locked == D("0.5")
    assert engine.cancel(SYM, order_id=None, client_order_id="s").status == "CANCELED"
    assert engine.balance("BTC").locked == 0
    assert engine.balance("BTC").free == D(1)
    with pytest.raises(SimError) as info:
        engine.cancel(SYM, order_id=None, client_order_id="s")
    assert info.value.code == -2011


class NoisyBook(StaticBook):
    """A book whose taker fills carry float noise, like the simulator's model."""

    def take(self, symbol: str, side: str, amount: float) -> list[tuple[float, float]]:
        super().take(symbol, side, amount)
        return [(101.0, amount * 0.3), (101.0, amount * 0.7 - 2e-16)]


def test_float_noise_in_book_fills_never_reaches_the_account() -> None:
    """Fills are lot-sized Decimals adding up to exactly the ordered quantity."""
    book = NoisyBook()
    book.set(SYM, bids=[(99.0, 5.0)], asks=[(101.0, 5.0)])
    rules = SymbolRules(
        symbol=SYM, base="BTC", quote="USDT", step_size=D("0.001"), min_qty=D("0.001")
    )
    engine = MatchingEngine(books=book, symbols={SYM: rules})
    engine.deposit("USDT", D(1000))
    order, fills = engine.place(
        symbol=SYM, side="BUY", type="MARKET", quantity=D(2), client_order_id="n"
    )
    assert [f.qty for f in fills] == [D("0.6"), D("1.4")]
    assert (order.status, order.executed_qty) == ("FILLED", D(2))
    assert engine.balance("BTC").free == D(2)
