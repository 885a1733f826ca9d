"""Issue 14 items 5, 7 and 10 through the real server: deep JSON, idle and half-sent
connections, the connection cap, strict request bodies, response headers, the OpenAPI
document and the WebSocket message rate."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket

import aiohttp
import pytest
from structlog.testing import capture_logs

from tests.integration.api.conftest import ADMIN, READ, bearer
from tests.integration.test_api_security import Start, start_stack
from tests.util import wait_until

__all__ = ["start_stack"]  # the fixture, shared with the security tests
DEEP = b"[" * 20_000 + b"]" * 20_000


@pytest.mark.asyncio
async def test_deep_json_is_400_on_rest_and_closes_the_websocket(start_stack: Start) -> None:
    """20,000 levels of nesting: REST answers 400 and the WebSocket closes with 1008 (policy),
    with no handler error in the log."""
    st = await start_stack()
    with capture_logs() as logs:
        status, body = await st.raw_post("/api/v1/trading/kill-switch", DEEP)
        assert status == 400, body
        assert "not valid JSON" in body["error"]["message"]
        async with st.http.ws_connect(st.url + "/ws", headers=bearer(READ)) as ws:
            await ws.send_str(DEEP.decode())
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert not [e for e in logs if e["event"] == "api.handler_error"]
    assert str(st.engine.risk_state) == "active"


@pytest.mark.asyncio
async def test_idle_and_half_sent_connections_are_closed(start_stack: Start) -> None:
    """A connection that sends nothing, or only part of its headers, is closed after
    api.idle_timeout_s."""
    st = await start_stack(idle_timeout_s=0.3)
    port = st.server.port
    silent_reader, silent = await asyncio.open_connection("127.0.0.1", port)
    slow_reader, slow = await asyncio.open_connection("127.0.0.1", port)
    slow.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    await slow.drain()
    assert await asyncio.wait_for(silent_reader.read(), 10) == b""
    assert await asyncio.wait_for(slow_reader.read(), 10) == b""
    silent.close()
    slow.close()


async def _busy(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection with a request in progress: a body announced, a part of it sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /api/v1/trading/kill-switch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Authorization: Bearer " + ADMIN.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{"
    )
    await writer.drain()
    return reader, writer


@pytest.mark.asyncio
async def test_connections_beyond_the_cap_are_refused(start_stack: Start) -> None:
    """With api.max_connections open and each serving a request, the next connection is
    closed at once; a freed slot serves again."""
    st = await start_stack(max_connections=2, request_timeout_s=60)
    conns = st.server.connections
    assert conns is not None
    held = [await _busy(st.server.port) for _ in range(2)]
    await wait_until(
        lambda: sum(h._request_in_progress for h in conns.connections) == 2, message="2 busy"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", st.server.port)
    with contextlib.suppress(ConnectionResetError):  # aborted (reset) or closed: refused
        assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    assert conns.refused == 1
    for _, w in held:
        w.close()
    await wait_until(lambda: not conns.connections, message="slots freed")
    assert (await st.call("GET", "/health"))[0] == 200
    assert str(st.engine.risk_state) == "active"


@pytest.mark.asyncio
async def test_idle_connections_make_room_at_the_cap(start_stack: Start) -> None:
    """Connections that only sit there (opened, nothing or half a request sent) cannot keep
    everyone out: at api.max_connections the oldest idle one is closed for the newcomer,
    which is served; a connection serving a request is never the one closed."""
    st = await start_stack(max_connections=3, request_timeout_s=60)
    conns = st.server.connections
    assert conns is not None
    busy_reader, busy = await _busy(st.server.port)
    oldest_reader, oldest = await asyncio.open_connection("127.0.0.1", st.server.port)
    _, slow = await asyncio.open_connection("127.0.0.1", st.server.port)
    slow.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never finished
    await wait_until(lambda: len(conns.connections) == 3, message="3 held")
    assert (await st.call("GET", "/health"))[0] == 200  # a new connection: served
    assert conns.evicted == 1
    assert conns.refused == 0
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(oldest_reader.read(), 10) == b""  # the oldest idle
    busy.write(b"}" + b" " * 48)  # the busy connection finishes its request
    await busy.drain()
    status_line = await asyncio.wait_for(busy_reader.readline(), 10)
    assert status_line.split()[1] == b"200"
    for w in (busy, oldest, slow):
        w.close()


@pytest.mark.asyncio
async def test_bodies_are_strict_json_objects(start_stack: Start) -> None:
    """An empty body does not engage the kill switch (400); 0 is not a boolean (422); a body
    that is not application/json is 415."""
    st = await start_stack()
    status, body = await st.raw_post("/api/v1/trading/kill-switch", b"")
    assert status == 400, body
    assert str(st.engine.risk_state) == "active"
    status, body = await st.raw_post("/api/v1/trading/config", b'{"kill_switch_flatten": 0}')
    assert status == 422
    assert body["error"]["details"]["fields"][0]["field"] == "body.kill_switch_flatten"
    status, body = await st.call(
        "POST",
        "/api/v1/trading/kill-switch",
        data=b'{"action": "engage"}',
        headers={"Content-Type": "text/plain"},
    )
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")
    assert str(st.engine.risk_state) == "active"


@pytest.mark.asyncio
async def test_answers_are_not_cached_and_name_no_version(start_stack: Start) -> None:
    """API answers carry Cache-Control: no-store and a Server header without versions; no
    HSTS over plain HTTP (it is sent over TLS only: test_tls)."""
    st = await start_stack()
    for path in ("/health", "/api/v1/trading/config", "/api/v1/nope"):
        async with st.http.get(st.url + path, headers=bearer(ADMIN)) as r:
            assert r.headers["Cache-Control"] == "no-store"
            assert r.headers["Server"] == "cryptomon"
            assert "Strict-Transport-Security" not in r.headers


@pytest.mark.asyncio
async def test_openapi_documents_symbols_and_plain_routes(start_stack: Start) -> None:
    """The document has the symbol pattern, /metrics, /ws and /."""
    st = await start_stack()
    status, doc = await st.call("GET", "/api/v1/openapi.json")
    assert status == 200
    assert {"/metrics", "/ws", "/"} <= set(doc["paths"])
    params = doc["paths"]["/api/v1/market/ticker"]["get"]["parameters"]
    (symbol,) = [p for p in params if p["name"] == "symbol"]
    assert symbol["schema"]["pattern"]
    assert "415" in doc["paths"]["/api/v1/trading/kill-switch"]["post"]["responses"]


@pytest.mark.asyncio
async def test_websocket_message_rate_is_capped(start_stack: Start) -> None:
    """A client sending faster than api.rate_limit_per_s is closed with 1008; /health stays
    answered."""
    st = await start_stack(rate_limit_per_s=20, rate_limit_burst=20)
    async with st.http.ws_connect(st.url + "/ws", headers=bearer(READ)) as ws:
        sub = {"msg_type": "Subscribe", "data": {"channel": "trades"}}
        for _ in range(200):
            if ws.closed:
                break
            await ws.send_json(sub)
        while True:
            msg = await ws.receive(timeout=5)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                break
        assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert (await st.call("GET", "/health"))[0] == 200


@pytest.mark.asyncio
async def test_malformed_requests_log_no_credential_and_name_no_version(
    start_stack: Start, caplog: pytest.LogCaptureFixture
) -> None:
    """A request aiohttp cannot parse (a token with a control character, a raw byte in the
    URL) is 400 with `Server: cryptomon` (no version), and its log line is one warning
    without the request's bytes: the bearer token or ?token= never reaches the log."""
    st = await start_stack()
    port = st.server.port
    assert port is not None
    heads = [
        b"GET /api/v1/status HTTP/1.1\r\nAuthorization: Bearer " + READ.encode() + b"\x01\r\n",
        b"GET /ws?token=" + READ.encode() + b"&x=\xff HTTP/1.1\r\n",
    ]
    answers = []
    with capture_logs() as logs, caplog.at_level("DEBUG"):
        for head in heads:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head + b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answers.append(await asyncio.wait_for(reader.read(), 10))
            writer.close()
    for answer in answers:
        head, _, _ = answer.partition(b"\r\n\r\n")
        assert head.split(b"\r\n")[0].split()[1] == b"400"
        assert b"\r\nServer: cryptomon\r\n" in head + b"\r\n", head
        assert b"aiohttp" not in head
        assert b"Python" not in head
    warned = [e for e in logs if e["event"] == "api.bad_request"]
    assert len(warned) == 2
    assert all(e["log_level"] == "warning" and e["status"] == 400 for e in warned)
    assert "header value" in warned[0]["error"]
    assert "url" in warned[1]["error"]
    assert all(READ not in repr(e) for e in logs)
    assert all(READ not in r.getMessage() and r.exc_info is None for r in caplog.records)


@pytest.mark.asyncio
async def test_an_unparsable_request_gets_the_json_error_shape_without_its_bytes(
    start_stack: Start, caplog: pytest.LogCaptureFixture
) -> None:
    """A request line over aiohttp's 8190 bytes (a long query with ?token= first) was
    answered in text/plain with the request line quoted back ("Got more than 8190 bytes when
    reading: bytearray(b'/ws?token=...')"), the token in the log warning too. The answer is
    now the API's JSON error shape, and neither it nor the log holds the request's bytes.
    The too-long request line is 414 URI Too Long (it was 400), whether it came in one
    write or in pieces; a too-long header (its value starting like a URL) stays 400."""
    st = await start_stack()
    port = st.server.port
    assert port is not None
    token = READ.encode()
    heads = [
        (b"GET /api/v1/anomalies?token=" + token + b"&x=" + b"a" * 9000 + b" HTTP/1.1\r\n", 414),
        (b"GET /api/v1/status HTTP/1.1\r\nAuthorization: Bearer " + token + b"\x01\r\n", 400),
        (b"GET /api/v1/status HTTP/1.1\r\nX-Path: /?token=" + token + b"a" * 9000 + b"\r\n", 400),
    ]
    with capture_logs() as logs, caplog.at_level("DEBUG"):
        for (head, status), pieces in itertools.product(heads, (1, 10)):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            request = head + b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n"
            size = -(-len(request) // pieces)
            with contextlib.suppress(ConnectionError):  # answered before the last piece
                for at in range(0, len(request), size):
                    writer.write(request[at : at + size])
                    await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            top, _, body = answer.partition(b"\r\n\r\n")
            assert top.split(b"\r\n")[0].split()[1] == str(status).encode(), top
            assert b"Content-Type: application/json" in top, top
            assert b"\r\nServer: cryptomon\r\n" in top + b"\r\n", top
            error = json.loads(body)["error"]
            if status == 414:
                assert error["code"] == "uri_too_long"
                assert error["message"].startswith("the request line is over 8190 bytes"), error
            else:
                assert error["code"] == "bad_request"
                assert error["message"].startswith("the request could not be parsed"), error
            assert token not in body
            assert b"aaaa" not in body
    warned = [e for e in logs if e["event"] == "api.bad_request"]
    assert [e["status"] for e in warned] == [414, 414, 400, 400, 400, 400]
    assert all(READ not in repr(e) for e in logs)
    assert all(READ not in r.getMessage() for r in caplog.records)


@pytest.mark.asyncio
async def test_a_client_that_does_not_read_its_answer_is_disconnected(start_stack: Start) -> None:
    """A client that asks for a large answer (plotly.js, no token needed) and never reads it
    is disconnected once its answer has not moved for api.idle_timeout_s (aborted: what was
    still buffered is dropped); such clients held their connection slot and megabytes of
    buffered answer for as long as they liked. A client that reads gets the whole answer."""
    st = await start_stack(idle_timeout_s=0.5)
    conns = st.server.connections
    assert conns is not None
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_connect(sock, ("127.0.0.1", st.server.port))
        ask = b"GET /vendor/plotly.min.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        await loop.sock_sendall(sock, ask)
        await wait_until(lambda: getattr(conns, "stalled", 0) == 1, message="the stall noticed")
        received = 0
        with contextlib.suppress(ConnectionResetError):
            while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 10):
                received += len(chunk)
    finally:
        sock.close()
    async with st.http.get(st.url + "/vendor/plotly.min.js") as r:
        assert r.status == 200
        full = len(await r.read())
    assert full > 1_000_000
    assert received < full  # cut off, not delivered late
