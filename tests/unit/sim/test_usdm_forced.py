"""The simulator's USD-M venue closes the account's position itself, as Binance reports it:
a filled LIMIT order of its own with the ``autoclose-…`` / ``adl_autoclose`` /
``settlement_autoclose-…`` client id, its trade in the account's trades (``userTrades``) and
found by order id (``GET order``), the symbol's resting orders and algo orders canceled first,
the realized PnL and the fee (none for a settlement) in the wallet."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cryptomon.sim.usdm_book import UsdmBook

D = Decimal
SYM = "BTCUSDT"
FEE = D("0.0004")


def book_with_long() -> UsdmBook:
    book = UsdmBook()
    book.set_price(SYM, D(20000))
    book.new_order({"symbol": SYM, "side": "BUY", "type": "MARKET", "quantity": "0.1"})
    return book


def test_a_liquidation_closes_the_long_with_an_autoclose_order_and_its_trade() -> None:
    book = book_with_long()
    book.new_order(
        {"symbol": SYM, "side": "SELL", "type": "STOP_MARKET", "quantity": "0.1",
         "stopPrice": "19000", "reduceOnly": "true"}
    )  # fmt: skip
    order = book.force_close(SYM, D(16100))
    assert order["clientOrderId"].startswith("autoclose-")
    assert (order["type"], order["timeInForce"], order["side"]) == ("LIMIT", "IOC", "SELL")
    assert (order["status"], order["executedQty"], order["avgPrice"]) == ("FILLED", "0.1", "16100")
    assert book.orders[1]["status"] == "CANCELED"  # the resting stop
    assert book.positions[SYM].qty == 0
    assert book.get_order({"symbol": SYM, "orderId": str(order["orderId"])}) is order
    (trade,) = book.user_trades({"symbol": SYM, "orderId": str(order["orderId"])})
    assert (trade["side"], trade["qty"], trade["price"]) == ("SELL", "0.1", "16100")
    assert D(trade["realizedPnl"]) == D("0.1") * (16100 - 20000)
    assert D(trade["commission"]) == D("0.1") * 16100 * FEE
    assert book.wallet == D(10_000) - D(390) - D("0.1") * (20000 + 16100) * FEE


@pytest.mark.parametrize(("kind", "fee"), [("adl", FEE), ("settlement", D(0))])
def test_adl_and_settlement_ids_and_fees(kind: str, fee: Decimal) -> None:
    book = book_with_long()
    order = book.force_close(SYM, D(21000), kind)
    if kind == "adl":
        assert order["clientOrderId"] == "adl_autoclose"
    else:
        assert order["clientOrderId"].startswith("settlement_autoclose-")
    assert D(book.trades[-1]["commission"]) == D("0.1") * 21000 * fee


def test_nothing_to_close_and_an_unknown_kind_are_clear_errors() -> None:
    book = UsdmBook()
    book.set_price(SYM, D(20000))
    with pytest.raises(ValueError, match="no BTCUSDT position to close"):
        book.force_close(SYM, D(20000))
    with pytest.raises(ValueError, match="unknown forced close 'margin_call'"):
        book.force_close(SYM, D(20000), "margin_call")
