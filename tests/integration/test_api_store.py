"""The whole read path on SQLite and PostgreSQL: anomalies published on the hub, persisted by
the real StoreWriter, served by the API with filters and keyset pagination; fills served with
the ids of their orders."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from cryptomon.api import ApiServer
from cryptomon.clock import LiveClock
from cryptomon.config import DatabaseConfig, StorageConfig
from cryptomon.events import Fill, OrderState, OrderUpdate
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


def _fill(i: int, coid: str, venue_id: str | None) -> Fill:
    return Fill(
        exchange="binance",
        symbol="BTC-USDT",
        ts=1_700_000_000.0 + i,
        ts_recv=1_700_000_000.0 + i,
        trade_id=f"t{i}",
        client_order_id=coid,
        exchange_order_id=venue_id,
        side="buy",
        amount=Decimal("0.001"),
        price=Decimal("65000.5"),
        fee=Decimal("0.0650005"),
        fee_currency="USDT",
    )


@pytest.mark.asyncio
async def test_fills_are_served_with_their_order_ids_and_filtered_by_order(
    stack: dict[str, Any],
) -> None:
    """Each stored fill names its order: the client order id and the venue's order id (null
    when the venue gave none); ?client_order_id= lists one order's fills, newest first; a
    malformed id is a 422 naming the parameter."""
    hub, server, http = stack["hub"], stack["server"], stack["http"]
    hub.publish(_fill(0, "cmma" + "0" * 28, "881"))
    hub.publish(_fill(1, "cmmb" + "1" * 28, None))
    hub.publish(_fill(2, "cmma" + "0" * 28, "881"))
    url = server.url + "/api/v1/trading/fills"

    async def stored() -> bool:
        async with http.get(url) as r:
            return len((await r.json())["fills"]) == 3

    await wait_until(stored, timeout=20, message="3 fills stored")
    async with http.get(url) as r:
        fills = (await r.json())["fills"]
    assert [(f["trade_id"], f["client_order_id"], f["exchange_order_id"]) for f in fills] == [
        ("t2", "cmma" + "0" * 28, "881"),
        ("t1", "cmmb" + "1" * 28, None),
        ("t0", "cmma" + "0" * 28, "881"),
    ]
    async with http.get(url + "?client_order_id=" + "cmma" + "0" * 28) as r:
        assert r.status == 200, await r.text()
        assert [f["trade_id"] for f in (await r.json())["fills"]] == ["t2", "t0"]
    async with http.get(url + "?client_order_id=nope&symbol=ETH-USDT") as r:
        assert (r.status, (await r.json())["fills"]) == (200, [])
    async with http.get(url + "?client_order_id=a%20b") as r:
        assert r.status == 422, await r.text()
        assert "client_order_id" in await r.text()


def _order_update(coid: str, venue_id: str | None, ts: float) -> OrderUpdate:
    return OrderUpdate(
        exchange="binance",
        symbol="BTC-USDT",
        ts=ts,
        ts_recv=ts,
        client_order_id=coid,
        state=OrderState.SUBMITTED if venue_id is None else OrderState.PARTIALLY_FILLED,
        side="buy",
        type="limit",
        amount=Decimal("0.003"),
        price=Decimal("65000.5"),
        filled=Decimal("0.001"),
        exchange_order_id=venue_id,
    )


@pytest.mark.asyncio
async def test_fills_without_a_venue_order_id_get_their_orders(stack: dict[str, Any]) -> None:
    """A fill stored without the venue's order id (a ccxt trade with no ``order`` field) is
    served with the id its order row has, whether the order learned it after the fill was
    stored or before; a fill's own id wins, and a fill of an unknown order stays null."""
    hub, server, http = stack["hub"], stack["server"], stack["http"]
    known, late = "cmmc" + "2" * 28, "cmmd" + "3" * 28
    url = server.url + "/api/v1/trading/fills"

    async def served(n: int) -> list[tuple[str, str | None]]:
        async def ready() -> bool:
            async with http.get(url) as r:
                return len((await r.json())["fills"]) == n

        await wait_until(ready, timeout=20, message=f"{n} fills stored")
        async with http.get(url) as r:
            return [(f["trade_id"], f["exchange_order_id"]) for f in (await r.json())["fills"]]

    hub.publish(_order_update(late, None, 1_700_000_000.0))  # no venue id yet
    hub.publish(_fill(0, late, None))
    hub.publish(_fill(1, "cmme" + "4" * 28, None))  # no order row at all
    assert await served(2) == [("t1", None), ("t0", None)]
    hub.publish(_order_update(late, "7001", 1_700_000_010.0))  # the venue's id, learned later
    hub.publish(_order_update(known, "7002", 1_700_000_010.0))
    hub.publish(_fill(2, known, None))  # stored after its order's id was known
    hub.publish(_fill(3, known, "7999"))  # the fill's own id is kept
    assert await served(4) == [("t3", "7999"), ("t2", "7002"), ("t1", None), ("t0", "7001")]
    async with http.get(url + "?client_order_id=" + late) as r:
        fills = (await r.json())["fills"]
    assert [(f["trade_id"], f["exchange_order_id"]) for f in fills] == [("t0", "7001")]
    async with http.get(url + "?symbol=BTC-USDT&limit=1") as r:
        fills = (await r.json())["fills"]
    assert [(f["trade_id"], f["exchange_order_id"]) for f in fills] == [("t3", "7999")]


def _forged(payload: str) -> str:
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


@pytest.mark.asyncio
@pytest.mark.parametrize("route", ["/api/v1/anomalies", "/api/v1/signals"])
async def test_forged_cursors_are_422_naming_the_cursor(stack: dict[str, Any], route: str) -> None:
    """A cursor this server never made is a 422 naming query.cursor on both databases: a key
    with a NUL character (PostgreSQL text refuses it: it was a 500 there), a boolean time."""
    server, http = stack["server"], stack["http"]
    for payload in ('[1, "\\u0000"]', '[1, "a\\u0000b"]', '[true, "x"]', '[false, "x"]'):
        async with http.get(server.url + f"{route}?cursor={_forged(payload)}") as r:
            body = await r.json()
            assert r.status == 422, (payload, r.status, body)
        assert body["error"]["details"]["fields"][0]["field"] == "query.cursor", payload
    good = _forged('[1, "x"]')
    async with http.get(server.url + f"{route}?cursor={good}") as r:
        assert r.status == 200  # a well-formed cursor still pages
