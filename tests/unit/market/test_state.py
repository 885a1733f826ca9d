"""MarketState: latest book/ticker/trades per market and feed staleness from the hub."""

from __future__ import annotations

from cryptomon.events import BookTop, FeedStatus, Ticker, Trade
from cryptomon.hub import Hub
from cryptomon.market.state import MarketState


def top(bid: float, ask: float, exchange: str = "binance") -> BookTop:
    return BookTop(
        exchange=exchange,
        symbol="BTC-USDT",
        ts=1,
        ts_recv=1,
        bid=bid,
        bid_size=1,
        ask=ask,
        ask_size=1,
        spread=ask - bid,
        spread_bps=(ask - bid) / ((ask + bid) / 2) * 1e4,
        bid_depth=1,
        ask_depth=1,
        imbalance=0,
        levels=1,
    )


def status(state: str, symbol: str = "", exchange: str = "binance") -> FeedStatus:
    return FeedStatus(
        exchange=exchange,
        symbol=symbol,
        ts=1,
        ts_recv=1,
        channel="trades",
        status=state,  # type: ignore[arg-type]
    )


def test_keeps_latest_top_ticker_and_bounded_trades() -> None:
    """The newest BookTop/Ticker win; trades are a bounded ring, newest last."""
    hub = Hub()
    state = MarketState(hub=hub, trades_kept=3)
    hub.publish(top(99, 101))
    hub.publish(top(100, 102))
    hub.publish(Ticker(exchange="binance", symbol="BTC-USDT", ts=1, ts_recv=1, bid=1, ask=2))
    for i in range(5):
        hub.publish(
            Trade(
                exchange="binance",
                symbol="BTC-USDT",
                ts=i,
                ts_recv=i,
                price=100 + i,
                amount=1,
                side="buy",
            )
        )
    assert state.top("binance", "BTC-USDT").bid == 100  # type: ignore[union-attr]
    assert [t.price for t in state.trades("binance", "BTC-USDT")] == [102, 103, 104]
    assert state.mid("binance", "BTC-USDT") == 101
    assert state.mid("binance", "ETH-USDT") is None
    assert state.markets() == [("binance", "BTC-USDT")]


def test_mid_falls_back_to_ticker_then_last_trade() -> None:
    """Without a book the ticker mid is used, without a ticker the last trade."""
    hub = Hub()
    state = MarketState(hub=hub)
    hub.publish(
        Trade(exchange="x", symbol="A-B", ts=1, ts_recv=1, price=7.5, amount=1, side="sell")
    )
    assert state.mid("x", "A-B") == 7.5
    hub.publish(Ticker(exchange="x", symbol="A-B", ts=1, ts_recv=1, bid=8, ask=10))
    assert state.mid("x", "A-B") == 9


def test_the_decimal_mid_is_the_exact_mid_of_the_quoted_prices() -> None:
    """decimal_mid: the book's, else the ticker's, else the last trade price, each exact in
    Decimal (the float mid of 59976.48 / 59976.50 is 59976.490000000005)."""
    hub = Hub()
    state = MarketState(hub=hub)
    assert state.decimal_mid("x", "A-B") is None
    hub.publish(
        Trade(exchange="x", symbol="A-B", ts=1, ts_recv=1, price=0.3, amount=1, side="sell")
    )
    assert str(state.decimal_mid("x", "A-B")) == "0.3"
    hub.publish(Ticker(exchange="x", symbol="A-B", ts=1, ts_recv=1, bid=0.1, ask=0.2))
    assert state.mid("x", "A-B") == 0.15000000000000002
    assert str(state.decimal_mid("x", "A-B")) == "0.15"
    hub.publish(Ticker(exchange="x", symbol="A-B", ts=1, ts_recv=1, bid=0.0, ask=0.2))
    assert str(state.decimal_mid("x", "A-B")) == "0.3"  # no bid: the last trade
    hub.publish(top(59976.48, 59976.50))
    assert state.mid("binance", "BTC-USDT") == 59976.490000000005
    assert str(state.decimal_mid("binance", "BTC-USDT")) == "59976.49"
    hub.publish(top(59976.47, 59976.50))
    assert str(state.decimal_mid("binance", "BTC-USDT")) == "59976.485"


def test_staleness_per_symbol_and_per_connection() -> None:
    """A stale symbol or connection marks the market stale until its own live status clears
    it: the connection's live (a reconnect) leaves a symbol still marked stale stale."""
    hub = Hub()
    state = MarketState(hub=hub)
    assert not state.is_stale("binance", "BTC-USDT")
    hub.publish(status("stale", "BTC-USDT"))
    assert state.is_stale("binance", "BTC-USDT")
    assert not state.is_stale("binance", "ETH-USDT")
    hub.publish(status("live", "BTC-USDT"))
    assert not state.is_stale("binance", "BTC-USDT")
    hub.publish(status("disconnected"))
    assert state.is_stale("binance", "ETH-USDT")
    assert not state.is_stale("okx", "ETH-USDT")
    hub.publish(status("stale", "BTC-USDT"))
    hub.publish(status("live"))
    assert not state.is_stale("binance", "ETH-USDT")
    assert state.is_stale("binance", "BTC-USDT")
    hub.publish(status("live", "BTC-USDT"))
    assert not state.is_stale("binance", "BTC-USDT")


def test_delisted_stays_stale_across_a_reconnection_and_specs_are_known() -> None:
    """A delisted symbol stays stale when its connection is live again; a market without
    a spec is reported unknown once instruments are tracked."""
    from cryptomon.events import FeedStatus
    from cryptomon.hub import Hub
    from cryptomon.market.registry import InstrumentRegistry
    from cryptomon.market.state import MarketState
    from cryptomon.sim.instruments import simulator_specs

    hub = Hub()
    registry = InstrumentRegistry()
    registry.add(simulator_specs(["BTC-USDT"], exchange="x"))
    state = MarketState(hub=hub, instruments=registry)
    for symbol, status in (("ETH-USDT", "delisted"), ("", "live")):
        hub.publish(
            FeedStatus(exchange="x", symbol=symbol, ts=0, ts_recv=0, channel="", status=status)  # type: ignore[arg-type]
        )
    assert state.is_stale("x", "ETH-USDT")
    assert state.is_delisted("x", "ETH-USDT")
    assert not state.is_stale("x", "BTC-USDT")
    assert state.spec_known("x", "BTC-USDT")
    assert not state.spec_known("x", "ETH-USDT")
