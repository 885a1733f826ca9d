"""Issue 14 through the real server: a paper-trading engine, the real StoreWriter on SQLite or
PostgreSQL and the ApiServer on an ephemeral port, attacked the way the report describes
(tokens, audit, public_read, Host/Origin, NUL bytes, non-finite numbers)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from cryptomon.api import ApiServer
from cryptomon.clock import LiveClock
from cryptomon.config import DatabaseConfig, StorageConfig, load_settings
from cryptomon.errors import ConfigError
from cryptomon.events import AuditEntry
from cryptomon.store.db import Database
from cryptomon.store.queries import Queries
from cryptomon.store.writer import StoreWriter
from cryptomon.trading.engine import TradingEngine
from tests.integration.api.conftest import ADMIN, READ, TRADE, api_config, bearer
from tests.unit.trading.helpers import EX, book, paper_engine, trading_config
from tests.util import wait_until

BUY = {"exchange": EX, "symbol": "btc/usdt", "side": "buy", "amount": "2"}


@dataclass
class Stack:
    server: ApiServer
    engine: TradingEngine
    queries: Queries
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.server.url

    async def call(
        self, method: str, path: str, token: str | None = ADMIN, **kw: Any
    ) -> tuple[int, Any]:
        headers = {**(bearer(token) if token else {}), **kw.pop("headers", {})}
        async with self.http.request(method, self.url + path, headers=headers, **kw) as r:
            return r.status, await r.json(content_type=None)

    async def raw_post(self, path: str, data: bytes, token: str = ADMIN) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        return await self.call("POST", path, token, data=data, headers=headers)

    async def audit_rows(self, action: str) -> list[dict[str, Any]]:
        return await self.queries.audit_log(action=action)


Start = Callable[..., Awaitable[Stack]]


@pytest_asyncio.fixture
async def start_stack(tmp_path: Any) -> AsyncIterator[Start]:
    """Engine + store + API on a database URL (SQLite file by default); all stopped after.
    Tests that pass ``db_url`` request it before this fixture, so the database outlives it."""
    stops: list[Callable[[], Awaitable[Any]]] = []

    async def start(url: str | None = None, **config: Any) -> Stack:
        engine, _broker, hub, market, clock = paper_engine(
            config=trading_config(max_position_size=1000.0, kill_switch_flatten=False)
        )
        book(hub, clock, bid=100.0, ask=100.2, size=10.0)
        db = Database(DatabaseConfig(url=url or f"sqlite+aiosqlite:///{tmp_path / 'sec.db'}"))
        await db.start()
        writer = StoreWriter(
            hub=hub, db=db, config=StorageConfig(batch_max_age_s=0.05), clock=LiveClock()
        )
        await writer.start()
        await engine.start()
        queries = Queries(db=db)
        server = ApiServer(
            config=api_config(**config),
            hub=hub,
            clock=LiveClock(),
            queries=queries,
            db=db,
            market=market,
            trading=engine,
        )
        await hub.start()
        await server.start()
        http = aiohttp.ClientSession()
        stops.extend([http.close, server.stop, engine.stop, writer.stop, lambda: hub.stop(1.0)])
        stops.append(db.stop)
        return Stack(server, engine, queries, http)

    yield start
    for stop in stops:
        await stop()


@pytest.mark.asyncio
async def test_infinite_numbers_are_422_naming_the_field(start_stack: Start) -> None:
    """1e999 parses as +Infinity: refused with 422 naming the field; limits keep their value
    and GET shows them unchanged (never null)."""
    st = await start_stack()
    before = dict(st.engine.limits())
    status, body = await st.raw_post("/api/v1/trading/config", b'{"max_position_size": 1e999}')
    assert status == 422, body
    assert body["error"]["details"]["fields"][0]["field"] == "body.max_position_size"
    assert st.engine.limits()["max_position_size"] == before["max_position_size"]
    order = b'{"exchange": "paper", "symbol": "BTC-USDT", "side": "buy", "amount": 1e999}'
    status, body = await st.raw_post("/api/v1/trading/orders", order, token=TRADE)
    assert status == 422
    assert "body.amount" in body["error"]["message"]
    status, body = await st.call("GET", "/api/v1/trading/config")
    assert status == 200
    assert body["config"] == before
    assert body["config"]["max_position_size"] == 1000.0


@pytest.mark.asyncio
async def test_audit_row_with_non_finite_numbers_is_stored(db_url: str, start_stack: Start) -> None:
    """An audit payload holding Infinity or 1e999 is stored (as text), never lost."""
    st = await start_stack(db_url)
    payload = '{"limit": Infinity, "huge": 1e999, "nan": NaN, "ok": 1.5}'
    now = LiveClock().time()
    st.server.hub.publish(
        AuditEntry(
            exchange="", symbol="", ts=now, ts_recv=now, actor="t", action="odd", payload=payload
        )
    )

    async def stored() -> bool:
        return bool(await st.audit_rows("odd"))

    await wait_until(stored, timeout=20, message="the audit row stored")
    (row,) = await st.audit_rows("odd")
    assert row["payload"] == {"limit": "Infinity", "huge": "1e999", "nan": "NaN", "ok": 1.5}


@pytest.mark.asyncio
async def test_valid_token_passes_the_failed_auth_throttle(start_stack: Start) -> None:
    """Bad tokens from one address throttle guesses, never a valid token (the kill switch)."""
    st = await start_stack(auth_fail_limit=3, auth_fail_window_s=600)
    for _ in range(3):
        assert (await st.call("GET", "/api/v1/status", token="guess-guess-guess"))[0] == 401
    assert (await st.call("GET", "/api/v1/status", token="guess-guess-guess"))[0] == 429
    status, body = await st.call(
        "POST", "/api/v1/trading/kill-switch", token=TRADE, json={"action": "engage"}
    )
    assert (status, body["state"]) == (200, "halted")


@pytest.mark.asyncio
async def test_public_read_serves_market_data_only(start_stack: Start) -> None:
    """public_read: market data is anonymous; orders, positions, alerts and status need a
    token, with CORS '*' too; anonymous WebSocket clients get no private channel."""
    st = await start_stack(public_read=True, cors_origins=["*"])
    assert (await st.call("GET", "/api/v1/market/stats", token=None))[0] == 200
    for path in ("/api/v1/trading/orders", "/api/v1/trading/positions", "/api/v1/status"):
        headers = {"Origin": "https://evil.example"}
        assert (await st.call("GET", path, token=None, headers=headers))[0] == 401, path
    assert (await st.call("GET", "/api/v1/alerts/history", token=None))[0] == 401
    async with st.http.ws_connect(st.url + "/ws") as ws:
        for channel, reply in (("trades", "subscribed"), ("orders", "error")):
            await ws.send_json({"msg_type": "Subscribe", "data": {"channel": channel}})
            msg = await ws.receive_json(timeout=5)
            assert msg["channel"] == reply, msg
        assert "needs a bearer token" in msg["data"]["message"]


@pytest.mark.asyncio
async def test_host_and_origin_are_checked(start_stack: Start) -> None:
    """A foreign Host (DNS rebinding) is 421; a WebSocket upgrade from a foreign page is 403;
    the server's own names and origin pass."""
    st = await start_stack()
    status, body = await st.call("GET", "/health", headers={"Host": "evil.example"})
    assert (status, body["error"]["code"]) == (421, "host_not_allowed")
    port = st.server.port
    assert (await st.call("GET", "/health", headers={"Host": f"localhost:{port}"}))[0] == 200
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await st.http.ws_connect(
            st.url + "/ws", headers=bearer(READ), origin="https://evil.example"
        )
    assert exc.value.status == 403
    async with st.http.ws_connect(
        st.url + "/ws", headers=bearer(READ), origin=f"http://127.0.0.1:{port}"
    ) as ws:
        await ws.send_json({"msg_type": "Ping"})
        assert (await ws.receive_json(timeout=5))["channel"] == "pong"


def test_public_read_on_a_network_address_needs_confirmation() -> None:
    """public_read on a non-loopback bind needs api.public_read_confirm; a name that only
    looks like 127.x is resolved, not trusted."""
    tokens = [{"name": "r", "token": READ}]
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"api": {"host": "0.0.0.0", "tokens": tokens, "public_read": True}})
    assert "public_read_confirm" in str(exc.value)
    ok = {"host": "0.0.0.0", "tokens": tokens, "public_read": True, "public_read_confirm": True}
    assert load_settings(data={"api": ok}).api.public_read_confirm
    with pytest.raises(ConfigError) as exc:
        load_settings(data={"api": {"host": "127.evil.example"}})
    assert "not a loopback address" in str(exc.value)


@pytest.mark.asyncio
async def test_release_needs_admin_and_refusals_are_audited(
    db_url: str, start_stack: Start
) -> None:
    """A trade token cannot release an admin's kill switch (403, audited with who, from where
    and the request id); a token that matches none is audited too; an admin can release."""
    st = await start_stack(db_url)
    engage = {"action": "engage"}
    assert (await st.call("POST", "/api/v1/trading/kill-switch", json=engage))[0] == 200
    headers = {"X-Request-ID": "attempt-1"}
    status, _ = await st.call(
        "POST", "/api/v1/trading/kill-switch", TRADE, json={"action": "release"}, headers=headers
    )
    assert status == 403
    assert str(st.engine.risk_state) == "halted"
    headers = {"X-Request-ID": "attempt-2"}
    status, _ = await st.call(
        "POST", "/api/v1/trading/kill-switch", "guess-guess-guess", json=engage, headers=headers
    )
    assert status == 401

    async def denied() -> bool:
        return len(await st.audit_rows("denied")) == 2

    await wait_until(denied, timeout=20, message="the denied attempts audited")
    rows = {row["request_id"]: row for row in await st.audit_rows("denied")}
    assert (rows["attempt-1"]["actor"], rows["attempt-1"]["client"]) == ("trader", "127.0.0.1")
    assert rows["attempt-1"]["payload"]["status"] == 403
    assert (rows["attempt-2"]["actor"], rows["attempt-2"]["payload"]["status"]) == (
        "invalid-token",
        401,
    )
    status, body = await st.call("POST", "/api/v1/trading/kill-switch", json={"action": "release"})
    assert (status, body["state"]) == (200, "active")


@pytest.mark.asyncio
async def test_audit_names_client_and_request_and_refuses_key_reuse(
    db_url: str, start_stack: Start
) -> None:
    """Audit rows carry the client address and request id; a reused Idempotency-Key with a
    different body is 422 and places nothing."""
    st = await start_stack(db_url)
    headers = {"Idempotency-Key": "k-1", "X-Request-ID": "order-1"}
    status, order = await st.call(
        "POST", "/api/v1/trading/orders", TRADE, json=BUY, headers=headers
    )
    assert status == 200, order
    other = {**BUY, "amount": "3"}
    headers["X-Request-ID"] = "order-2"
    status, body = await st.call(
        "POST", "/api/v1/trading/orders", TRADE, json=other, headers=headers
    )
    assert (status, body["error"]["code"]) == (422, "idempotency_conflict")
    assert len(st.engine.orders()) == 1

    async def audited() -> bool:
        return bool(await st.audit_rows("place_order"))

    await wait_until(audited, timeout=20, message="the order audited")
    (row,) = await st.audit_rows("place_order")
    assert (row["actor"], row["client"], row["request_id"]) == ("trader", "127.0.0.1", "order-1")
    assert row["payload"]["amount"] == "2"


@pytest.mark.asyncio
async def test_nul_bytes_are_bad_input(db_url: str, start_stack: Start) -> None:
    """A NUL in a query parameter or a cursor is 422 (not a 503 from the store)."""
    st = await start_stack(db_url)
    for path in ("/api/v1/anomalies?cursor=ab%00cd", "/api/v1/alerts/history?channel=o%00ps"):
        status, body = await st.call("GET", path)
        assert status == 422, (path, body)
        assert "NUL" in body["error"]["message"] or "NUL" in json.dumps(body["error"]["details"])


@pytest.mark.asyncio
async def test_anonymous_refusals_cannot_fill_the_audit_log(start_stack: Start) -> None:
    """A ?token= on a REST route (where it is no credential) or an empty Authorization header
    is an anonymous refusal: 401, only logged, never an audit row (nothing counts or bounds
    them); a token that matches none is audited, bounded by the failed-auth throttle."""
    st = await start_stack(auth_fail_limit=3, auth_fail_window_s=600)
    for _ in range(5):
        assert (await st.call("GET", "/api/v1/status?token=guess-guess-guess", None))[0] == 401
        empty = {"Authorization": ""}
        assert (await st.call("GET", "/api/v1/status", None, headers=empty))[0] == 401
    statuses = [(await st.call("GET", "/api/v1/status", "guess-guess-guess"))[0] for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    marker = {"X-Request-ID": "marker"}
    status, _ = await st.call("POST", "/api/v1/trading/kill-switch", READ, json={}, headers=marker)
    assert status == 403

    async def marked() -> bool:
        return any(r["request_id"] == "marker" for r in await st.audit_rows("denied"))

    await wait_until(marked, timeout=20, message="the marker audited")
    rows = await st.audit_rows("denied")
    assert sorted(r["actor"] for r in rows) == ["invalid-token"] * 3 + ["reader"]


@pytest.mark.asyncio
async def test_a_foreign_host_is_not_told_the_allowed_names(start_stack: Start) -> None:
    """The 421 for a Host that is not allowed (a scan by IP address) names neither the
    configured host names nor the bind address: they would tie the server to its names."""
    st = await start_stack(allowed_hosts=["dash.corp.example", "127.0.0.1"])
    async with st.http.get(st.url + "/health", headers={"Host": "203.0.113.9"}) as r:
        assert r.status == 421
        text = await r.text()
    assert "host_not_allowed" in text
    assert "dash.corp.example" not in text
    assert "127.0.0.1" not in text
    assert (await st.call("GET", "/health", headers={"Host": "dash.corp.example"}))[0] == 200
