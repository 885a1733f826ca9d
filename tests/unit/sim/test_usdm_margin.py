"""The simulator's USD-M venue refuses an order whose initial margin (the notional it adds
over the leverage) exceeds the free margin (wallet and unrealized PnL less the margin of the
open positions) with Binance's ``-2019 Margin is insufficient.``; orders that only reduce a
position need no margin."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cryptomon.sim.usdm_book import UsdmBook
from cryptomon.sim.usdm_orders import UsdmError

D = Decimal
SYM = "BTCUSDT"


def market(side: str, qty: str, **extra: str) -> dict[str, str]:
    return {"symbol": SYM, "side": side, "type": "MARKET", "quantity": qty, **extra}


def book(wallet: str) -> UsdmBook:
    b = UsdmBook(wallet=D(wallet))
    b.set_price(SYM, D(20000))
    b.leverage({"symbol": SYM, "leverage": "5"})
    return b


def test_an_order_beyond_the_free_margin_is_refused_and_not_recorded() -> None:
    b = book("100")  # 0.1 x 20000 / 5 = 400 of margin needed
    with pytest.raises(UsdmError) as info:
        b.new_order(market("BUY", "0.1"))
    assert (info.value.status, info.value.code) == (400, -2019)
    assert info.value.msg == "Margin is insufficient."
    assert b.orders == []
    assert b.positions[SYM].qty == 0


def test_the_open_position_uses_margin_and_a_close_needs_none() -> None:
    b = book("1000")
    b.new_order(market("BUY", "0.2"))  # 800 of margin
    assert b.margin_free() == D(1000) - D("0.2") * 20000 * D("0.0004") - 800
    with pytest.raises(UsdmError):
        b.new_order(market("BUY", "0.1"))  # 400 more, under 200 free
    b.new_order(market("SELL", "0.2"))  # the close adds no margin
    assert b.positions[SYM].qty == 0
