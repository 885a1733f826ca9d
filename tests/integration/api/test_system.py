"""/health, /ready, /api/v1/status, /api/v1/feeds, the OpenAPI document and /metrics."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from cryptomon.api.rest import all_routes
from cryptomon.clock import LiveClock
from cryptomon.config import DatabaseConfig, StorageConfig
from cryptomon.events import Trade
from cryptomon.hub import Hub
from cryptomon.store.db import Database
from cryptomon.store.writer import StoreWriter
from tests.integration.api.conftest import READ, StartApi, api_config, bearer
from tests.integration.api.fakes import FakeTrading, feed_manager
from tests.stubs import anomaly
from tests.util import wait_until


@pytest.mark.asyncio
async def test_health_is_open(start_api: StartApi) -> None:
    """/health answers without a token."""
    api = await start_api()
    assert await api.get("/health", token=None) == (200, {"status": "ok"})


@pytest.mark.asyncio
async def test_ready_checks_database_feeds_trading(start_api: StartApi, database: Any) -> None:
    """/ready is 200 when the database answers and feeds are live, 503 naming what is not."""
    hub = Hub()
    feeds, source = feed_manager(hub, LiveClock())
    api = await start_api(hub=hub, db=database, feeds=feeds, trading=FakeTrading())
    status, body = await api.get("/ready", token=None)
    assert status == 200
    assert body["ready"] is True
    assert set(body["checks"]) == {"database", "feeds", "trading"}
    source.disconnected()
    status, body = await api.get("/ready", token=None)
    assert status == 503
    assert body["checks"]["feeds"] == {"ok": False, "detail": "not live: disconnected"}


@pytest.mark.asyncio
async def test_ready_reports_unreachable_database(start_api: StartApi) -> None:
    """A database that is not running makes /ready 503 with the database check failing."""
    db = Database(DatabaseConfig(url="sqlite+aiosqlite:///never-started.db"))
    api = await start_api(db=db)
    status, body = await api.get("/ready", token=None)
    assert status == 503
    assert body["checks"]["database"]["ok"] is False


@pytest.mark.asyncio
async def test_ready_and_metrics_report_writes_failing_while_reads_work(
    start_api: StartApi, sqlite_url: str
) -> None:
    """Another process holding SQLite's write lock (a full disk or a read-only file alike)
    leaves reads working, so a ping passes; /ready still fails the database check while the
    writer's rows wait, /metrics shows how long, and both clear once the rows are stored."""
    db = Database(DatabaseConfig(url=sqlite_url, sqlite_busy_timeout_s=0.05))
    await db.start()
    hub = Hub()
    config = StorageConfig(batch_size=5, batch_max_age_s=0.05, retry_max_s=0.2)
    writer = StoreWriter(hub=hub, db=db, config=config, clock=LiveClock())
    await writer.start()
    api = await start_api(hub=hub, db=db, writer=writer)
    locker = sqlite3.connect(str(make_url(sqlite_url).database), isolation_level=None)
    try:
        status, body = await api.get("/ready", token=None)
        assert (status, body["checks"]["database"]["ok"]) == (200, True)
        locker.execute("BEGIN EXCLUSIVE")
        hub.publish(anomaly())
        await wait_until(lambda: writer.retries >= 2, message="writes retried while locked")
        assert await db.ping()  # reads still answer
        status, body = await api.get("/ready", token=None)
        assert status == 503, body
        check = body["checks"]["database"]
        assert check["ok"] is False
        assert "writes failing" in check["detail"]
        # the database's own words (hostnames, tables, SQL) are not for a caller without a
        # token: /ready points to where they are, the read-scoped status carries them
        assert "locked" not in check["detail"], check
        assert writer.last_error is not None
        assert writer.last_error not in check["detail"]
        assert "/api/v1/status" in check["detail"]
        status, full = await api.get("/api/v1/status")
        assert status == 200
        assert "locked" in full["store"]["last_error"]
        assert full["store"]["outage_s"] > 0
        async with api.http.get(api.url + "/api/v1/status") as r:
            assert r.status == 401  # not anonymous
        async with api.http.get(api.url + "/metrics", headers=bearer(READ)) as r:
            fams = _families(await r.text())
        assert fams["cryptomon_store_outage_seconds"].samples[0].value > 0
        assert fams["cryptomon_store_rejected"].samples[0].value == 0
        locker.execute("ROLLBACK")
        await wait_until(lambda: writer.tx.outage_s() == 0.0, message="writes recovered")
        status, body = await api.get("/ready", token=None)
        assert (status, body["checks"]["database"]) == (200, {"ok": True, "detail": ""})
        async with api.http.get(api.url + "/metrics", headers=bearer(READ)) as r:
            fams = _families(await r.text())
        assert fams["cryptomon_store_outage_seconds"].samples[0].value == 0
    finally:
        if locker.in_transaction:
            locker.execute("ROLLBACK")
        locker.close()
        await writer.stop()
        await db.stop()


@pytest.mark.asyncio
async def test_status(start_api: StartApi) -> None:
    """/api/v1/status: version, uptime, which capabilities exist, hub stats, feed health."""
    hub = Hub()
    api = await start_api(hub=hub, feeds=feed_manager(hub, LiveClock())[0])
    api.hub.publish(
        Trade(exchange="x", symbol="A-B", ts=1, ts_recv=1, price=1, amount=1, side="buy")
    )
    status, body = await api.get("/api/v1/status")
    assert status == 200
    assert body["version"]
    assert body["uptime_s"] >= 0
    assert body["components"]["feeds"] == "available"
    assert body["components"]["trading"] == "absent"
    assert body["hub"]["topics"]["Trade"]["published"] == 1
    assert body["feeds"]["binance"]["state"] == "live"
    assert body["websocket"]["clients"] == 0


@pytest.mark.asyncio
async def test_feeds(start_api: StartApi) -> None:
    """/api/v1/feeds returns the feed manager's health; 404 without feeds."""
    hub = Hub()
    api = await start_api(hub=hub, feeds=feed_manager(hub, LiveClock())[0])
    status, body = await api.get("/api/v1/feeds")
    assert status == 200
    assert body["feeds"]["binance"]["reconnects"] == 2
    bare = await start_api()
    assert (await bare.get("/api/v1/feeds"))[0] == 404


@pytest.mark.asyncio
async def test_openapi_documents_every_route(start_api: StartApi) -> None:
    """The OpenAPI 3.1 document lists every route with its scope, models and errors."""
    api = await start_api()
    status, doc = await api.get("/api/v1/openapi.json", token=None)
    assert status == 200
    assert doc["openapi"] == "3.1.0"
    for route in all_routes():
        op = doc["paths"][route.path][route.method.lower()]
        assert "200" in op["responses"]
        if route.scope:
            assert op["x-required-scope"] == route.scope
            assert {"401", "403", "429"} <= set(op["responses"])
        if route.body is not None:
            assert {"400", "413", "422"} <= set(op["responses"])
    orders = doc["paths"]["/api/v1/trading/orders"]["post"]
    ref = orders["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert {"exchange", "symbol", "side", "amount"} <= set(schema["required"])
    params = {p["name"] for p in doc["paths"]["/api/v1/anomalies"]["get"]["parameters"]}
    assert params == {
        "exchange",
        "symbol",
        "kind",
        "min_severity",
        "since",
        "until",
        "limit",
        "cursor",
    }


def _families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


@pytest.mark.asyncio
async def test_metrics_prometheus_text(start_api: StartApi) -> None:
    """/metrics is Prometheus text with hub, API, feed, detector and trading series, read
    from the real detector engine's stats at scrape time."""
    from cryptomon.config import AnomalyDetectionConfig
    from cryptomon.detect.engine import KINDS, DetectorEngine

    hub = Hub()
    detectors = DetectorEngine(hub=hub, clock=LiveClock(), config=AnomalyDetectionConfig())
    await detectors.start()
    api = await start_api(
        hub=hub, feeds=feed_manager(hub, LiveClock())[0], detectors=detectors, trading=FakeTrading()
    )
    for i in range(5):
        hub.publish(
            Trade(
                exchange="x",
                symbol="A-B",
                ts=1.0 + i,
                ts_recv=1.0 + i,
                price=1,
                amount=1,
                side="buy",
            )
        )
    await wait_until(lambda: sum(detectors.stats()["events"].values()) >= 5)
    await api.get("/health", token=None)
    async with api.http.get(api.url + "/metrics", headers=bearer(READ)) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        fams = _families(await r.text())
    await detectors.stop()
    trades = [s for s in fams["cryptomon_hub_events"].samples if s.labels.get("topic") == "Trade"]
    assert trades[0].value == 5
    assert any(
        s.labels == {"method": "GET", "status": "200"}
        for s in fams["cryptomon_api_requests"].samples
    )
    assert "cryptomon_ws_dropped" in fams
    feed_age = fams["cryptomon_feed_message_age_seconds"].samples
    assert {s.labels["channel"] for s in feed_age} == {"trades", "orderbook"}
    assert all(0 <= s.value < 60 for s in feed_age)
    live = {s.labels["channel"]: s.value for s in fams["cryptomon_feed_live"].samples}
    assert live == {"trades": 1.0, "orderbook": 1.0}
    assert fams["cryptomon_feed_reconnects"].samples[0].value == 2
    seen = sum(s.value for s in fams["cryptomon_detect_events"].samples)
    assert seen >= 5
    kinds = {s.labels["kind"] for s in fams["cryptomon_detect_anomalies"].samples}
    assert kinds == set(KINDS)
    hist = fams["cryptomon_detect_latency_seconds"]
    assert hist.type == "histogram"
    assert any(s.labels.get("le") == "+Inf" for s in hist.samples)
    risk = {s.labels["state"]: s.value for s in fams["cryptomon_trading_risk_state"].samples}
    assert risk == {"active": 1.0, "reducing": 0.0, "halted": 0.0}


@pytest.mark.asyncio
async def test_metrics_registries_are_per_server(start_api: StartApi) -> None:
    """Two servers in one process keep separate registries (no global registry)."""
    a = await start_api()
    b = await start_api()
    for _ in range(3):
        await a.get("/health", token=None)
    async with b.http.get(b.url + "/metrics", headers=bearer(READ)) as r:
        fams = _families(await r.text())
    health = [s for s in fams["cryptomon_api_requests"].samples if s.labels["status"] == "200"]
    assert sum(s.value for s in health) == 0
    assert a.server.app[_registry_key()] is not b.server.app[_registry_key()]


def _registry_key() -> Any:
    from cryptomon.api.metrics import METRICS_REGISTRY

    return METRICS_REGISTRY


@pytest.mark.asyncio
async def test_metrics_needs_read_scope(start_api: StartApi) -> None:
    """/metrics needs a read token, with public_read too (it exposes trading figures)."""
    api = await start_api()
    async with api.http.get(api.url + "/metrics") as r:
        assert r.status == 401
    public = await start_api(config=api_config(public_read=True))
    async with public.http.get(public.url + "/metrics") as r:
        assert r.status == 401


@pytest.mark.asyncio
async def test_dashboard_page_is_served_without_data(start_api: StartApi) -> None:
    """GET / serves the static dashboard (no token needed: it holds no data) with a CSP."""
    api = await start_api()
    async with api.http.get(api.url + "/") as r:
        assert r.status == 200
        assert r.content_type == "text/html"
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        html = await r.text()
    assert "<title>cryptomon</title>" in html
    assert '<script type="module" src="/static/app.js">' in html  # the views call the API
