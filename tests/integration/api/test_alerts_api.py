"""/api/v1/alerts/* with the real NotificationRouter delivering to a loopback webhook sink."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from cryptomon.clock import LiveClock
from cryptomon.config import AlertsConfig
from cryptomon.events import AuditEntry, NotificationRecord
from cryptomon.hub import Hub
from cryptomon.notify.router import NotificationRouter
from cryptomon.store.db import Database
from cryptomon.store.queries import Queries
from tests.integration.api.conftest import READ, StartApi, api_config
from tests.integration.notify_sinks import HttpSink

T0 = 1_700_000_000.0


@pytest_asyncio.fixture
async def sink() -> AsyncIterator[HttpSink]:
    s = await HttpSink().start()
    yield s
    await s.close()


def router(hub: Hub, sink: HttpSink) -> NotificationRouter:
    cfg = AlertsConfig.model_validate(
        {"channels": [{"name": "ops", "url": sink.url("secret-path"), "min_severity": "high"}]}
    )
    return NotificationRouter(hub=hub, clock=LiveClock(), config=cfg)


@pytest.mark.asyncio
async def test_config_is_redacted(start_api: StartApi, sink: HttpSink) -> None:
    """Channels are listed with routing and without the URL's secret part."""
    hub = Hub()
    api = await start_api(hub=hub, notifier=router(hub, sink))
    status, body = await api.get("/api/v1/alerts/config")
    assert status == 200
    (ch,) = body["channels"]
    assert ch["name"] == "ops"
    assert ch["min_severity"] == "high"
    assert "secret-path" not in str(body)


@pytest.mark.asyncio
async def test_routing_update_is_validated_and_audited(start_api: StartApi, sink: HttpSink) -> None:
    """Routing changes apply and are audited; a url field is 422; unknown channel 404."""
    hub = Hub()
    notifier = router(hub, sink)
    api = await start_api(hub=hub, notifier=notifier)
    audits: list[AuditEntry] = []
    hub.subscribe(AuditEntry, audits.append)
    status, body = await api.post(
        "/api/v1/alerts/config",
        {"channel": "ops", "min_severity": "critical", "symbols": ["eth/usdt"]},
    )
    assert status == 200, body
    assert body["channels"][0]["min_severity"] == "critical"
    assert notifier.channels["ops"].cfg.symbols == ["ETH-USDT"]
    assert [a.action for a in audits] == ["alerts.config.update"]
    status, body = await api.post(
        "/api/v1/alerts/config", {"channel": "ops", "url": "json://evil.example/x"}
    )
    assert status == 422
    assert body["error"]["details"]["fields"][0]["field"] == "body.url"
    assert notifier.channels["ops"].cfg.url.get_secret_value() == sink.url("secret-path")
    status, body = await api.post(
        "/api/v1/alerts/config", {"channel": "nope", "min_severity": "low"}
    )
    assert status == 404
    assert body["error"]["details"]["channels"] == ["ops"]
    status, body = await api.post(
        "/api/v1/alerts/config", {"channel": "ops", "quiet_hours_tz": "Mars/Olympus"}
    )
    assert status == 422
    assert "body.quiet_hours_tz" in body["error"]["message"]
    status, body = await api.post(
        "/api/v1/alerts/config", {"channel": "ops", "kinds": ["whale", "volumee"]}
    )
    assert status == 422
    # the field is the body's list item, named whole (not "body.1")
    assert [f["field"] for f in body["error"]["details"]["fields"]] == ["body.kinds.1"]
    assert body["error"]["message"] == "invalid body: body.kinds.1"
    assert "'volume'" in body["error"]["details"]["fields"][0]["message"]


@pytest.mark.asyncio
async def test_send_test_reaches_the_sink(start_api: StartApi, sink: HttpSink) -> None:
    """POST /alerts/test delivers one real message and reports ok."""
    hub = Hub()
    api = await start_api(hub=hub, notifier=router(hub, sink))
    status, body = await api.post("/api/v1/alerts/test", {"channel": "ops"})
    assert status == 200, body
    assert body == {"channel": "ops", "ok": True, "attempts": 1, "error": ""}
    assert len(sink.messages) == 1
    status, _ = await api.post("/api/v1/alerts/test", {"channel": "ops"}, token=READ)
    assert status == 403


@pytest.mark.asyncio
async def test_history_from_the_store(start_api: StartApi, queries: Any, database: Any) -> None:
    """Notification records stored by the store are listed newest first, filterable."""
    from cryptomon.store.repos import insert_notifications

    records = [
        NotificationRecord(
            exchange="",
            symbol="",
            ts=T0 + i,
            ts_recv=T0 + i,
            channel="ops",
            status="sent" if i % 2 else "failed",
            title=f"t{i}",
            attempts=1,
        )
        for i in range(4)
    ]
    async with database.sessionmaker() as session, session.begin():
        await insert_notifications(session, records)
    api = await start_api(queries=queries)
    status, body = await api.get("/api/v1/alerts/history?channel=ops&status=sent")
    assert status == 200
    assert [n["title"] for n in body["items"]] == ["t3", "t1"]
    status, body = await api.get("/api/v1/alerts/history?status=lost")
    assert status == 422
    assert "query.status" in body["error"]["message"]


@pytest.mark.asyncio
async def test_every_apprise_url_form_is_redacted(start_api: StartApi) -> None:
    """A read token sees no channel secret whatever the apprise URL form: a scheme outside the
    log redactor's list (opsgenie://APIKEY) or a service's own https webhook URL (Slack,
    Discord) was shown whole; every channel URL now shows its scheme only."""
    secrets = {
        "opsgenie": "0a1b2c3d4e5f6a7b8c9d",
        "slack": "TIiajkdnlazkcOXrIdevi7FQ",
        "discord": "JHMHI8qBe7bk2ZwO5U711o3dV_js",
    }
    urls = {
        "opsgenie": f"opsgenie://{secrets['opsgenie']}",
        "slack": f"https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/{secrets['slack']}",
        "discord": f"https://discord.com/api/webhooks/4174216298/{secrets['discord']}",
    }
    cfg = AlertsConfig.model_validate(
        {"channels": [{"name": n, "url": u, "min_severity": "high"} for n, u in urls.items()]}
    )
    hub = Hub()
    api = await start_api(
        hub=hub, notifier=NotificationRouter(hub=hub, clock=LiveClock(), config=cfg)
    )
    status, body = await api.get("/api/v1/alerts/config", token=READ)
    assert status == 200
    shown = {ch["name"]: ch["url"] for ch in body["channels"]}
    assert shown == {"opsgenie": "opsgenie://***", "slack": "https://***", "discord": "https://***"}
    assert not [s for s in secrets.values() if s in str(body)]


async def _store_notifications(database: Any, n: int) -> None:
    """``n`` notifications on ``ops`` (odd) and ``mail`` (even), pairs sharing a time, every
    third a digest; titles ``t0`` (oldest) to ``t<n-1>``."""
    from cryptomon.store.repos import insert_notifications

    records = [
        NotificationRecord(
            exchange="",
            symbol="",
            ts=T0 + i // 2,
            ts_recv=T0 + i // 2,
            channel="ops" if i % 2 else "mail",
            status="sent",
            title=f"t{i}",
            attempts=1,
            event_type="anomaly" if i % 3 else "digest",
        )
        for i in range(n)
    ]
    async with database.sessionmaker() as session, session.begin():
        await insert_notifications(session, records)


@pytest.mark.asyncio
async def test_history_pages_back_by_cursor(start_api: StartApi, db: Database) -> None:
    """Following next_cursor lists every notification once, newest first, then null; the
    filters (channel, event type, time range) hold on every page."""
    await _store_notifications(db, 23)
    api = await start_api(queries=Queries(db=db))
    titles: list[str] = []
    cursor = None
    pages = 0
    while True:
        path = "/api/v1/alerts/history?limit=5" + (f"&cursor={cursor}" if cursor else "")
        status, body = await api.get(path)
        assert status == 200, body
        titles += [n["title"] for n in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 5
    assert titles == [f"t{i}" for i in range(22, -1, -1)]
    query = f"channel=ops&event_type=anomaly&since={T0 + 1}&until={T0 + 10}&limit=3"
    _, first = await api.get(f"/api/v1/alerts/history?{query}")
    _, second = await api.get(f"/api/v1/alerts/history?{query}&cursor={first['next_cursor']}")
    wanted = [f"t{i}" for i in range(21, 1, -1) if i % 2 and i % 3]
    assert [n["title"] for n in first["items"] + second["items"]] == wanted
    assert second["next_cursor"] is None
    assert isinstance(first["items"][0]["id"], int)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("cursor=garbage!", "query.cursor"),
        # another list's cursor (a text id): refused, not a database error
        ("cursor=WzE3MDAwMDAwMDAwMDAwMDAsImFiYyJd", "query.cursor"),
        ("cursor=WzEsMTAwMDAwMDAwMDAwMDAwMDAwMDAwMF0", "query.cursor"),  # id beyond BIGINT
        ("limit=101", "query.limit"),
        ("limit=0", "query.limit"),
        ("event_type=anomalies", "query.event_type"),
        ("status=lost", "query.status"),
        ("since=20&until=10", "query.until"),
        ("since=yesterday", "query.since"),
        ("colour=red", "query.colour"),
    ],
)
async def test_bad_history_queries_are_422_naming_the_field(
    start_api: StartApi, db: Database, query: str, field: str
) -> None:
    """A cursor the store did not issue, a page above api.max_page_size, an unknown event
    type or status, an inverted range or an unknown parameter: 422 naming the field, like
    the anomaly and signal lists."""
    api = await start_api(config=api_config(max_page_size=100), queries=Queries(db=db))
    status, body = await api.get(f"/api/v1/alerts/history?{query}")
    assert status == 422, body
    assert field in [f["field"] for f in body["error"]["details"]["fields"]], body


@pytest.mark.asyncio
async def test_openapi_documents_the_history_page(start_api: StartApi, db: Database) -> None:
    """The OpenAPI document lists the history's cursor and filters and its next_cursor."""
    api = await start_api(queries=Queries(db=db))
    status, doc = await api.get("/api/v1/openapi.json")
    assert status == 200
    op = doc["paths"]["/api/v1/alerts/history"]["get"]
    names = {p["name"] for p in op["parameters"]}
    assert {"cursor", "limit", "channel", "status", "event_type", "since", "until"} <= names
    assert {"exchange", "symbol"} <= names
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    assert {"items", "next_cursor"} <= set(schema["required"])
    event_type = next(p for p in op["parameters"] if p["name"] == "event_type")
    assert "digest" in str(event_type["schema"])
