"""The store as the daemon wires it: build_store components inside the App lifecycle."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from cryptomon.app import App, HubComponent, Services, build_store
from cryptomon.clock import LiveClock
from cryptomon.config import DatabaseConfig, load_settings
from cryptomon.errors import ConfigError, FatalError
from cryptomon.hub import Hub
from cryptomon.store.db import Database
from cryptomon.store.queries import Queries
from tests.stubs import anomaly, intent


def _app(url: str, **storage: object) -> App:
    settings = load_settings(data={"database": {"url": url}, "storage": storage})
    hub, clock = Hub(), LiveClock()
    store = build_store(settings, hub=hub, clock=clock)
    services = Services(db=store.db, queries=store.queries, store_writer=store.writer)
    components = [
        HubComponent(hub=hub, drain_timeout_s=5),
        store.db,
        store.writer,
        store.retention,
    ]
    return App(components, hub=hub, clock=clock, services=services, shutdown_timeout_s=10)


@pytest.mark.asyncio
async def test_daemon_persists_hub_events_and_serves_queries(db_url: str) -> None:
    """Started by the App, the store migrates, persists published events by stop, and the
    Services hand the API a working Queries and the order engine a Database."""
    app = _app(db_url, batch_max_age_s=3600)
    await app.start()
    assert [c.name for c in app.started] == ["hub", "database", "store-writer", "store-retention"]
    services = app.services
    assert isinstance(services.db, Database)
    assert isinstance(services.queries, Queries)
    assert services.store_writer is not None
    events = [anomaly(ts_detected=1_700_000_000.0 + i) for i in range(5)]
    for ev in events:
        app.hub.publish(ev)
    app.hub.publish(intent("cm-app"))
    assert await app.stop()
    db = Database(DatabaseConfig(url=db_url))
    await db.start()
    try:
        page, _ = await Queries(db=db).anomalies(limit=10)
        assert sorted(r["id"] for r in page) == sorted(e.id for e in events)
        assert (await Queries(db=db).order("cm-app")) is not None
    finally:
        await db.stop()


@pytest.mark.asyncio
async def test_unreachable_database_stops_startup_with_redacted_url() -> None:
    """The daemon exits 1 with a log line naming the URL with its password hidden."""
    app = _app("postgresql+psycopg://cm:topsecret99@127.0.0.1:1/cm")
    with capture_logs() as logs:
        code = await app.run()
    assert code == 1
    failed = [e for e in logs if e["event"] == "daemon.start_failed"]
    assert failed
    assert failed[0]["component"] == "database"
    assert "postgresql+psycopg://cm:***@127.0.0.1:1/cm is unreachable" in failed[0]["error"]
    assert "topsecret99" not in repr(logs)


@pytest.mark.asyncio
async def test_uncreatable_sqlite_path_is_a_fatal_error(tmp_path: object) -> None:
    """A SQLite file that cannot be opened is a FatalError naming the URL, not a traceback."""
    db = Database(DatabaseConfig(url="sqlite+aiosqlite:////proc/cryptomon/x.db"))
    with pytest.raises(FatalError, match=r"database sqlite\+aiosqlite:////proc/cryptomon/x.db"):
        await db.start()


def test_wrong_database_scheme_is_a_config_error() -> None:
    """A URL with an unsupported driver names database.url and the accepted forms, no password."""
    with pytest.raises(ConfigError) as info:
        load_settings(data={"database": {"url": "mysql://root:pw123456@db/cm"}})
    text = str(info.value)
    assert "database.url" in text
    assert "postgresql+psycopg://" in text
    assert "pw123456" not in text
