"""The ApiServer component: ephemeral port, refusal to serve unauthenticated on the network,
lifecycle, and its wiring in the composition root."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from cryptomon.api import ApiServer
from cryptomon.clock import LiveClock
from cryptomon.config import ApiConfig, load_settings
from cryptomon.errors import ConfigError
from cryptomon.hub import Hub
from tests.integration.api.conftest import READ, StartApi, api_config, bearer


@pytest.mark.asyncio
async def test_port_zero_binds_an_ephemeral_port(start_api: StartApi) -> None:
    """api.port: 0 gets a free port, exposed as server.port/url; two servers coexist."""
    a = await start_api()
    b = await start_api()
    assert a.server.port
    assert b.server.port
    assert a.server.port != b.server.port
    assert a.url == f"http://127.0.0.1:{a.server.port}"
    assert (await b.get("/health", token=None))[0] == 200


def test_non_loopback_without_tokens_is_a_config_error() -> None:
    """Binding a public address without tokens fails config validation with a clear message."""
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"api": {"host": "0.0.0.0"}})
    assert "not a loopback address" in str(exc.value)
    assert "api.tokens" in str(exc.value)
    ok = load_settings(data={"api": {"host": "0.0.0.0", "enabled": False}})
    assert ok.api.enabled is False


@pytest.mark.asyncio
async def test_server_refuses_to_start_public_without_tokens() -> None:
    """Even with validation bypassed, start() refuses a public bind without tokens."""
    cfg = ApiConfig.model_construct(host="0.0.0.0", port=0, tokens=[])
    server = ApiServer(config=cfg, hub=Hub(), clock=LiveClock())
    with pytest.raises(ConfigError) as exc:
        await server.start()
    assert "refusing to serve the API unauthenticated" in str(exc.value)
    assert server.port is None


@pytest.mark.asyncio
async def test_busy_port_is_a_clear_error(start_api: StartApi) -> None:
    """A port already in use is a ConfigError naming host and port."""
    first = await start_api()
    server = ApiServer(config=api_config(port=first.server.port), hub=Hub(), clock=LiveClock())
    with pytest.raises(ConfigError) as exc:
        await server.start()
    assert f"127.0.0.1:{first.server.port}" in str(exc.value)
    # one line naming the key and its value (it read "config: got None; expected api: ...")
    assert [(p.path, p.value) for p in exc.value.problems] == [("api.port", first.server.port)]
    assert "got None" not in str(exc.value)


@pytest.mark.asyncio
async def test_stop_closes_websocket_clients(start_api: StartApi) -> None:
    """stop() closes open WebSocket connections (going away) and frees the port."""
    api = await start_api()
    ws = await api.http.ws_connect(api.url + "/ws", headers=bearer(READ))
    url = api.url
    await api.server.stop()
    msg = await ws.receive(timeout=5)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with api.http.get(url + "/health"):
            pass


@pytest.mark.asyncio
async def test_build_app_wires_the_api_to_the_real_services(tmp_path: Path) -> None:
    """The composition root builds the API with the store, market state and notifier bound."""
    from cryptomon.app import build_app

    settings = load_settings(
        data={
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"},
            "api": {"port": 0, "tokens": [{"name": "ops", "token": READ}]},
        }
    )
    app = build_app(settings)
    (api,) = [c for c in app.components if c.name == "api"]
    assert isinstance(api, ApiServer)
    await app.start()
    try:
        async with aiohttp.ClientSession(headers=bearer(READ)) as http:
            async with http.get(api.url + "/api/v1/status") as r:
                status = await r.json()
            async with http.get(api.url + "/api/v1/anomalies") as r:
                assert r.status == 200
                assert (await r.json())["items"] == []
            async with http.get(api.url + "/ready") as r:
                assert r.status == 200
        for capability in (
            "store",
            "database",
            "market data",
            "notifications",
            "detection",
            "trading",
            "feeds",
            "store writer",
        ):
            assert status["components"][capability] == "available", capability
    finally:
        await app.stop()


@pytest.mark.asyncio
async def test_head_answers_every_get_route_with_its_headers_and_no_body(
    start_api: StartApi,
) -> None:
    """Uptime checks often send HEAD /health: every GET route answers HEAD as GET would
    (status, headers, the same auth), without a body; other methods stay 405."""
    api = await start_api()
    async with aiohttp.ClientSession() as http:
        async with http.head(f"{api.url}/health") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("application/json")
            assert await r.read() == b""
        async with http.get(f"{api.url}/health") as r:
            assert r.status == 200
            assert await r.read() != b""
        async with http.head(f"{api.url}/api/v1/anomalies") as r:  # no token
            assert r.status == 401
        for path in ("/api/v1/anomalies", "/api/v1/openapi.json", "/metrics", "/"):
            async with http.get(f"{api.url}{path}", headers=bearer(READ)) as r:
                status, body = r.status, await r.read()
            async with http.head(f"{api.url}{path}", headers=bearer(READ)) as r:
                assert (path, r.status) == (path, status)
                assert await r.read() == b""
            assert body != b""
        async with http.put(f"{api.url}/health") as r:
            assert r.status == 405
