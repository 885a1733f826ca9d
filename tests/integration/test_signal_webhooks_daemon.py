"""Webhook signals of a whole daemon fed by the loopback simulator: a signal for an exchange
or a market the daemon does not watch could never be traded; it is refused with a 422 naming
the field, instead of an 'accepted' nothing came of."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cryptomon.api import ApiServer
from cryptomon.app import build_app
from cryptomon.config import load_settings
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel

SECRET = "any-webhook-secret-0123456789"


@pytest.mark.asyncio
async def test_signals_for_unwatched_exchanges_or_markets_are_422(tmp_path: Path) -> None:
    """No trading.exchange, a webhook without symbols: the body's exchange must be one of the
    daemon's feeds and its symbol one of that feed's markets; nothing is stored for the
    refused calls, and a watched market is accepted."""
    sim = SimExchange(MarketModel(["BTC-USDT"], seed=3), interval=0.05)
    await sim.start()
    settings = load_settings(
        data={
            "exchanges": [
                {"name": "simulator", "url": sim.rest_url, "symbols": ["BTC/USDT"]},
                {"name": "kraken", "enabled": False, "symbols": ["BTC/USD"]},
            ],
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"},
            "data_dir": str(tmp_path),
            "api": {"port": 0},
            "trading": {"webhooks": [{"name": "any", "secret": SECRET}]},
        }
    )
    app = build_app(settings)
    (api,) = [c for c in app.components if isinstance(c, ApiServer)]
    await app.start()
    http = aiohttp.ClientSession()
    url = f"{api.url}/api/v1/signals/webhook/any?token={SECRET}"

    async def send(body: dict[str, Any]) -> tuple[int, Any]:
        async with http.post(url, json=body) as r:
            return r.status, await r.json()

    try:
        base = {"symbol": "BTC-USDT", "side": "buy", "strength": 0.3}
        for exchange in ("nope", "kraken"):  # unknown; configured but disabled
            status, answer = await send({**base, "exchange": exchange})
            assert status == 422, answer
            (field,) = answer["error"]["details"]["fields"]
            assert field["field"] == "body.exchange"
            assert exchange in field["message"]
            assert "simulator" in field["message"]
        status, answer = await send({**base, "exchange": "simulator", "symbol": "DOGE-USDT"})
        assert status == 422, answer
        (field,) = answer["error"]["details"]["fields"]
        assert field["field"] == "body.symbol"
        assert "DOGE-USDT" in field["message"]
        assert "BTC-USDT" in field["message"]
        assert app.services.webhooks is not None
        assert app.services.webhooks.accepted == 0
        status, answer = await send({**base, "exchange": "simulator"})
        assert (status, answer["status"]) == (200, "accepted"), answer
        # TradingView's {{ticker}} has no separator: with no webhook or traded symbols to
        # read it by, the watched markets do (it was a 422 asking for a separator)
        tv = {"symbol": "BTCUSDT", "side": "buy", "strength": 0.3, "exchange": "simulator"}
        status, answer = await send(tv)
        assert (status, answer["status"]) == (200, "accepted"), answer
        assert answer["symbol"] == "BTC-USDT", answer
        status, answer = await send({**tv, "symbol": "DOGEUSDT"})  # no watched market reads so
        assert status == 422, answer
        (field,) = answer["error"]["details"]["fields"]
        assert field["field"] == "body.symbol"
    finally:
        await http.close()
        assert await app.stop()
        await sim.stop()
