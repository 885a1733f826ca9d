"""The API of a whole daemon fed by the loopback exchange simulator through cryptofeed:
REST sees the live market and feed health, a WebSocket client receives the real trades."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cryptomon.api import ApiServer
from cryptomon.app import build_app
from cryptomon.config import load_settings
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from tests.integration.api.conftest import READ, bearer
from tests.util import wait_until


@pytest.mark.asyncio
async def test_daemon_api_serves_live_simulator_data(tmp_path: Path) -> None:
    """Trades from the simulator reach REST (ticker, trades, feeds, ready, metrics) and a
    filtered WebSocket subscription of the running daemon."""
    sim = SimExchange(MarketModel(["BTC-USDT", "ETH-USDT"], seed=7), interval=0.05)
    await sim.start()
    settings = load_settings(
        data={
            "exchanges": [
                {
                    "name": "simulator",
                    "url": sim.rest_url,
                    "symbols": ["BTC/USDT", "ETH/USDT"],
                    "subscriptions": ["trades", "orderbook", "ticker"],
                }
            ],
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"},
            "api": {"port": 0, "tokens": [{"name": "ops", "token": READ}]},
        }
    )
    app = build_app(settings)
    (api,) = [c for c in app.components if isinstance(c, ApiServer)]
    await app.start()
    http = aiohttp.ClientSession(headers=bearer(READ))
    try:
        ws = await http.ws_connect(api.url + "/ws")
        await ws.send_str(
            json.dumps(
                {"msg_type": "Subscribe", "data": {"channel": "trades", "symbols": ["ETH-USDT"]}}
            )
        )
        assert (await ws.receive_json(timeout=10))["channel"] == "subscribed"
        got: list[dict[str, Any]] = [await ws.receive_json(timeout=30) for _ in range(3)]
        assert {(m["channel"], m["data"]["symbol"], m["data"]["exchange"]) for m in got} == {
            ("trades", "ETH-USDT", "simulator")
        }

        async def ok(path: str) -> bool:
            async with http.get(api.url + path) as r:
                return r.status == 200

        await wait_until(
            lambda: ok("/api/v1/market/ticker?exchange=simulator&symbol=BTC-USDT"),
            timeout=30,
            message="a ticker",
        )
        await wait_until(lambda: ok("/ready"), timeout=30, message="ready")
        async with http.get(api.url + "/api/v1/feeds") as r:
            feeds = (await r.json())["feeds"]
        assert feeds["simulator"]["state"] == "live"
        async with http.get(
            api.url + "/api/v1/market/trades?exchange=simulator&symbol=BTC-USDT"
        ) as r:
            assert (await r.json())["trades"]
        async with http.get(api.url + "/metrics") as r:
            text = await r.text()
        assert 'cryptomon_feed_messages_total{channel="trades",exchange="simulator"}' in text
        await ws.close()
    finally:
        await http.close()
        assert await app.stop()
        await sim.stop()
