"""/api/v1/trading/* against an order engine implementing the documented TradingEngine API."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.integration.api.conftest import ADMIN, READ, TRADE, StartApi, bearer
from tests.integration.api.fakes import FakeTrading

BUY = {"exchange": "Binance", "symbol": "btc/usdt", "side": "buy", "amount": "0.25"}


@pytest.mark.asyncio
async def test_place_list_cancel(start_api: StartApi) -> None:
    """A manual order is placed with the token's name as actor, listed, then cancelled."""
    trading = FakeTrading()
    api = await start_api(trading=trading)
    status, order = await api.post("/api/v1/trading/orders", BUY, token=TRADE)
    assert status == 200, order
    assert order["exchange"] == "binance"
    assert order["symbol"] == "BTC-USDT"
    assert order["amount"] == "0.25"
    assert trading.audits == [("trader", "place_order")]
    status, body = await api.get("/api/v1/trading/orders?open_only=true&symbol=BTC-USDT")
    assert [o["client_order_id"] for o in body["orders"]] == [order["client_order_id"]]
    url = f"{api.url}/api/v1/trading/orders/{order['client_order_id']}"
    async with api.http.delete(url, headers=bearer(TRADE)) as r:
        assert r.status == 200
        assert (await r.json())["state"] == "canceled"
    async with api.http.delete(api.url + "/api/v1/trading/orders/nope", headers=bearer(TRADE)) as r:
        assert r.status == 404


@pytest.mark.asyncio
async def test_idempotency_key_places_once(start_api: StartApi) -> None:
    """A retried request with the same Idempotency-Key returns the same order."""
    trading = FakeTrading()
    api = await start_api(trading=trading)
    headers = {"Idempotency-Key": "k-1"}
    _, first = await api.post("/api/v1/trading/orders", BUY, token=TRADE, headers=headers)
    _, again = await api.post("/api/v1/trading/orders", BUY, token=TRADE, headers=headers)
    assert first["client_order_id"] == again["client_order_id"]
    assert len(trading.book) == 1


@pytest.mark.asyncio
async def test_kill_switch_engage_and_release(start_api: StartApi) -> None:
    """Engaging halts and cancels open orders; new orders are then rejected (409); release
    resumes, but not before reconciliation (409)."""
    trading = FakeTrading()
    api = await start_api(trading=trading)
    _, order = await api.post("/api/v1/trading/orders", BUY, token=TRADE)
    status, body = await api.post("/api/v1/trading/kill-switch", {"action": "engage"}, token=TRADE)
    assert status == 200
    assert body == {
        "state": "halted",
        "canceled": [order["client_order_id"]],
        "cancel_pending": [],
        "flatten": [],
    }
    status, body = await api.post("/api/v1/trading/orders", BUY, token=TRADE)
    assert status == 409
    assert body["error"]["details"]["check"] == "risk_state"
    trading.reconciled = False
    status, body = await api.post("/api/v1/trading/kill-switch", {"action": "release"}, token=ADMIN)
    assert status == 409
    trading.reconciled = True
    status, body = await api.post("/api/v1/trading/kill-switch", {"action": "release"}, token=ADMIN)
    assert (status, body["state"]) == (200, "active")


@pytest.mark.asyncio
async def test_risk_config_get_and_partial_update(start_api: StartApi) -> None:
    """Limits are read with read scope, changed with admin scope, validated by the engine."""
    trading = FakeTrading()
    api = await start_api(trading=trading)
    status, body = await api.get("/api/v1/trading/config", token=READ)
    assert (status, body["config"]["max_open_positions"]) == (200, 3)
    status, body = await api.post("/api/v1/trading/config", {"max_open_positions": 5}, token=ADMIN)
    assert (status, body["config"]["max_open_positions"]) == (200, 5)
    assert trading.audits == [("admin", "update_limits")]
    status, body = await api.post(
        "/api/v1/trading/config", {"max_open_positions": 500}, token=ADMIN
    )
    assert status == 422
    assert body["error"]["details"]["fields"][0]["field"] == "body.max_open_positions"
    status, body = await api.post("/api/v1/trading/config", {"risk_percentage": 0}, token=ADMIN)
    assert status == 422
    assert "body.risk_percentage" in body["error"]["message"]
    status, body = await api.post("/api/v1/trading/config", {}, token=ADMIN)
    assert status == 422
    status, _ = await api.post("/api/v1/trading/config", {"max_open_positions": 2}, token=TRADE)
    assert status == 403


@pytest.mark.asyncio
async def test_positions_and_stats(start_api: StartApi) -> None:
    """Positions keep exact Decimal strings; stats carry risk state and reconciliation."""
    api = await start_api(trading=FakeTrading(max_amount=Decimal(5)))
    status, body = await api.get("/api/v1/trading/positions")
    assert status == 200
    (pos,) = body["positions"]
    assert (pos["amount"], pos["unrealized_pnl"]) == ("0.5", "5")
    status, body = await api.get("/api/v1/trading/stats")
    assert status == 200
    assert (body["risk_state"], body["reconciled"]) == ("active", True)
    assert body["stats"]["open_orders"] == 0
