"""SimExchange: Binance REST/WS protocol subset, full-speed stepping, route extension."""

from __future__ import annotations

import json
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import web

from cryptomon.clock import ManualClock
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel


@pytest.mark.asyncio
async def test_rest_exchange_info_and_depth() -> None:
    """exchangeInfo lists the symbols; depth is a snapshot with lastUpdateId; bad symbol: 400."""
    sim = SimExchange(MarketModel(["BTC-USDT"]), clock=ManualClock())
    await sim.start(run=False)
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{sim.rest_url}/api/v3/exchangeInfo") as r:
                info = await r.json()
            assert [x["symbol"] for x in info["symbols"]] == ["BTCUSDT"]
            assert info["symbols"][0]["filters"][0]["tickSize"] == "0.01"
            async with s.get(f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=5") as r:
                depth = await r.json()
            assert depth["lastUpdateId"] == sim.market.market("BTC-USDT").update_id
            assert len(depth["bids"]) == 5
            assert Decimal(depth["bids"][0][0]) < Decimal(depth["asks"][0][0])
            async with s.get(f"{sim.rest_url}/api/v3/depth?symbol=NOPE") as r:
                assert r.status == 400
    finally:
        await sim.stop()


@pytest.mark.asyncio
async def test_stream_rebuilds_the_book_from_snapshot_and_diffs() -> None:
    """A client applying depth diffs (Binance rules) onto the snapshot ends with the sim's book."""
    clock = ManualClock()
    sim = SimExchange(MarketModel(["BTC-USDT"], seed=5), clock=clock)
    added = []

    async def hello(request: web.Request) -> web.Response:
        added.append(1)
        return web.json_response({"ok": True})

    sim.add_routes([web.get("/api/v3/hello", hello)])
    await sim.start(run=False)
    streams = "btcusdt@aggTrade/btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@kline_1m"
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{sim.rest_url}/api/v3/hello") as r:
                assert r.status == 200
                assert added
            ws = await s.ws_connect(f"{sim.ws_url}/stream?streams={streams}")
            await sim.advance(0.5)
            async with s.get(f"{sim.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=1000") as r:
                snap = await r.json()
            await sim.advance(3.0)
            await sim.disconnect()
            book = {
                "b": {Decimal(p): Decimal(q) for p, q in snap["bids"]},
                "a": {Decimal(p): Decimal(q) for p, q in snap["asks"]},
            }
            last = snap["lastUpdateId"]
            kinds = set()
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                data = json.loads(msg.data)
                stream, d = data["stream"], data["data"]
                kinds.add(stream.split("@", 1)[1])
                if d.get("e") != "depthUpdate" or d["u"] <= last:
                    continue
                assert d["U"] <= last + 1 <= d["u"]
                last = d["u"]
                for side in ("b", "a"):
                    for p, q in d[side]:
                        if Decimal(q) == 0:
                            book[side].pop(Decimal(p), None)
                        else:
                            book[side][Decimal(p)] = Decimal(q)
        assert kinds == {"aggTrade", "depth@100ms", "bookTicker", "kline_1m"}
        bids, asks = sim.market.book("BTC-USDT")
        assert sorted(((float(p), float(q)) for p, q in book["b"].items()), reverse=True) == bids
        assert sorted((float(p), float(q)) for p, q in book["a"].items()) == asks
    finally:
        await sim.stop()


@pytest.mark.asyncio
async def test_advance_needs_a_controllable_clock() -> None:
    """advance() on a live clock is a TypeError, not a silent sleep."""
    sim = SimExchange(MarketModel(["BTC-USDT"]))
    with pytest.raises(TypeError, match="ManualClock"):
        await sim.advance(1.0)
