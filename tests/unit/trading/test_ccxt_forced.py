"""Which venue orders are the venue's own closes (Binance's documented client ids), which
are venue orders (not the engine's, no mark), and the id the engine journals them by."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cryptomon.events import Fill
from cryptomon.trading.brokers.ccxt_forced import forced_close, forced_mark, journal_id, part
from tests import stubs


@pytest.mark.parametrize(
    ("cid", "mark"),
    [
        ("autoclose-1596107620040000020", ("liquidation", "liquidation")),
        ("adl_autoclose", ("adl", "auto-deleveraging")),
        ("settlement_autoclose-1700000000000000001", ("settlement", "settlement")),
        ("cmm101a7193e9682656cd5b6b56d3823", None),  # ours
        ("web_by_hand_1", None),  # someone's manual order
        ("x-autoclose-1", None),
        ("", None),
    ],
)
def test_forced_marks(cid: str, mark: tuple[str, str] | None) -> None:
    assert forced_mark(cid) == mark


def test_a_shared_client_id_gets_the_order_id() -> None:
    assert journal_id("adl_autoclose", "42") == "adl_autoclose-42"
    assert journal_id("autoclose-1596107620040000020", "42") == "autoclose-1596107620040000020"


def test_an_unmarked_order_is_journaled_by_its_venue_order_id() -> None:
    """A client id given by hand or by another venue may repeat, be empty or be too long:
    ``venue-<order id>``, at most 64 characters (the journal's column)."""
    assert journal_id("web_by_hand_1", "42") == "venue-42"
    assert journal_id("", "42") == "venue-42"
    long_id = "9" * 80
    out = journal_id("", long_id)
    assert out.startswith("venue-")
    assert len(out) <= 64
    assert out == journal_id("x", long_id) != journal_id("", "8" * 80)


def venue_fills() -> tuple[Fill, ...]:
    return tuple(
        stubs.fill(
            f"BTCUSDT:{n}",
            "venue-42",
            exchange="binanceusdm",
            symbol="BTC-USDT-PERP",
            ts=1000.0 + n,
            side="sell",
            amount=Decimal(amount),
            price=Decimal(price),
            fee=Decimal(fee),
            fee_currency="USDT",
        )
        for n, (amount, price, fee) in enumerate(
            [("0.06", "19500", "0.468"), ("0.04", "19400", "0.3104")]
        )
    )


def test_an_unmarked_order_is_a_venue_order_with_its_fills_and_fee() -> None:
    """No mark: origin ``venue``, the fills' amount, average price and fee in the reason."""
    fills = venue_fills()
    close = forced_close(
        exchange="binanceusdm",
        symbol="BTC-USDT-PERP",
        order_id="42",
        venue_client_id="",
        fills=fills,
        now=2000.0,
    )
    assert close is not None
    intent = close.intent
    assert (intent.origin, intent.client_order_id, intent.side) == ("venue", "venue-42", "sell")
    assert (intent.amount, intent.reduce_only, intent.ts) == (Decimal("0.10"), True, 1000.0)
    assert close.order.avg_price == Decimal("19460")
    assert close.venue_client_id == ""
    assert close.reason == (
        "venue order: the venue's order 42 (no client id) sell 0.10 BTC-USDT-PERP at 19460, "
        "fee 0.7784 USDT (not sent by cryptomon: a trade by hand on the account, or the "
        "venue's own)"
    )
    assert (
        forced_close(
            exchange="binanceusdm",
            symbol="BTC-USDT-PERP",
            order_id="42",
            venue_client_id="",
            fills=(),
            now=2000.0,
        )
        is None
    )


def test_part_of_an_order_takes_its_first_fills_and_cuts_the_last_one() -> None:
    """The first 0.07 of the 0.10 (a flip by hand through a 0.07 position): the first fill
    whole, 0.01 of the second with its fee's share and its trade id, the reason saying how
    much of the order was adopted and why; the fee's share keeps at most 18 decimals."""
    close = forced_close(
        exchange="binanceusdm",
        symbol="BTC-USDT-PERP",
        order_id="42",
        venue_client_id="web_1",
        fills=venue_fills(),
        now=2000.0,
    )
    assert close is not None
    cut = part(close, Decimal("0.07"), "the rest is not ours")
    assert [(f.trade_id, f.amount, f.fee) for f in cut.order.fills] == [
        ("BTCUSDT:0", Decimal("0.06"), Decimal("0.468")),
        ("BTCUSDT:1", Decimal("0.01"), Decimal("0.0776")),
    ]
    assert (cut.intent.amount, cut.order.filled) == (Decimal("0.07"), Decimal("0.07"))
    assert (cut.intent.client_order_id, cut.intent.origin) == ("venue-42", "venue")
    assert cut.order.avg_price == (Decimal("0.06") * 19500 + Decimal("0.01") * 19400) / Decimal(
        "0.07"
    )
    assert cut.reason.startswith("venue order: the venue's order 42 (web_1) sell 0.07 ")
    assert cut.reason.endswith("; 0.07 of the order's 0.10 adopted: the rest is not ours")
    odd = stubs.fill(
        "BTCUSDT:9",
        "venue-43",
        exchange="binanceusdm",
        symbol="BTC-USDT-PERP",
        ts=1000.0,
        side="sell",
        amount=Decimal("0.03"),
        price=Decimal("19500"),
        fee=Decimal("0.1"),
        fee_currency="USDT",
    )
    whole = forced_close(
        exchange="binanceusdm",
        symbol="BTC-USDT-PERP",
        order_id="43",
        venue_client_id="",
        fills=(odd,),
        now=2000.0,
    )
    assert whole is not None
    (share,) = part(whole, Decimal("0.01"), "x").order.fills
    assert share.fee == Decimal("0.033333333333333333")
