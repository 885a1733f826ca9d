"""1-minute candles aggregated from trades in memory."""

from __future__ import annotations

from cryptomon.store.candles import CandleAggregator
from tests.stubs import T0, trade

M = T0 - T0 % 60  # a minute boundary


def test_ohlcv_buy_sell_volume_and_close_on_next_interval() -> None:
    """A bar gets OHLC, volume split by taker side, count; the next minute's trade closes it."""
    agg = CandleAggregator()
    for ts, price, amount, side in [
        (M + 1, 10.0, 1.0, "buy"),
        (M + 2, 12.0, 2.0, "sell"),
        (M + 3, 9.0, 0.5, "buy"),
        (M + 59.9, 11.0, 1.0, "sell"),
    ]:
        agg.add(trade(ts, price, amount, side=side))
    (open_bar,) = agg.take()
    assert open_bar["closed"] is False
    assert (open_bar["open"], open_bar["high"], open_bar["low"], open_bar["close"]) == (
        10.0,
        12.0,
        9.0,
        11.0,
    )
    assert (open_bar["volume"], open_bar["buy_volume"], open_bar["sell_volume"]) == (4.5, 1.5, 3.0)
    assert open_bar["trade_count"] == 4
    assert open_bar["open_time"].timestamp() == M
    assert agg.take() == []  # nothing changed since
    agg.add(trade(M + 60, 13.0))
    rows = agg.take()
    assert [(r["open_time"].timestamp(), r["closed"]) for r in rows] == [(M, True), (M + 60, False)]


def test_late_trade_is_counted_not_applied() -> None:
    """A trade for an already closed minute does not reopen it."""
    agg = CandleAggregator()
    agg.add(trade(M + 61, 10.0))
    agg.add(trade(M + 5, 99.0))
    assert agg.late == 1
    (row,) = agg.take()
    assert row["high"] == 10.0


def test_quiet_market_closes_when_data_time_moves_on() -> None:
    """A market without trades is closed once any market's data is two intervals ahead."""
    agg = CandleAggregator()
    agg.add(trade(M + 1, 10.0, symbol="ETH-USDT"))
    agg.take()
    agg.add(trade(M + 150, 20.0))
    rows = {(r["symbol"], r["closed"]) for r in agg.take()}
    assert rows == {("ETH-USDT", True), ("BTC-USDT", False)}


def test_closed_bars_waiting_for_take_are_bounded_oldest_dropped_and_counted() -> None:
    """``max_closed`` bounds the closed bars not taken yet (a database outage): the oldest
    go first and are counted."""
    agg = CandleAggregator(max_closed=2)
    for minute in range(5):
        agg.add(trade(M + 60 * minute + 1, 100.0 + minute, 1.0))
    assert agg.dropped == 2
    rows = agg.take()
    assert [(r["open"], r["closed"]) for r in rows] == [
        (102.0, True),
        (103.0, True),
        (104.0, False),
    ]
