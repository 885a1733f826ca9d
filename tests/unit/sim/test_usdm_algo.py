"""The simulator's Binance USD-M conditional (algo) orders, on the account state alone: rest
until the trigger is crossed, fire a market order (``actualOrderId``), expire when nothing is
left to reduce, refuse what would trigger at once, duplicates and cancels of finished ones."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cryptomon.sim.usdm_book import UsdmBook
from cryptomon.sim.usdm_orders import UsdmError

D = Decimal
SYM = "BTCUSDT"


def book_with_long() -> UsdmBook:
    book = UsdmBook()
    book.set_price(SYM, D(20000))
    book.new_order({"symbol": SYM, "side": "BUY", "type": "MARKET", "quantity": "0.1"})
    return book


def algo(book: UsdmBook, kind: str, trigger: str, cid: str, **extra: str) -> dict[str, object]:
    params = {
        "symbol": SYM,
        "side": "SELL",
        "type": kind,
        "algoType": "CONDITIONAL",
        "quantity": "0.1",
        "triggerPrice": trigger,
        "reduceOnly": "true",
        "clientAlgoId": cid,
        **extra,
    }
    return book.new_algo(params)  # type: ignore[no-any-return]


def test_a_stop_rests_then_fires_a_market_order_at_the_crossing_price() -> None:
    """The sell stop at 19500 rests above it and fires at 19400: FINISHED with the executed
    quantity and price of the market order it placed, the position closed."""
    book = book_with_long()
    stop = algo(book, "STOP_MARKET", "19500", "s1")
    book.set_price(SYM, D(19600))
    assert stop["algoStatus"] == "NEW"
    book.set_price(SYM, D(19400))
    assert stop["algoStatus"] == "FINISHED"
    assert (stop["executedQty"], stop["avgPrice"]) == ("0.1", "19400")
    actual = book.find({"symbol": SYM, "orderId": str(stop["actualOrderId"])})
    assert (actual["type"], actual["status"], actual["reduceOnly"]) == ("MARKET", "FILLED", True)
    assert book.positions[SYM].qty == 0
    assert book.get_algo({"clientAlgoId": "s1"}) is stop


def test_the_second_leg_expires_when_nothing_is_left_to_reduce() -> None:
    """Both legs fire on one jump through them (a gap): the second finds the position closed
    and expires instead of opening a short."""
    book = book_with_long()
    take = algo(book, "TAKE_PROFIT_MARKET", "21000", "t1")
    close_all = algo(book, "TAKE_PROFIT_MARKET", "21100", "t2", closePosition="true")
    book.set_price(SYM, D(21500))
    assert take["algoStatus"] == "FINISHED"
    assert close_all["algoStatus"] == "EXPIRED"
    assert book.positions[SYM].qty == 0


def test_refusals_name_binance_codes() -> None:
    """Would trigger at once: -2021; same client id twice: -4015; canceling a finished one:
    -2011; an unknown one: -2013; a plain order type: -1116."""
    book = book_with_long()
    with pytest.raises(UsdmError) as now:
        algo(book, "STOP_MARKET", "20100", "s0")  # a sell stop above the price
    assert (now.value.code, now.value.msg) == (-2021, "Order would immediately trigger.")
    algo(book, "STOP_MARKET", "19000", "dup")
    with pytest.raises(UsdmError) as dup:
        algo(book, "STOP_MARKET", "18000", "dup")
    assert dup.value.code == -4015
    assert book.cancel_algo({"clientAlgoId": "dup"})["msg"] == "success"
    with pytest.raises(UsdmError) as gone:
        book.cancel_algo({"clientAlgoId": "dup"})
    assert gone.value.code == -2011
    with pytest.raises(UsdmError) as missing:
        book.get_algo({"clientAlgoId": "nope"})
    assert missing.value.code == -2013
    with pytest.raises(UsdmError) as kind:
        algo(book, "MARKET", "19000", "m")
    assert kind.value.code == -1116
    assert [a["clientAlgoId"] for a in book.open_algos({"symbol": SYM})] == []
