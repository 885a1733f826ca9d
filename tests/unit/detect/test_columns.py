"""Column tables of the engine: one pass per batch gives the values one pass per field gave,
bit for bit, including the odd inputs numpy converts (None, ints), and new markets get their
ids in the order of their first event."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cryptomon.detect.columns import BOOK_ROWS, book_sid, book_table, trade_table
from cryptomon.events import BookTop, Trade
from tests.unit.detect.market import T0, engine

BY_SYMBOL = {"BTC-USDT": {"x": 0.0, "y": 2.0}, "ETH-USDT": {"x": 1.0}}


def top(ex: str, sym: str, t: float, **kw: Any) -> BookTop:
    fields: dict[str, Any] = {
        "bid": 99.5,
        "bid_size": 1.25,
        "ask": 100.5,
        "ask_size": 3.0,
        "spread": 1.0,
        "spread_bps": 100.0,
        "bid_depth": 10.0,
        "ask_depth": 5.0,
        "imbalance": 1 / 3,
        "levels": 5,
    }
    fields.update(kw)
    return BookTop(exchange=ex, symbol=sym, ts=t, ts_recv=t, **fields)


def trade(ex: str, sym: str, t: float, side: Any = "buy", **kw: Any) -> Trade:
    fields: dict[str, Any] = {"price": 100.1, "amount": 0.3}
    fields.update(kw)
    return Trade(exchange=ex, symbol=sym, ts=t, ts_recv=t, side=side, **fields)


def per_field(evs: list[Any], name: str) -> np.ndarray:
    return np.fromiter((getattr(e, name) for e in evs), np.float64, len(evs))


def test_book_table_rows_are_the_fields_bit_for_bit() -> None:
    evs = [
        top("x", "BTC-USDT", T0, bid=0.1 + 0.2, imbalance=-0.0),
        top("y", "BTC-USDT", T0 + 0.5, spread_bps=math.inf, bid_size=7),  # an int size
        top("x", "ETH-USDT", T0 + 1.0, ask=math.nan, imbalance=1e-300),
    ]
    table = book_table(evs, BY_SYMBOL)
    assert table.shape == (BOOK_ROWS, 3)
    assert book_sid(table).tolist() == [0, 2, 1]
    assert book_sid(table).dtype == np.int64
    names = ("ts", "bid", "ask", "spread_bps", "imbalance", "bid_size", "ask_size")
    for row, name in zip(table[1:], names, strict=True):
        assert row.flags.c_contiguous
        assert row.tobytes() == per_field(evs, name).tobytes(), name


def test_book_table_converts_none_as_numpy_does() -> None:
    """A value struct cannot pack (None) takes numpy's conversion: NaN, as before."""
    evs = [top("x", "BTC-USDT", T0), top("x", "BTC-USDT", T0 + 1, bid_size=None)]
    table = book_table(evs, BY_SYMBOL)
    assert table[6, 0] == 1.25
    assert math.isnan(table[6, 1])
    assert table[2].tolist() == [99.5, 99.5]


def test_trade_table_columns_sides_and_lazy_notionals() -> None:
    evs = [
        trade("x", "ETH-USDT", T0, "buy", notional=30.03),
        trade("y", "BTC-USDT", T0 + 1, "sell", price=7),
        trade("x", "BTC-USDT", T0 + 2, "other"),  # no side: NaN, as the getter pass gave
    ]
    cols = trade_table(evs, BY_SYMBOL)
    assert cols.sid.tolist() == [1, 2, 0]
    assert cols.sid.dtype == np.int64
    assert cols.px.tobytes() == per_field(evs, "price").tobytes()
    assert cols.amt.tobytes() == per_field(evs, "amount").tobytes()
    assert cols.ts.tobytes() == per_field(evs, "ts").tobytes()
    assert cols.buy[:2].tolist() == [1.0, 0.0]
    assert math.isnan(cols.buy[2])
    notional = cols.notional()
    assert notional[0] == 30.03
    assert np.isnan(notional[1:]).all()
    assert np.isnan(cols.notional_usd()).all()


def test_new_markets_in_a_batch_get_ids_in_order_of_first_event() -> None:
    """Known and new markets mixed in one batch: the new ones are numbered as they appear,
    the same for books and trades."""
    eng, _ = engine()
    pub = eng.hub.publish
    pub(top("a", "BTC-USDT", T0))
    eng.flush()
    pub(top("c", "BTC-USDT", T0 + 1))
    pub(top("a", "BTC-USDT", T0 + 1))
    pub(trade("b", "ETH-USDT", T0 + 1))
    pub(top("b", "BTC-USDT", T0 + 1))
    pub(top("c", "BTC-USDT", T0 + 2))
    eng.flush()
    # trades flush before books: b:ETH first, then the books' new markets in order
    assert eng.symbol_id("a", "BTC-USDT") == 0
    assert eng.symbol_id("b", "ETH-USDT") == 1
    assert eng.symbol_id("c", "BTC-USDT") == 2
    assert eng.symbol_id("b", "BTC-USDT") == 3
    assert eng.stats()["symbols"] == 4
    assert eng.stats()["events"] == {"books": 5, "trades": 1}


def test_packed_and_numpy_converted_batches_agree() -> None:
    """A batch struct packs (floats and ints) and the same batch with one value only numpy
    converts (a numeric string) give the same table, bit for bit; a trade batch of plain
    sides is packed too."""
    evs = [top("x", "BTC-USDT", T0 + i, bid=99.5 + i / 7, ask_size=i) for i in range(5)]
    packed = book_table(evs, BY_SYMBOL)
    odd = [*evs[:4], top("x", "BTC-USDT", T0 + 4, bid=99.5 + 4 / 7, ask_size="4")]
    assert book_table(odd, BY_SYMBOL).tobytes() == packed.tobytes()
    trades = [
        trade("y", "BTC-USDT", T0 + i, "buy" if i % 2 else "sell", amount=i) for i in range(4)
    ]
    trades[1] = trade("y", "BTC-USDT", T0 + 1, "buy", amount=1, notional=0.0, notional_usd=2.5)
    cols = trade_table(trades, BY_SYMBOL)
    assert cols.buy.tolist() == [0.0, 1.0, 0.0, 1.0]
    # the notionals read in the same pass: None is NaN, 0.0 stays 0.0
    assert cols.notional().tobytes() == per_field(trades, "notional").tobytes()
    assert cols.notional_usd().tobytes() == per_field(trades, "notional_usd").tobytes()
    assert cols.notional()[1] == 0.0
    assert cols.amt.tobytes() == per_field(trades, "amount").tobytes()
    assert cols.sid.tolist() == [2, 2, 2, 2]
