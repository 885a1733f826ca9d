"""/api/v1/market/* from a real MarketState fed through the real hub, history from the store."""

from __future__ import annotations

from typing import Any

import pytest

from cryptomon.events import BookSnapshot, BookTop, FeedStatus, Ticker, Trade
from cryptomon.hub import Hub
from cryptomon.market.state import MarketState
from tests.integration.api.conftest import StartApi

T0 = 1_700_000_000.0


def feed(hub: Hub) -> None:
    common = {"exchange": "binance", "symbol": "BTC-USDT", "ts_recv": T0}
    hub.publish(Ticker(**common, ts=T0, bid=100.0, ask=101.0, last=100.5))
    hub.publish(
        BookTop(
            **common,
            ts=T0,
            bid=100.0,
            bid_size=2.0,
            ask=101.0,
            ask_size=3.0,
            spread=1.0,
            spread_bps=99.5,
            bid_depth=5.0,
            ask_depth=6.0,
            imbalance=-0.09,
            levels=2,
        )
    )
    hub.publish(
        BookSnapshot(
            **common, ts=T0, bids=((100.0, 2.0), (99.0, 3.0)), asks=((101.0, 3.0), (102.0, 3.0))
        )
    )
    for i in range(5):
        hub.publish(
            Trade(**common, ts=T0 + i, price=100.0 + i, amount=0.1, side="buy", trade_id=str(i))
        )


@pytest.mark.asyncio
async def test_ticker_orderbook_trades_stats(start_api: StartApi) -> None:
    """Live endpoints return what the hub delivered, with either symbol spelling."""
    hub = Hub()
    market = MarketState(hub=hub)
    api = await start_api(hub=hub, market=market)
    feed(hub)
    status, tick = await api.get("/api/v1/market/ticker?exchange=binance&symbol=BTC/USDT")
    assert status == 200
    assert (tick["bid"], tick["ask"], tick["last"], tick["stale"]) == (100.0, 101.0, 100.5, False)
    status, book = await api.get(
        "/api/v1/market/orderbook?exchange=binance&symbol=BTC-USDT&depth=1"
    )
    assert status == 200
    assert book["bids"] == [[100.0, 2.0]]
    assert book["asks"] == [[101.0, 3.0]]
    assert book["top"]["imbalance"] == -0.09
    status, trades = await api.get("/api/v1/market/trades?exchange=binance&symbol=BTC-USDT&limit=2")
    assert [t["price"] for t in trades["trades"]] == [103.0, 104.0]
    status, stats = await api.get("/api/v1/market/stats")
    (summary,) = stats["markets"]
    assert summary["mid"] == 100.5
    assert summary["last"] == 104.0
    assert summary["recent_trades"] == 5
    hub.publish(
        FeedStatus(
            exchange="binance", symbol="", ts=T0, ts_recv=T0, channel="trades", status="stale"
        )
    )
    _, tick = await api.get("/api/v1/market/ticker?exchange=binance&symbol=BTC-USDT")
    assert tick["stale"] is True


@pytest.mark.asyncio
async def test_unknown_market_and_bad_symbol(start_api: StartApi) -> None:
    """No data yet is 404 naming the market; a malformed symbol is 422 naming query.symbol."""
    hub = Hub()
    api = await start_api(hub=hub, market=MarketState(hub=hub))
    status, body = await api.get("/api/v1/market/ticker?exchange=binance&symbol=ETH-USDT")
    assert status == 404
    assert "ETH-USDT" in body["error"]["message"]
    status, body = await api.get("/api/v1/market/orderbook?exchange=binance&symbol=ETH-USDT")
    assert status == 404
    status, body = await api.get("/api/v1/market/ticker?exchange=binance&symbol=b@d")
    assert status == 422
    assert body["error"]["details"]["fields"][0]["field"] == "query.symbol"
    status, body = await api.get("/api/v1/market/ticker?exchange=binance")
    assert status == 422
    assert "query.symbol" in body["error"]["message"]


@pytest.mark.asyncio
async def test_history_from_the_store(start_api: StartApi, queries: Any, database: Any) -> None:
    """Candles written by the store come back oldest first for the requested range."""
    from cryptomon.events import Candle
    from cryptomon.store.bulk import candle_row, upsert_candles

    candles = [
        Candle(
            exchange="binance",
            symbol="BTC-USDT",
            ts=T0 + 60 * i,
            ts_recv=T0,
            interval="1m",
            start=T0 + 60 * i,
            end=T0 + 60 * (i + 1),
            open=1.0 + i,
            high=2.0 + i,
            low=0.5,
            close=1.5 + i,
            volume=10.0,
        )
        for i in range(5)
    ]
    async with database.sessionmaker() as session, session.begin():
        await upsert_candles(session, [candle_row(c) for c in candles])
    api = await start_api(queries=queries)
    status, body = await api.get(
        f"/api/v1/market/history?exchange=binance&symbol=BTC-USDT&interval=1m"
        f"&since={T0 + 60}&until={T0 + 180}"
    )
    assert status == 200, body
    assert [c["open"] for c in body["candles"]] == [2.0, 3.0, 4.0]
    status, body = await api.get(
        "/api/v1/market/history?exchange=binance&symbol=BTC-USDT&interval=1x"
    )
    assert status == 422
    assert "query.interval" in body["error"]["message"]
    # the form of an interval, but none a venue serves: no candle can be stored under it
    status, body = await api.get(
        "/api/v1/market/history?exchange=binance&symbol=BTC-USDT&interval=7m"
    )
    assert status == 422, body
    (field,) = body["error"]["details"]["fields"]
    assert field["field"] == "query.interval"
    assert field["value"] == "7m"
    assert "1m, 3m, 5m" in field["message"]
