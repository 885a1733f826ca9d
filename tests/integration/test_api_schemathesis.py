"""schemathesis against the live OpenAPI document: no 5xx, every response conforms to it.

The server runs with real services (SQLite store with anomalies and notifications, a
MarketState fed through the hub, the detector engine, the paper-trading engine, the feed
manager over a networkless source, the notification router delivering to a loopback
webhook) on its own event loop in a thread, because schemathesis sends requests
synchronously.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.api.conftest import ADMIN, api_config, insert_anomalies
from tests.integration.api.fakes import feed_manager
from tests.integration.api.test_anomalies_api import anomaly
from tests.integration.api.test_market_api import feed

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass
class LiveApi:
    url: str
    loop: asyncio.AbstractEventLoop


async def _start(tmp: Path, stop: asyncio.Event, ready: Future[LiveApi]) -> None:
    from cryptomon.api import ApiServer
    from cryptomon.clock import LiveClock
    from cryptomon.config import AlertsConfig, AnomalyDetectionConfig, DatabaseConfig
    from cryptomon.detect.engine import DetectorEngine
    from cryptomon.events import NotificationRecord
    from cryptomon.notify.router import NotificationRouter
    from cryptomon.store.db import Database
    from cryptomon.store.queries import Queries
    from cryptomon.store.repos import insert_notifications
    from tests.integration.notify_sinks import HttpSink
    from tests.unit.trading.helpers import paper_engine, trading_config

    clock = LiveClock()
    trading, _broker, hub, market, _ = paper_engine(config=trading_config(), clock=clock)
    detectors = DetectorEngine(hub=hub, clock=clock, config=AnomalyDetectionConfig())
    feeds, _source = feed_manager(hub, clock)
    db = Database(DatabaseConfig(url=f"sqlite+aiosqlite:///{tmp / 'api.db'}"))
    await db.start()
    await insert_anomalies(db, [anomaly(i) for i in range(30)])
    async with db.sessionmaker() as session, session.begin():
        await insert_notifications(
            session,
            [
                NotificationRecord(
                    exchange="",
                    symbol="",
                    ts=1.0 + i,
                    ts_recv=1.0,
                    channel="ops",
                    status="sent",
                    title=f"t{i}",
                )
                for i in range(3)
            ],
        )
    sink = await HttpSink().start()
    notifier = NotificationRouter(
        hub=hub,
        clock=LiveClock(),
        config=AlertsConfig.model_validate({"channels": [{"name": "ops", "url": sink.url()}]}),
    )
    server = ApiServer(
        config=api_config(),
        hub=hub,
        clock=LiveClock(),
        queries=Queries(db=db),
        db=db,
        market=market,
        feeds=feeds,
        detectors=detectors,
        notifier=notifier,
        trading=trading,
    )
    feed(hub)  # a book for the paper broker and the market endpoints
    await hub.start()
    await detectors.start()
    await trading.start()
    await server.start()
    ready.set_result(LiveApi(server.url, asyncio.get_running_loop()))
    await stop.wait()
    await server.stop()
    await trading.stop()
    await detectors.stop()
    await hub.stop(1.0)
    await sink.close()
    await db.stop()


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """The API server with real services, on 127.0.0.1:0 in a background thread."""
    ready: Future[LiveApi] = Future()
    holder: dict[str, Any] = {}

    def run() -> None:
        async def main() -> None:
            holder["stop"] = asyncio.Event()
            await _start(tmp_path_factory.mktemp("api"), holder["stop"], ready)

        try:
            asyncio.run(main())
        except BaseException as exc:  # surface startup failures to the test
            if not ready.done():
                ready.set_exception(exc)

    thread = threading.Thread(target=run, name="api-under-test", daemon=True)
    thread.start()
    live = ready.result(timeout=60)
    yield live
    live.loop.call_soon_threadsafe(holder["stop"].set)
    thread.join(timeout=30)


def _document() -> dict[str, Any]:
    from cryptomon import __version__
    from cryptomon.api.openapi import build_openapi
    from cryptomon.api.rest import all_routes

    return build_openapi(all_routes(), version=__version__)


schema = schemathesis.openapi.from_dict(_document())


def test_served_document_is_the_tested_one(live_api: LiveApi) -> None:
    """The server serves exactly the document schemathesis tests against."""
    import json
    import urllib.request

    with urllib.request.urlopen(f"{live_api.url}/api/v1/openapi.json", timeout=10) as r:
        assert json.load(r) == _document()


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_openapi_document(case: Any, live_api: LiveApi) -> None:
    """Generated requests never get a 5xx and every response matches the document."""
    case.call_and_validate(
        base_url=live_api.url,
        headers={"Authorization": f"Bearer {ADMIN}"},
        checks=CHECKS,
        timeout=10,
    )
