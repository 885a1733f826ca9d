"""Abuse a public daemon meets, against the real server over real sockets: one address
holding many slow requests, bodies trickled a byte at a time."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from cryptomon.events import Signal
from tests.integration.api.conftest import Running, StartApi
from tests.integration.api.test_signal_webhooks import PINNED_SECRET, start_hook_api
from tests.unit.trading.helpers import Collector
from tests.util import wait_until

PINNED = "/api/v1/signals/webhook/pinned"
BODY = json.dumps({"secret": PINNED_SECRET, "symbol": "BTC-USDT", "side": "buy"}).encode()


class RawRequest:
    """One POST over its own TCP connection, written by hand so its body can be held back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, *, source: str = "127.0.0.1", sent: int = 0) -> RawRequest:
        """Send the headers of a webhook call and the first ``sent`` bytes of its body."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        writer.write(
            f"POST {PINNED} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n".encode()
            + BODY[:sent]
        )
        await writer.drain()
        return cls(reader, writer)

    async def finish(self, sent: int = 0) -> None:
        self.writer.write(BODY[sent:])
        await self.writer.drain()

    async def answer(self) -> tuple[int, dict[str, str], Any]:
        status = int((await self.reader.readline()).split()[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers["content-length"]))
        return status, headers, json.loads(body)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@pytest_asyncio.fixture
async def raw_requests() -> AsyncIterator[list[RawRequest]]:
    opened: list[RawRequest] = []
    yield opened
    for req in opened:
        await req.close()


async def _hooks(start_api: StartApi, **over: Any) -> tuple[Running, Any, Collector]:
    return await start_hook_api(start_api, **over)


@pytest_asyncio.fixture
async def engines() -> AsyncIterator[list[Any]]:
    started: list[Any] = []
    yield started
    for engine in started:
        await engine.stop()


@pytest.mark.asyncio
async def test_one_address_cannot_hold_more_than_its_share_of_requests(
    start_api: StartApi, raw_requests: list[RawRequest], engines: list[Any]
) -> None:
    """api.max_inflight_per_ip 4: four webhook calls from 127.0.0.1 whose bodies have not
    come are in progress; a fifth from that address is refused at once (429 naming the key)
    while a client from 127.0.0.2 is served; once one of the four completes, 127.0.0.1 is
    served again. /metrics counts the refusal."""
    api, engine, col = await _hooks(
        start_api, max_inflight_per_ip=4, body_timeout_s=60, request_timeout_s=120
    )
    engines.append(engine)
    port = api.server.port
    assert port is not None
    ctx = api.server.app_context
    raw_requests.extend([await RawRequest.open(port, sent=5) for _ in range(4)])
    await wait_until(lambda: ctx.inflight.get("127.0.0.1") == 4, message="4 requests in progress")

    fifth = await RawRequest.open(port, sent=len(BODY))
    raw_requests.append(fifth)
    status, headers, answer = await fifth.answer()
    assert status == 429, answer
    assert answer["error"]["code"] == "too_many_in_progress"
    assert "api.max_inflight_per_ip" in answer["error"]["message"]
    assert headers["retry-after"] == "1"

    other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=other) as session:
        async with session.post(
            api.url + PINNED, data=BODY, headers={"Content-Type": "text/plain"}
        ) as r:
            assert r.status == 200, await r.text()
        # the refusal is counted in /metrics (scraped from the address not at its cap)
        assert (await api.metrics(session))["cryptomon_api_inflight_refused_total"] == 1
    assert len(col.of(Signal)) == 1

    await raw_requests[0].finish(sent=5)
    status, _, answer = await raw_requests[0].answer()
    assert status == 200, answer
    await wait_until(lambda: ctx.inflight.get("127.0.0.1") == 3, message="one request done")
    again = await RawRequest.open(port, sent=len(BODY))
    raw_requests.append(again)
    status, _, answer = await again.answer()
    assert status == 200, answer
    assert len(col.of(Signal)) == 3


@pytest.mark.asyncio
async def test_the_dashboard_files_and_health_are_served_to_an_address_at_its_cap(
    start_api: StartApi, raw_requests: list[RawRequest], engines: list[Any]
) -> None:
    """api.max_inflight_per_ip 2 held by two webhook calls whose bodies have not come: the
    page, its scripts, plotly.js and /health are still served to that address (a dashboard
    behind a proxy sharing the address, or on a slow link, loads) and hold no slot, while an
    API route from it is refused 429."""
    api, engine, _ = await _hooks(
        start_api, max_inflight_per_ip=2, body_timeout_s=60, request_timeout_s=120
    )
    engines.append(engine)
    port = api.server.port
    assert port is not None
    ctx = api.server.app_context
    raw_requests.extend([await RawRequest.open(port, sent=5) for _ in range(2)])
    await wait_until(lambda: ctx.inflight.get("127.0.0.1") == 2, message="2 requests in progress")
    async with aiohttp.ClientSession() as http:
        for path in ("/", "/static/app.js", "/static/style.css", "/vendor/plotly.min.js"):
            async with http.get(api.url + path) as r:
                assert r.status == 200, (path, await r.text())
                await r.read()
        async with http.get(api.url + "/health") as r:
            assert r.status == 200, await r.text()
        async with http.get(api.url + "/api/v1/markets/overview") as r:
            assert r.status == 429, await r.text()
            assert (await r.json())["error"]["code"] == "too_many_in_progress"
    assert ctx.inflight == {"127.0.0.1": 2}
    assert ctx.inflight_refused == 1


@pytest.mark.asyncio
async def test_a_trickled_body_is_408_and_its_connection_closed(
    start_api: StartApi, raw_requests: list[RawRequest], engines: list[Any]
) -> None:
    """A body still incomplete api.body_timeout_s after the headers: 408 naming the key, the
    connection closed, the request no longer counted against its address, no signal."""
    api, engine, col = await _hooks(start_api, body_timeout_s=0.3, request_timeout_s=20)
    engines.append(engine)
    port = api.server.port
    assert port is not None
    slow = await RawRequest.open(port, sent=10)
    raw_requests.append(slow)
    status, headers, answer = await asyncio.wait_for(slow.answer(), timeout=10)
    assert status == 408, answer
    assert answer["error"]["code"] == "request_timeout"
    assert "api.body_timeout_s" in answer["error"]["message"]
    assert headers["connection"] == "close"
    assert await asyncio.wait_for(slow.reader.read(), timeout=10) == b""  # closed by the server
    assert api.server.app_context.inflight == {}
    assert col.of(Signal) == []


@pytest.mark.asyncio
async def test_a_sender_hanging_up_mid_body_is_no_daemon_error(
    start_api: StartApi, raw_requests: list[RawRequest], engines: list[Any]
) -> None:
    """Headers and half a body, then the connection closed: the request ends as a 400
    body_incomplete in the access log, not an error-level api.handler_error with a traceback
    (which anyone could cause at will); nothing stays counted against the address."""
    api, engine, col = await _hooks(start_api)
    engines.append(engine)
    port = api.server.port
    assert port is not None
    with capture_logs() as logs:
        half = await RawRequest.open(port, sent=10)
        await wait_until(
            lambda: api.server.app_context.inflight.get("127.0.0.1") == 1, message="in progress"
        )
        await half.close()
        await wait_until(
            lambda: any(e["event"] == "api.request" for e in logs), message="the request ended"
        )
    (line,) = [e for e in logs if e["event"] == "api.request"]
    assert line["status"] == 400
    assert [e for e in logs if e["log_level"] == "error"] == []
    assert api.server.app_context.inflight == {}
    assert col.of(Signal) == []


@pytest.mark.asyncio
async def test_compressed_bodies_are_415_and_never_inflated(
    start_api: StartApi, engines: list[Any]
) -> None:
    """A gzip body (a valid webhook call, or 512 MB of '[' in 512 KB) is 415 naming
    Content-Encoding: the server does not inflate request bodies, so a small upload cannot
    cost the event loop seconds of decompression. No signal."""
    api, engine, col = await _hooks(start_api)
    engines.append(engine)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    bomb = b"".join(packer.compress(b"[" * (1 << 20)) for _ in range(512)) + packer.flush()
    for body in (gzip.compress(BODY), bomb):
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        async with api.http.post(api.url + PINNED, data=body, headers=headers) as r:
            answer = await r.json()
            assert r.status == 415, answer
        assert answer["error"]["code"] == "unsupported_content_encoding"
        assert "Content-Encoding 'gzip'" in answer["error"]["message"]
    assert col.of(Signal) == []
