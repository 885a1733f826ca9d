"""Fixtures: a real ApiServer on 127.0.0.1:0 with a real Hub, reached with aiohttp clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from cryptomon.api import ApiServer
from cryptomon.clock import LiveClock
from cryptomon.config import ApiConfig
from cryptomon.hub import Hub

READ = "read-token-0123456789"
TRADE = "trade-token-0123456789"
ADMIN = "admin-token-0123456789"
TOKENS = [
    {"name": "reader", "token": READ, "scopes": ["read"]},
    {"name": "trader", "token": TRADE, "scopes": ["trade"]},
    {"name": "admin", "token": ADMIN, "scopes": ["admin"]},
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_config(**over: Any) -> ApiConfig:
    data: dict[str, Any] = {
        "port": 0,
        "tokens": TOKENS,
        "rate_limit_burst": 1000,
        "rate_limit_per_s": 1000,
    }
    data.update(over)
    return ApiConfig.model_validate(data)


@dataclass
class Running:
    server: ApiServer
    hub: Hub
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.server.url

    async def get(self, path: str, token: str | None = READ, **kw: Any) -> tuple[int, Any]:
        headers = {**(bearer(token) if token else {}), **kw.pop("headers", {})}
        async with self.http.get(self.url + path, headers=headers, **kw) as r:
            return r.status, await r.json(content_type=None)

    async def metrics(self, http: aiohttp.ClientSession | None = None) -> dict[str, Any]:
        """/metrics (read token) as {sample name: value, or {labels: value} when labelled}."""
        from prometheus_client.parser import text_string_to_metric_families

        async with (http or self.http).get(self.url + "/metrics", headers=bearer(READ)) as r:
            assert r.status == 200, await r.text()
            text = await r.text()
        out: dict[str, Any] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.labels:
                    key = tuple(sorted(sample.labels.items()))
                    out.setdefault(sample.name, {})[key] = sample.value
                else:
                    out[sample.name] = sample.value
        return out

    async def post(
        self, path: str, body: Any, token: str | None = ADMIN, **kw: Any
    ) -> tuple[int, Any]:
        headers = {**(bearer(token) if token else {}), **kw.pop("headers", {})}
        async with self.http.post(self.url + path, json=body, headers=headers, **kw) as r:
            return r.status, await r.json(content_type=None)


StartApi = Callable[..., Awaitable[Running]]


@pytest_asyncio.fixture
async def start_api() -> AsyncIterator[StartApi]:
    """Start ApiServers (config overrides and services by keyword); all stopped afterwards."""
    running: list[Running] = []

    async def start(
        *, config: ApiConfig | None = None, hub: Hub | None = None, **services: Any
    ) -> Running:
        hub = hub or Hub()
        server = ApiServer(config=config or api_config(), hub=hub, clock=LiveClock(), **services)
        await hub.start()
        await server.start()
        run = Running(server, hub, aiohttp.ClientSession())
        running.append(run)
        return run

    yield start
    for run in running:
        await run.http.close()
        await run.server.stop()
        await run.hub.stop(1.0)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest_asyncio.fixture
async def database(sqlite_url: str) -> AsyncIterator[Any]:
    """A real, migrated SQLite store."""
    from cryptomon.config import DatabaseConfig
    from cryptomon.store.db import Database

    db = Database(DatabaseConfig(url=sqlite_url))
    await db.start()
    yield db
    await db.stop()


@pytest.fixture
def queries(database: Any) -> Any:
    """The store's real read side over the SQLite database."""
    from cryptomon.store.queries import Queries

    return Queries(db=database)


async def insert_anomalies(db: Any, events: list[Any]) -> None:
    """Write anomalies with the store's own repository function."""
    from cryptomon.store.repos import insert_anomalies as insert

    async with db.sessionmaker() as session, session.begin():
        await insert(session, events)
