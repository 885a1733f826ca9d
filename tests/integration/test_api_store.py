"""The whole read path on SQLite and PostgreSQL: anomalies published on the hub, persisted by
the real StoreWriter, served by the API with filters and keyset pagination."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from cryptomon.api import ApiServer
from cryptomon.clock import LiveClock
from cryptomon.config import DatabaseConfig, StorageConfig
from cryptomon.hub import Hub
from cryptomon.store.db import Database
from cryptomon.store.queries import Queries
from cryptomon.store.writer import StoreWriter
from tests.integration.api.conftest import READ, api_config, bearer
from tests.integration.api.test_anomalies_api import anomaly
from tests.util import wait_until


@pytest_asyncio.fixture
async def stack(db_url: str) -> AsyncIterator[dict[str, Any]]:
    """Hub + database + writer + API server, started; stopped in reverse afterwards."""
    hub = Hub()
    db = Database(DatabaseConfig(url=db_url))
    await db.start()
    writer = StoreWriter(
        hub=hub, db=db, config=StorageConfig(batch_max_age_s=0.05), clock=LiveClock()
    )
    await writer.start()
    server = ApiServer(
        config=api_config(),
        hub=hub,
        clock=LiveClock(),
        queries=Queries(db=db),
        db=db,
        writer=writer,
    )
    await hub.start()
    await server.start()
    http = aiohttp.ClientSession(headers=bearer(READ))
    yield {"hub": hub, "server": server, "http": http, "writer": writer}
    await http.close()
    await server.stop()
    await writer.stop()
    await hub.stop(1.0)
    await db.stop()


@pytest.mark.asyncio
async def test_published_anomalies_are_served_in_pages(stack: dict[str, Any]) -> None:
    """Anomalies from the hub reach the store and come back page by page, filtered."""
    hub, server, http = stack["hub"], stack["server"], stack["http"]
    for i in range(45):
        hub.publish(anomaly(i))

    async def stored() -> bool:
        async with http.get(server.url + "/api/v1/anomalies/stats") as r:
            return bool((await r.json())["total"] == 45)

    await wait_until(stored, timeout=20, message="45 anomalies stored")
    ids: list[str] = []
    cursor = ""
    while True:
        async with http.get(server.url + f"/api/v1/anomalies?limit=20{cursor}") as r:
            assert r.status == 200
            page = await r.json()
        ids += [a["id"] for a in page["items"]]
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert ids == [f"a{i:05d}" for i in reversed(range(45))]
    async with http.get(
        server.url + "/api/v1/anomalies?exchange=okx&min_severity=high&limit=100"
    ) as r:
        items = (await r.json())["items"]
    assert items
    assert {(a["exchange"], a["severity"] in ("high", "critical")) for a in items} == {
        ("okx", True)
    }
    async with http.get(server.url + "/ready") as r:
        assert r.status == 200
    async with http.get(server.url + "/metrics") as r:
        text = await r.text()
    assert 'cryptomon_store_rows_total{table="anomalies"} 45.0' in text
