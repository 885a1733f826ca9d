"""The simulator's signed Binance trading endpoints over real HTTP: authentication like
Binance (API key header, HMAC-SHA256 signature, recvWindow), error bodies, fault switches."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
import pytest_asyncio

from cryptomon.sim.matching import MatchingEngine
from cryptomon.sim.records import SymbolRules
from cryptomon.sim.trading import Fault, TradingEndpoints
from cryptomon.sim.venue import StaticBook, TradingSimServer

KEY, SECRET = "k", "s3cret"


@pytest_asyncio.fixture
async def server() -> AsyncIterator[TradingSimServer]:
    book = StaticBook()
    book.set("BTCUSDT", bids=[(99.0, 5.0)], asks=[(101.0, 5.0)])
    engine = MatchingEngine(
        books=book, symbols={"BTCUSDT": SymbolRules(symbol="BTCUSDT", base="BTC", quote="USDT")}
    )
    engine.deposit("USDT", Decimal(1000))
    srv = TradingSimServer(TradingEndpoints(engine=engine, api_key=KEY, api_secret=SECRET))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def signed(params: dict[str, Any], secret: str = SECRET, ts: int | None = None) -> str:
    query = urlencode({**params, "timestamp": ts or int(time.time() * 1000)})
    sig = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    return f"{query}&signature={sig}"


async def call(
    srv: TradingSimServer, method: str, path: str, query: str, key: str = KEY
) -> tuple[int, Any, dict[str, str]]:
    async with aiohttp.ClientSession() as s:
        url = f"{srv.url}/api/v3/{path}"
        headers = {"X-MBX-APIKEY": key}
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            req = s.post(url, data=query, headers=headers)
        else:
            req = s.request(method, f"{url}?{query}", headers=headers)
        async with req as resp:
            return resp.status, await resp.json(content_type=None), dict(resp.headers)


ORDER = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.1"}


@pytest.mark.asyncio
async def test_signed_order_is_accepted_and_answered_in_full(server: TradingSimServer) -> None:
    """A correctly signed market order fills; the FULL response carries the fills."""
    status, body, _ = await call(
        server, "POST", "order", signed({**ORDER, "newClientOrderId": "c1"})
    )
    assert status == 200
    assert (body["clientOrderId"], body["status"], body["executedQty"]) == (
        "c1",
        "FILLED",
        "0.10000000",
    )
    assert body["fills"][0]["price"] == "101.00000000"


@pytest.mark.asyncio
async def test_bad_signature_wrong_key_and_stale_timestamp_are_refused(
    server: TradingSimServer,
) -> None:
    """Authentication failures answer Binance's codes and never reach the engine."""
    status, body, _ = await call(server, "POST", "order", signed(ORDER, secret="nope"))
    assert (status, body["code"]) == (400, -1022)
    status, body, _ = await call(server, "POST", "order", signed(ORDER), key="other")
    assert (status, body["code"]) == (401, -2015)
    stale = int(time.time() * 1000) - 120_000
    status, body, _ = await call(server, "POST", "order", signed(ORDER, ts=stale))
    assert (status, body["code"]) == (400, -1021)
    status, body, _ = await call(server, "GET", "account", "timestamp=1")
    assert (status, body["code"]) == (400, -1102)
    assert server.endpoints.engine.orders == {}


@pytest.mark.asyncio
async def test_malformed_parameters_get_a_clear_error(server: TradingSimServer) -> None:
    """A non-numeric quantity or unknown symbol is a 400 naming the parameter."""
    status, body, _ = await call(server, "POST", "order", signed({**ORDER, "quantity": "abc"}))
    assert (status, body["code"]) == (400, -1100)
    assert "quantity" in body["msg"]
    status, body, _ = await call(server, "GET", "order", signed({"symbol": "NOPE", "orderId": 1}))
    assert (status, body["code"]) == (400, -1121)
    status, body, _ = await call(server, "GET", "order", signed({"symbol": "BTCUSDT"}))
    assert (status, body["code"]) == (400, -1102)


@pytest.mark.asyncio
async def test_duplicate_client_order_id_is_refused_and_counted(server: TradingSimServer) -> None:
    """A second order with the same newClientOrderId gets -2010 and is counted."""
    q = {**ORDER, "newClientOrderId": "dup"}
    assert (await call(server, "POST", "order", signed(q)))[0] == 200
    status, body, _ = await call(server, "POST", "order", signed(q))
    assert (status, body) == (400, {"code": -2010, "msg": "Duplicate order sent."})
    assert server.endpoints.engine.duplicate_client_order_ids == 1
    assert server.endpoints.order_posts == 2


@pytest.mark.asyncio
async def test_429_fault_answers_retry_after_without_placing(server: TradingSimServer) -> None:
    """The 429 switch answers Retry-After and the order is not processed."""
    server.endpoints.faults.add(
        Fault(kind="status", status=429, retry_after_s=7, after_accept=False)
    )
    status, body, headers = await call(server, "POST", "order", signed(ORDER))
    assert (status, body["code"], headers["Retry-After"]) == (429, -1003, "7")
    assert server.endpoints.engine.orders == {}


@pytest.mark.asyncio
async def test_hold_fault_keeps_the_request_until_released(server: TradingSimServer) -> None:
    """A held placement is processed only after release; 'reached' tells the test it came."""
    fault = server.endpoints.faults.add(Fault(kind="hold", after_accept=False))
    task = asyncio.create_task(call(server, "POST", "order", signed(ORDER)))
    await asyncio.wait_for(fault.reached.wait(), 5)
    assert server.endpoints.engine.orders == {}
    fault.release()
    status, body, _ = await asyncio.wait_for(task, 5)
    assert (status, body["status"]) == (200, "FILLED")


@pytest.mark.asyncio
async def test_drop_fault_closes_the_connection_after_accepting(
    server: TradingSimServer,
) -> None:
    """The drop switch accepts the order and closes the connection without an answer."""
    server.endpoints.faults.add(Fault(kind="drop", after_accept=True))
    with pytest.raises(aiohttp.ClientError):
        await call(server, "POST", "order", signed({**ORDER, "newClientOrderId": "d"}))
    assert server.endpoints.engine.client_order_ids() == ["d"]
