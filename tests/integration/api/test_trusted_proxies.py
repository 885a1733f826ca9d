"""api.trusted_proxies against the real server over real sockets: 127.0.0.1 plays the reverse
proxy (it is the only trusted peer), 127.0.0.2 a client reaching the API directly."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from cryptomon.events import AuditEntry, Signal
from tests.integration.api.conftest import Running, StartApi, api_config, bearer
from tests.integration.api.test_signal_webhooks import PINNED_SECRET, start_hook_api
from tests.unit.trading.helpers import Collector
from tests.util import wait_until

PROXY = "127.0.0.1"  # trusted
DIRECT = "127.0.0.2"  # not trusted
PINNED = "/api/v1/signals/webhook/pinned"
BODY = json.dumps({"secret": PINNED_SECRET, "symbol": "BTC-USDT", "side": "buy"}).encode()


@pytest_asyncio.fixture
async def sessions() -> AsyncIterator[dict[str, aiohttp.ClientSession]]:
    """One client session per source address (PROXY, DIRECT)."""
    made = {
        source: aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0)))
        for source in (PROXY, DIRECT)
    }
    yield made
    for session in made.values():
        await session.close()


async def _get(
    api: Running, session: aiohttp.ClientSession, path: str, **headers: str
) -> tuple[int, dict[str, str]]:
    async with session.get(api.url + path, headers=headers) as r:
        await r.read()
        return r.status, dict(r.headers)


def _clients(logs: list[dict[str, Any]]) -> list[str]:
    return [e["client"] for e in logs if e["event"] == "api.request"]


@pytest.mark.asyncio
async def test_forwarded_clients_have_their_own_rate_budget_and_log_lines(
    start_api: StartApi, sessions: dict[str, aiohttp.ClientSession]
) -> None:
    """Anonymous /health, burst 2: two clients forwarded by the trusted proxy each get their
    own 2 requests and are logged under their address; a client that writes its own entries
    left of the proxy's stays the address the proxy appended; a direct peer's X-Forwarded-For
    is ignored (all its requests count under its own address, whatever it claims)."""
    config = api_config(trusted_proxies=[PROXY], rate_limit_burst=2, rate_limit_per_s=0.001)
    api = await start_api(config=config)
    proxy, direct = sessions[PROXY], sessions[DIRECT]
    with capture_logs() as logs:
        for _ in range(2):
            assert (await _get(api, proxy, "/health", **{"X-Forwarded-For": "203.0.113.7"}))[
                0
            ] == 200
        spoofed = {"X-Forwarded-For": "198.51.100.1, 198.51.100.2,203.0.113.7"}
        assert (await _get(api, proxy, "/health", **spoofed))[0] == 429
        assert (await _get(api, proxy, "/health", **{"X-Forwarded-For": "203.0.113.7"}))[0] == 429
        for _ in range(2):
            assert (await _get(api, proxy, "/health", **{"X-Forwarded-For": "203.0.113.8"}))[
                0
            ] == 200
        assert _clients(logs) == ["203.0.113.7"] * 4 + ["203.0.113.8"] * 2

    with capture_logs() as logs:
        for claimed in ("203.0.113.20", "203.0.113.21"):
            assert (await _get(api, direct, "/health", **{"X-Forwarded-For": claimed}))[0] == 200
        assert (await _get(api, direct, "/health", **{"X-Forwarded-For": "203.0.113.22"}))[0] == 429
        assert _clients(logs) == [DIRECT] * 3


@pytest.mark.asyncio
async def test_a_malformed_forwarded_value_counts_under_the_proxy_never_a_500(
    start_api: StartApi, sessions: dict[str, aiohttp.ClientSession]
) -> None:
    """Where the client's address should be: garbage, an empty entry, 'unknown', a port
    that is not a number, a zone: each request is answered (200) and counted and logged under
    the proxy's own address, with a debug line; garbage left of a good entry is never read
    (the forwarded client keeps its address). IPv6 forms are understood."""
    api = await start_api(config=api_config(trusted_proxies=[PROXY]))
    proxy = sessions[PROXY]
    bad = ["not-an-address", "", "203.0.113.7,", "unknown", "203.0.113.7:http", "fe80::1%eth0"]
    with capture_logs() as logs:
        for value in bad:
            status, _ = await _get(api, proxy, "/health", **{"X-Forwarded-For": value})
            assert status == 200, value
        assert _clients(logs) == [PROXY] * len(bad)
        malformed = [e for e in logs if e["event"] == "api.forwarded_malformed"]
        assert len(malformed) == len(bad)
        assert {e["log_level"] for e in malformed} == {"debug"}

    good = {
        "<script>, 203.0.113.7": "203.0.113.7",
        "203.0.113.7:4711": "203.0.113.7",
        "2001:db8::1": "2001:db8::1",
        "[2001:db8::2]": "2001:db8::2",
        "[2001:db8::3]:443": "2001:db8::3",
        "::ffff:203.0.113.9": "203.0.113.9",
        f"203.0.113.10, {PROXY}": "203.0.113.10",  # a second trusted hop is walked past
    }
    with capture_logs() as logs:
        for value in good:
            assert (await _get(api, proxy, "/health", **{"X-Forwarded-For": value}))[0] == 200
        assert _clients(logs) == list(good.values())
        assert not [e for e in logs if e["event"] == "api.forwarded_malformed"]


class HeldRequest:
    """A webhook call over its own connection from PROXY, its body held back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, forwarded_for: str) -> HeldRequest:
        reader, writer = await asyncio.open_connection(PROXY, port, local_addr=(PROXY, 0))
        writer.write(
            f"POST {PINNED} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"X-Forwarded-For: {forwarded_for}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n".encode()
            + BODY[:5]
        )
        await writer.drain()
        return cls(reader, writer)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@pytest.mark.asyncio
async def test_forwarded_clients_have_their_own_requests_in_progress(
    start_api: StartApi, sessions: dict[str, aiohttp.ClientSession]
) -> None:
    """api.max_inflight_per_ip 2 behind the proxy: client .7 holding two slow webhook calls
    is refused a third (429 too_many_in_progress) while client .8, through the same proxy,
    is served."""
    api, engine, col = await start_hook_api(
        start_api,
        trusted_proxies=[PROXY],
        max_inflight_per_ip=2,
        body_timeout_s=60,
        request_timeout_s=120,
    )
    held: list[HeldRequest] = []
    try:
        port = api.server.port
        assert port is not None
        ctx = api.server.app_context
        held += [await HeldRequest.open(port, "203.0.113.7") for _ in range(2)]
        await wait_until(lambda: ctx.inflight == {"203.0.113.7": 2}, message="2 in progress")

        proxy = sessions[PROXY]
        headers = {"Content-Type": "text/plain"}
        for client, expected in (("203.0.113.7", 429), ("203.0.113.8", 200)):
            async with proxy.post(
                api.url + PINNED, data=BODY, headers={**headers, "X-Forwarded-For": client}
            ) as r:
                answer = await r.json()
                assert r.status == expected, answer
        assert answer["status"] == "accepted"
        assert len(col.of(Signal)) == 1
        assert ctx.inflight_refused == 1
    finally:
        for req in held:
            await req.close()
        await engine.stop()


@pytest.mark.asyncio
async def test_hsts_when_the_trusted_proxy_says_https(
    start_api: StartApi, sessions: dict[str, aiohttp.ClientSession]
) -> None:
    """X-Forwarded-Proto: https from the trusted proxy: the answer carries HSTS; the same
    header from a direct peer, or http from the proxy, does not."""
    api = await start_api(config=api_config(trusted_proxies=[PROXY]))
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    _, headers = await _get(api, sessions[PROXY], "/health", **https)
    assert headers["Strict-Transport-Security"] == "max-age=31536000"
    _, headers = await _get(api, sessions[PROXY], "/nope", **https)  # errors too
    assert "Strict-Transport-Security" in headers
    _, headers = await _get(api, sessions[DIRECT], "/health", **https)
    assert "Strict-Transport-Security" not in headers
    _, headers = await _get(api, sessions[PROXY], "/health", **{"X-Forwarded-Proto": "http"})
    assert "Strict-Transport-Security" not in headers


@pytest.mark.asyncio
async def test_rfc7239_forwarded_with_ipv6_throttles_and_audits_the_client(
    start_api: StartApi, sessions: dict[str, aiohttp.ClientSession]
) -> None:
    """trusted_proxy_header Forwarded: for="[2001:db8::1]:4711" is the client: its wrong
    tokens are audited with its address, and the failed-auth throttle holds its /64
    (2001:db8::2 is refused) but not another network's client nor the proxy's; proto=https
    gives HSTS; X-Forwarded-For is then not read."""
    config = api_config(
        trusted_proxies=[PROXY], trusted_proxy_header="Forwarded", auth_fail_limit=2
    )
    api = await start_api(config=config)
    col = Collector(api.hub, AuditEntry)
    proxy = sessions[PROXY]
    wrong = bearer("wrong-token-0123456789")

    async def call(forwarded: str, **extra: str) -> tuple[int, dict[str, str]]:
        return await _get(api, proxy, "/api/v1/status", **wrong, Forwarded=forwarded, **extra)

    first = 'for=198.51.100.1, for="[2001:db8::1]:4711";proto=https;by=_nginx'
    status, headers = await call(first)
    assert status == 401
    assert headers["Strict-Transport-Security"] == "max-age=31536000"
    assert (await call('for="[2001:db8::1]"'))[0] == 401
    await wait_until(lambda: len(col.of(AuditEntry)) == 2, message="two denials audited")
    assert {e.client for e in col.of(AuditEntry)} == {"2001:db8::1"}
    assert (await call('for="[2001:db8::2]"'))[0] == 429  # the same /64
    assert (await call('for="[2001:db8:1::1]"'))[0] == 401  # another /64
    assert (await call("for=192.0.2.60;proto=http"))[0] == 401
    status, headers = await _get(
        api, proxy, "/api/v1/status", **wrong, **{"X-Forwarded-For": "2001:db8::9"}
    )
    assert status == 401  # counted under the proxy's address, not the /64 throttled
    await wait_until(lambda: len(col.of(AuditEntry)) == 5, message="five denials audited")
    clients = [e.client for e in col.of(AuditEntry)]
    assert clients[2:] == ["2001:db8:1::1", "192.0.2.60", PROXY]


@pytest.mark.asyncio
async def test_forwarded_clients_have_their_own_anonymous_websocket_slots(
    start_api: StartApi, sessions: dict[str, aiohttp.ClientSession]
) -> None:
    """public_read with ws_max_anonymous_per_ip 1 behind the proxy: client .7 gets one
    anonymous WebSocket and is refused a second (429), client .8 through the same proxy
    still connects; the connection is logged with the forwarded address."""
    config = api_config(trusted_proxies=[PROXY], ws_max_anonymous_per_ip=1, public_read=True)
    api = await start_api(config=config)
    proxy = sessions[PROXY]
    url = api.url + "/ws"
    with capture_logs() as logs:
        first = await proxy.ws_connect(url, headers={"X-Forwarded-For": "203.0.113.7"})
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await proxy.ws_connect(url, headers={"X-Forwarded-For": "203.0.113.7"})
        assert exc.value.status == 429
        second = await proxy.ws_connect(url, headers={"X-Forwarded-For": "203.0.113.8"})
    connected = [e["client"] for e in logs if e["event"] == "api.ws_connected"]
    assert connected == ["203.0.113.7", "203.0.113.8"]
    assert api.server.ws.stats()["clients"] == 2
    await first.close()
    await second.close()
