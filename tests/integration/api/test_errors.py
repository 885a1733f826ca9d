"""Every error status in the one JSON shape; request ids, access log, CORS."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.integration.api.conftest import READ, TRADE, StartApi, api_config, bearer
from tests.integration.api.fakes import FakeTrading


def assert_error(body: dict, code: str) -> dict:
    assert set(body) == {"error"}
    err = body["error"]
    assert {"code", "message", "details"} <= set(err)
    assert err["code"] == code
    assert err["message"]
    return err


@pytest.mark.asyncio
async def test_400_body_not_json(start_api: StartApi) -> None:
    """A body that is not JSON is 400 saying so."""
    api = await start_api(trading=FakeTrading())
    async with api.http.post(
        api.url + "/api/v1/trading/orders",
        data=b"{nope",
        headers={**bearer(TRADE), "Content-Type": "application/json"},
    ) as r:
        assert r.status == 400
        err = assert_error(await r.json(), "bad_request")
    assert "not valid JSON" in err["message"]


@pytest.mark.asyncio
async def test_400_body_not_an_object(start_api: StartApi) -> None:
    """A JSON array body is 400: an object is expected."""
    api = await start_api(trading=FakeTrading())
    status, body = await api.post("/api/v1/trading/orders", [1, 2], token=TRADE)
    assert status == 400
    assert "JSON object" in assert_error(body, "bad_request")["message"]


@pytest.mark.asyncio
async def test_404_unknown_path_and_missing_capability(start_api: StartApi) -> None:
    """Unknown paths and endpoints of absent subsystems are 404 with distinct codes."""
    api = await start_api()
    status, body = await api.get("/api/v1/nothing-here")
    assert status == 404
    assert_error(body, "not_found")
    status, body = await api.get("/api/v1/trading/positions")
    assert status == 404
    err = assert_error(body, "capability_unavailable")
    assert err["details"] == {"capability": "trading"}


@pytest.mark.asyncio
async def test_405_wrong_method(start_api: StartApi) -> None:
    """A wrong method is 405 with Allow, in the error shape."""
    api = await start_api()
    async with api.http.put(api.url + "/health") as r:
        assert r.status == 405
        assert "GET" in r.headers["Allow"]
        assert_error(await r.json(), "method_not_allowed")


@pytest.mark.asyncio
async def test_409_risk_rejection_and_closed_order(start_api: StartApi) -> None:
    """A risk rejection and cancelling a closed order are 409 conflicts."""
    trading = FakeTrading()
    api = await start_api(trading=trading)
    status, body = await api.post(
        "/api/v1/trading/orders",
        {"exchange": "binance", "symbol": "BTC/USDT", "side": "buy", "amount": "5"},
        token=TRADE,
    )
    assert status == 409
    err = assert_error(body, "risk_rejected")
    assert err["details"]["check"] == "max_position_size"
    status, order = await api.post(
        "/api/v1/trading/orders",
        {"exchange": "binance", "symbol": "BTC-USDT", "side": "buy", "amount": "0.1"},
        token=TRADE,
    )
    assert status == 200
    url = f"{api.url}/api/v1/trading/orders/{order['client_order_id']}"
    async with api.http.delete(url, headers=bearer(TRADE)) as r:
        assert r.status == 200
    async with api.http.delete(url, headers=bearer(TRADE)) as r:
        assert r.status == 409
        assert_error(await r.json(), "conflict")


@pytest.mark.asyncio
async def test_413_body_too_large(start_api: StartApi) -> None:
    """A body above api.max_body_bytes is 413 naming the limit."""
    api = await start_api(config=api_config(max_body_bytes=2048), trading=FakeTrading())
    big = {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "side": "buy",
        "amount": "1",
        "pad": "x" * 5000,
    }
    status, body = await api.post("/api/v1/trading/orders", big, token=TRADE)
    assert status == 413
    err = assert_error(body, "payload_too_large")
    assert err["details"]["max_body_bytes"] == 2048


@pytest.mark.asyncio
async def test_422_query_validation_names_the_field(start_api: StartApi, queries: Any) -> None:
    """Bad query values are 422 and name each field."""
    api = await start_api(queries=queries)
    status, body = await api.get("/api/v1/anomalies?limit=0&min_severity=extreme")
    assert status == 422
    err = assert_error(body, "validation_error")
    fields = {f["field"] for f in err["details"]["fields"]}
    assert fields == {"query.limit", "query.min_severity"}
    status, body = await api.get("/api/v1/anomalies?limt=5")
    assert status == 422
    assert "query.limt" in assert_error(body, "validation_error")["message"]


@pytest.mark.asyncio
async def test_422_body_validation_names_the_field(start_api: StartApi) -> None:
    """Bad body values are 422 naming body.<field>; a limit order without price too."""
    api = await start_api(trading=FakeTrading())
    status, body = await api.post(
        "/api/v1/trading/orders",
        {"exchange": "binance", "symbol": "BTC-USDT", "side": "hold", "amount": "-1"},
        token=TRADE,
    )
    assert status == 422
    fields = {f["field"] for f in assert_error(body, "validation_error")["details"]["fields"]}
    assert fields == {"body.side", "body.amount"}
    status, body = await api.post(
        "/api/v1/trading/orders",
        {
            "exchange": "binance",
            "symbol": "BTC-USDT",
            "side": "buy",
            "amount": "1",
            "type": "limit",
        },
        token=TRADE,
    )
    assert status == 422
    assert "required for a limit order" in str(body)


@pytest.mark.asyncio
async def test_422_a_rule_across_fields_names_the_field(start_api: StartApi, queries: Any) -> None:
    """A rule between fields (a limit order's price, until before since, a NUL in the cursor)
    named only "body" or "query"; it names the field the client has to change."""
    api = await start_api(trading=FakeTrading(), queries=queries)
    order = {"exchange": "binance", "symbol": "BTC-USDT", "side": "buy", "amount": "1"}
    cases = [
        ({**order, "type": "limit"}, "body.price", "required for a limit order"),
        ({**order, "price": "100"}, "body.price", "must be omitted for a market order"),
    ]
    for payload, name, text in cases:
        status, body = await api.post("/api/v1/trading/orders", payload, token=TRADE)
        assert status == 422, body
        (field,) = assert_error(body, "validation_error")["details"]["fields"]
        assert (field["field"], field["message"]) == (name, text)
        assert name in body["error"]["message"]
    for path, name in (
        ("/api/v1/anomalies?since=200&until=100", "query.until"),
        ("/api/v1/anomalies?cursor=a%00b", "query.cursor"),
    ):
        status, body = await api.get(path, token=READ)
        assert status == 422, body
        (field,) = assert_error(body, "validation_error")["details"]["fields"]
        assert field["field"] == name, field


@pytest.mark.asyncio
async def test_422_a_query_parameter_given_twice(start_api: StartApi, queries: Any) -> None:
    """?limit=1&limit=2 answered "Input should be a valid integer" (value null) for an
    integer given twice; it names the parameter and says what is wrong with it."""
    api = await start_api(queries=queries)
    for path, name in (
        ("/api/v1/anomalies?limit=1&limit=2", "query.limit"),
        ("/api/v1/anomalies?symbol=BTC-USDT&limit=5&symbol=ETH-USDT", "query.symbol"),
    ):
        status, body = await api.get(path, token=READ)
        assert status == 422, body
        (field,) = assert_error(body, "validation_error")["details"]["fields"]
        assert field == {
            "field": name,
            "message": "given more than once; send each parameter once",
            "value": None,
        }


@pytest.mark.asyncio
async def test_422_a_field_given_twice(start_api: StartApi) -> None:
    """A body naming a field twice took the last value ({"side": "buy", ..., "side": "sell"}
    sold); now it is 422 naming the field, and nothing is done."""
    trading = FakeTrading()
    api = await start_api(trading=trading)
    raw = (
        b'{"exchange": "binance", "symbol": "BTC-USDT", "side": "buy", "amount": "0.1", '
        b'"side": "sell"}'
    )
    async with api.http.post(
        api.url + "/api/v1/trading/orders",
        data=raw,
        headers={**bearer(TRADE), "Content-Type": "application/json"},
    ) as r:
        assert r.status == 422
        err = assert_error(await r.json(), "validation_error")
    assert err["details"]["fields"][0]["field"] == "body.side"
    assert "given more than once" in err["message"]
    assert trading.audits == []
    # the same body with the field once is placed
    async with api.http.post(
        api.url + "/api/v1/trading/orders",
        data=raw.replace(b', "side": "sell"', b""),
        headers={**bearer(TRADE), "Content-Type": "application/json"},
    ) as r:
        assert r.status == 200, await r.text()


@pytest.mark.asyncio
async def test_500_is_an_error_shape_without_traceback(start_api: StartApi) -> None:
    """A handler crash is a 500 in the error shape; the trace goes to the log only."""

    class Broken(FakeTrading):
        def positions(self) -> list:
            raise RuntimeError("boom inside")

    api = await start_api(trading=Broken())
    with capture_logs() as logs:
        status, body = await api.get("/api/v1/trading/positions")
    assert status == 500
    err = assert_error(body, "internal_error")
    assert "boom" not in err["message"]
    assert any(e["event"] == "api.handler_error" for e in logs)


@pytest.mark.asyncio
async def test_request_id_and_access_log(start_api: StartApi) -> None:
    """Each request gets an X-Request-ID (a sane given one is kept) and one access log line."""
    api = await start_api()
    with capture_logs() as logs:
        async with api.http.get(api.url + "/health", headers={"X-Request-ID": "abc-123"}) as r:
            assert r.headers["X-Request-ID"] == "abc-123"
        async with api.http.get(api.url + "/health", headers={"X-Request-ID": "bad id\u00e9"}) as r:
            generated = r.headers["X-Request-ID"]
        async with api.http.get(api.url + "/api/v1/status", headers=bearer(READ)) as r:
            assert r.status == 200
    assert generated != "bad id\u00e9"
    assert len(generated) == 16
    lines = [e for e in logs if e["event"] == "api.request"]
    assert [e["request_id"] for e in lines[:2]] == ["abc-123", generated]
    assert lines[2]["principal"] == "reader"
    assert lines[2]["status"] == 200
    assert lines[2]["path"] == "/api/v1/status"
    assert "duration_ms" in lines[2]


@pytest.mark.asyncio
async def test_cors_allowlist(start_api: StartApi) -> None:
    """Allowed origins are echoed (never '*' with credentials); others get no CORS headers."""
    cfg = api_config(cors_origins=["https://dash.example.com"], cors_allow_credentials=True)
    api = await start_api(config=cfg)
    ok = {"Origin": "https://dash.example.com", **bearer(READ)}
    async with api.http.get(api.url + "/api/v1/status", headers=ok) as r:
        assert r.headers["Access-Control-Allow-Origin"] == "https://dash.example.com"
        assert r.headers["Access-Control-Allow-Credentials"] == "true"
    async with api.http.get(
        api.url + "/api/v1/status", headers={"Origin": "https://evil.example", **bearer(READ)}
    ) as r:
        assert "Access-Control-Allow-Origin" not in r.headers
    pre = {"Origin": "https://dash.example.com", "Access-Control-Request-Method": "POST"}
    async with api.http.options(api.url + "/api/v1/trading/orders", headers=pre) as r:
        assert r.status == 204
        assert "POST" in r.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
    bad = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    async with api.http.options(api.url + "/api/v1/trading/orders", headers=bad) as r:
        assert r.status == 403


def test_cors_wildcard_with_credentials_is_a_config_error() -> None:
    """cors_origins ['*'] together with credentials is rejected at config load."""
    from cryptomon.config import load_settings
    from cryptomon.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        load_settings(data={"api": {"cors_origins": ["*"], "cors_allow_credentials": True}})
    assert "cors_allow_credentials" in str(exc.value)


@pytest.mark.asyncio
async def test_503_when_the_store_is_unusable(start_api: StartApi, sqlite_url: str) -> None:
    """A store whose queries fail answers 503 store_unavailable with Retry-After, not 500."""
    from cryptomon.config import DatabaseConfig
    from cryptomon.store.db import Database
    from cryptomon.store.queries import Queries

    no_tables = DatabaseConfig(url=sqlite_url, auto_migrate=False)
    db = Database(no_tables, check_schema=False)
    await db.start()
    try:
        api = await start_api(queries=Queries(db=db))
        async with api.http.get(api.url + "/api/v1/anomalies", headers=bearer(READ)) as r:
            assert r.status == 503
            assert r.headers["Retry-After"] == "5"
            err = assert_error(await r.json(), "store_unavailable")
    finally:
        await db.stop()
    assert "try again" in err["message"]


@pytest.mark.asyncio
async def test_503_when_a_request_takes_too_long(start_api: StartApi) -> None:
    """A handler that does not answer within request_timeout_s gives 503 timeout."""
    import asyncio

    class Stuck(FakeTrading):
        async def place_manual_order(self, **kw: Any) -> dict:  # type: ignore[override]
            await asyncio.Event().wait()
            return {}

    api = await start_api(
        config=api_config(request_timeout_s=0.2, body_timeout_s=0.1), trading=Stuck()
    )
    status, body = await api.post(
        "/api/v1/trading/orders",
        {"exchange": "binance", "symbol": "BTC-USDT", "side": "buy", "amount": "0.1"},
        token=TRADE,
    )
    assert status == 503
    assert "request_timeout_s" in assert_error(body, "timeout")["message"]


@pytest.mark.asyncio
async def test_service_log_lines_carry_the_request_id(start_api: StartApi) -> None:
    """Log lines emitted by a service while handling a request carry its request id."""
    import structlog

    class Chatty(FakeTrading):
        def positions(self) -> list:
            structlog.get_logger().info("positions.read")
            return []

    api = await start_api(trading=Chatty())
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        async with api.http.get(
            api.url + "/api/v1/trading/positions",
            headers={**bearer(READ), "X-Request-ID": "trace-42"},
        ) as r:
            assert r.status == 200
    (line,) = [e for e in logs if e["event"] == "positions.read"]
    assert line["request_id"] == "trace-42"


@pytest.mark.asyncio
async def test_unknown_methods_do_not_grow_metric_labels(start_api: StartApi) -> None:
    """Arbitrary request methods are counted under one OTHER label (bounded cardinality)."""
    api = await start_api()
    for method in ("PROPFIND", "MKCOL", "LOCK"):
        async with api.http.request(method, api.url + "/health") as r:
            assert r.status == 405
    methods = {m for m, _ in api.server.app_context.requests}
    assert methods == {"OTHER"}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("symbol=zzz/???", "query.symbol", "expected a market symbol such as BTC-USDT or BTC/USDT"),
        (
            "exchange=bin%20ance",
            "query.exchange",
            "expected letters, digits and _ . : - only, at most 64 (such as binance)",
        ),
    ],
)
async def test_a_malformed_name_is_explained_without_a_regex(
    start_api: StartApi, queries: Any, query: str, field: str, message: str
) -> None:
    """A malformed symbol filter (typed in the dashboard's Alerts view) was answered "String
    should match pattern '^[A-Za-z0-9]+([-/][A-Za-z0-9]+)+$'": the form a value must take is
    now said in words."""
    api = await start_api(queries=queries)
    status, body = await api.get(f"/api/v1/anomalies?{query}")
    assert status == 422
    [got] = assert_error(body, "validation_error")["details"]["fields"]
    assert got["field"] == field
    assert got["message"] == message
