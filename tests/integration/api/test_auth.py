"""Authentication, scopes, rate limits and failed-auth throttling through the real server."""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import Any

import pytest
from structlog.testing import capture_logs

from cryptomon.api.auth import Authenticator, FailureThrottle, TokenBucket
from cryptomon.api.errors import ApiError
from cryptomon.api.rest import all_routes
from cryptomon.clock import ManualClock
from tests.integration.api.conftest import ADMIN, READ, TRADE, StartApi, api_config, bearer

SCOPED = [r for r in all_routes() if r.scope is not None]
_RANK = {"read": 0, "trade": 1, "admin": 2}
_TOKEN_OF = {"read": READ, "trade": TRADE, "admin": ADMIN}


def _path(path: str) -> str:
    """A concrete URL of a route template: a valid-looking value for every parameter."""
    return re.sub(r"\{[^}]+\}", "1", path.replace("{client_order_id}", "cmM000001"))


def _id(route: Any) -> str:
    return f"{route.method} {route.path}"


@pytest.mark.asyncio
@pytest.mark.parametrize("route", SCOPED, ids=_id)
async def test_every_scoped_endpoint_needs_a_token(start_api: StartApi, route: Any) -> None:
    """Without a token every scoped endpoint answers 401 in the error shape."""
    api = await start_api()
    async with api.http.request(route.method, api.url + _path(route.path), json={}) as r:
        body = await r.json()
        assert r.status == 401
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert body["error"]["code"] == "unauthorized"
    assert route.scope in body["error"]["message"]


@pytest.mark.asyncio
@pytest.mark.parametrize("route", SCOPED, ids=_id)
async def test_scope_rules_of_every_endpoint(start_api: StartApi, route: Any) -> None:
    """Tokens below the endpoint's scope get 403; tokens at or above it pass the auth check."""
    api = await start_api()
    for scope, token in _TOKEN_OF.items():
        async with api.http.request(
            route.method, api.url + _path(route.path), json={}, headers=bearer(token)
        ) as r:
            body = await r.json()
        if _RANK[scope] < _RANK[route.scope]:
            assert r.status == 403, (scope, body)
            assert body["error"]["details"]["required"] == route.scope
        else:
            assert r.status not in (401, 403), (scope, body)


@pytest.mark.asyncio
async def test_public_read_allows_reads_but_never_writes(start_api: StartApi) -> None:
    """With public_read, market data needs no token; trading data and writes still do."""
    from tests.integration.api.fakes import FakeTrading

    api = await start_api(config=api_config(public_read=True), trading=FakeTrading())
    status, body = await api.get("/api/v1/market/stats", token=None)
    assert (status, body["error"]["code"]) == (404, "capability_unavailable")  # past auth
    assert (await api.get("/api/v1/trading/positions", token=None))[0] == 401
    assert (await api.get("/api/v1/status", token=None))[0] == 401
    status, _body = await api.post("/api/v1/trading/kill-switch", {"engage": True}, token=None)
    assert status == 401
    status, _ = await api.post("/api/v1/trading/config", {"max_open_positions": 2}, token=None)
    assert status == 401


@pytest.mark.asyncio
async def test_reads_need_a_token_without_public_read(start_api: StartApi) -> None:
    """public_read is off by default: an anonymous read is 401."""
    api = await start_api()
    status, body = await api.get("/api/v1/status", token=None)
    assert status == 401
    assert "bearer token" in body["error"]["message"]


@pytest.mark.asyncio
async def test_wrong_token_and_wrong_scheme_are_401(start_api: StartApi) -> None:
    """An unknown token or a non-Bearer scheme is rejected and counted."""
    api = await start_api()
    assert (await api.get("/api/v1/status", token="not-a-configured-token"))[0] == 401
    async with api.http.get(
        api.url + "/api/v1/status", headers={"Authorization": f"Basic {READ}"}
    ) as r:
        assert r.status == 401
    assert api.server.app_context.auth.auth_failures == 2


@pytest.mark.asyncio
async def test_token_sha256_authenticates(start_api: StartApi) -> None:
    """A token configured only by its SHA-256 digest is accepted; the secret is never stored."""
    secret = "hashed-only-token-123456"
    cfg = api_config(
        tokens=[
            {
                "name": "ci",
                "token_sha256": hashlib.sha256(secret.encode()).hexdigest(),
                "scopes": ["read"],
            }
        ]
    )
    api = await start_api(config=cfg)
    assert (await api.get("/api/v1/status", token=secret))[0] == 200
    stored = api.server.app_context.auth.tokens[0]
    assert secret.encode() not in stored.digest


@pytest.mark.asyncio
async def test_rate_limit_per_token_429_with_retry_after(start_api: StartApi) -> None:
    """Past its burst a token gets 429 with Retry-After; another token is unaffected."""
    cfg = api_config(
        rate_limit_per_s=0.01,
        rate_limit_burst=3,
        tokens=[
            {"name": "reader", "token": READ, "scopes": ["read"]},
            {"name": "admin", "token": ADMIN, "scopes": ["admin"], "rate_limit_burst": 50},
        ],
    )
    api = await start_api(config=cfg)
    statuses = []
    for _ in range(4):
        async with api.http.get(api.url + "/api/v1/status", headers=bearer(READ)) as r:
            statuses.append(r.status)
            retry_after = r.headers.get("Retry-After")
            body = await r.json()
    assert statuses == [200, 200, 200, 429]
    assert retry_after is not None
    assert int(retry_after) >= 1
    assert body["error"]["code"] == "rate_limited"
    assert (await api.get("/api/v1/status", token=ADMIN))[0] == 200


@pytest.mark.asyncio
async def test_failed_auth_throttling_blocks_guessing(start_api: StartApi) -> None:
    """After auth_fail_limit failures an address gets 429 for further guesses and anonymous
    requests, while a valid token from the same address still passes."""
    api = await start_api(config=api_config(auth_fail_limit=3, auth_fail_window_s=600))
    for _ in range(3):
        assert (await api.get("/api/v1/status", token="guess-guess-guess"))[0] == 401
    for token in ("guess-guess-guess", None):
        async with api.http.get(
            api.url + "/api/v1/status", headers=bearer(token) if token else {}
        ) as r:
            assert r.status == 429
            assert int(r.headers["Retry-After"]) > 0
            assert "failed authentications" in (await r.json())["error"]["message"]
    assert (await api.get("/api/v1/status", token=READ))[0] == 200


def test_token_bucket_refills_with_the_clock() -> None:
    """The bucket allows `burst` at once, then one per 1/rate seconds of the injected clock."""
    clock = ManualClock()
    bucket = TokenBucket(clock)
    assert [bucket.take("k", 2.0, 2) for _ in range(2)] == [0.0, 0.0]
    wait = bucket.take("k", 2.0, 2)
    assert wait == pytest.approx(0.5)
    clock.advance(0.5)
    assert bucket.take("k", 2.0, 2) == 0.0


def test_failure_throttle_window_expires() -> None:
    """Throttling lifts once the failures leave the window."""
    clock = ManualClock()
    throttle = FailureThrottle(clock, limit=2, window_s=10)
    throttle.failed("ip")
    clock.advance(1)
    throttle.failed("ip")
    assert throttle.retry_after("ip") == pytest.approx(9)
    clock.advance(9.5)
    assert throttle.retry_after("ip") == 0.0


def test_authenticator_never_logs_the_token() -> None:
    """A rejected token never appears in an error message or log line."""
    auth = Authenticator(api_config(), clock=ManualClock())
    with capture_logs() as logs, pytest.raises(ApiError) as exc:
        auth.authenticate("Bearer s3cr3t-guess-value", "1.2.3.4", "read")
    assert "s3cr3t" not in exc.value.message
    assert "s3cr3t" not in repr(logs)


@pytest.mark.asyncio
async def test_open_endpoints_are_rate_limited_per_address(start_api: StartApi) -> None:
    """/health, /ready and the OpenAPI document need no token but are limited per client IP."""
    api = await start_api(config=api_config(rate_limit_per_s=0.01, rate_limit_burst=2))
    statuses = [(await api.get("/health", token=None))[0] for _ in range(2)]
    async with api.http.get(api.url + "/api/v1/openapi.json") as r:
        statuses.append(r.status)
        assert r.headers["Retry-After"]
    assert statuses == [200, 200, 429]


async def _raw_status(port: int, head: bytes) -> int:
    """The status of one request written byte for byte (header bytes that are not UTF-8)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
        await writer.drain()
        status_line = await reader.readline()
        return int(status_line.split()[1])
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.asyncio
async def test_a_token_that_is_not_utf8_is_401_and_counts_toward_the_throttle(
    start_api: StartApi,
) -> None:
    """A bearer token with bytes that are not UTF-8 (in the header or the WebSocket's ?token=)
    is a wrong token: 401, counted by the failed-auth throttle (then 429), no 500 and no
    error line with a traceback per request."""
    api = await start_api(config=api_config(auth_fail_limit=3, auth_fail_window_s=600))
    port = api.server.port
    assert port is not None
    bad = b"Authorization: Bearer " + READ.encode() + b"\xff\r\n"
    with capture_logs() as logs:
        statuses = [
            await _raw_status(port, b"GET /api/v1/status HTTP/1.1\r\n" + bad),
            await _raw_status(port, b"GET /ws?token=%FF" + READ.encode() + b" HTTP/1.1\r\n"),
            await _raw_status(port, b"GET /ws HTTP/1.1\r\n" + bad),
            await _raw_status(port, b"GET /api/v1/status HTTP/1.1\r\n" + bad),
        ]
    assert statuses == [401, 401, 401, 429]
    assert not [line for line in logs if line["log_level"] == "error"]
    assert (await api.get("/api/v1/status", token=READ))[0] == 200


def test_ipv6_clients_are_counted_per_64_prefix() -> None:
    """One IPv6 host holds a whole /64: the failed-auth throttle and the anonymous rate limit
    count per /64 (rotating the last 64 bits gave unlimited guesses and requests), another
    /64 and IPv4 are counted on their own, and an IPv4-mapped address as its IPv4."""
    clock = ManualClock()
    auth = Authenticator(
        api_config(auth_fail_limit=3, public_read=True, rate_limit_per_s=0.01, rate_limit_burst=2),
        clock=clock,
    )
    for n in range(3):
        with pytest.raises(ApiError) as exc:
            auth.authenticate("Bearer guess-guess-guess", f"2001:db8::{n + 1:x}", "read")
        assert exc.value.status == 401
    with pytest.raises(ApiError) as exc:
        auth.authenticate("Bearer guess-guess-guess", "2001:db8::ffff:1", "read")
    assert exc.value.status == 429
    with pytest.raises(ApiError) as exc:
        auth.authenticate("Bearer guess-guess-guess", "2001:db8:0:1::1", "read")
    assert exc.value.status == 401  # another /64: not throttled
    assert auth.authenticate(f"Bearer {READ}", "2001:db8::9", "read").name == "reader"
    for n in range(2):
        auth.authenticate(None, f"2001:db8:0:2::{n + 1}", "read", public=True)
    with pytest.raises(ApiError) as exc:
        auth.authenticate(None, "2001:db8:0:2::3", "read", public=True)
    assert exc.value.status == 429
    auth.limit_address("::ffff:10.0.0.1")
    auth.limit_address("10.0.0.1")
    with pytest.raises(ApiError) as exc:
        auth.limit_address("::ffff:10.0.0.1")
    assert exc.value.status == 429
