"""/api/v1/anomalies over the real store: filters, keyset pagination, stats, the cache."""

from __future__ import annotations

from typing import Any

import pytest

from cryptomon.events import Anomaly, Severity
from tests import stubs
from tests.integration.api.conftest import READ, StartApi, api_config, bearer, insert_anomalies

T0 = 1_700_000_000.0


def anomaly(i: int, **kw: Any) -> Anomaly:
    """The i-th of a varied set: exchanges, symbols, kinds and severities cycle with i."""
    varied: dict[str, Any] = {
        "exchange": "binance" if i % 2 == 0 else "okx",
        "symbol": "BTC-USDT" if i % 3 else "ETH-USDT",
        "ts": T0 + i,
        "ts_recv": T0 + i,
        "kind": "volume" if i % 4 else "price_change",
        "severity": [Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL][i % 4],
        "value": float(i),
        "confidence": 0.5,
        "z_score": 4.0,
        "reasons": (f"Z-score: {i}",),
        "ts_detected": T0 + i + 0.5,
        "id": f"a{i:05d}",
    }
    return stubs.anomaly(**{**varied, **kw})


@pytest.mark.asyncio
async def test_pages_cover_everything_once_newest_first(
    start_api: StartApi, queries: Any, database: Any
) -> None:
    """Following next_cursor yields every anomaly once, newest first, then null."""
    await insert_anomalies(database, [anomaly(i) for i in range(23)])
    api = await start_api(queries=queries)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        path = "/api/v1/anomalies?limit=10" + (f"&cursor={cursor}" if cursor else "")
        status, body = await api.get(path)
        assert status == 200
        seen += [a["id"] for a in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"a{i:05d}" for i in reversed(range(23))]


@pytest.mark.asyncio
async def test_filters(start_api: StartApi, queries: Any, database: Any) -> None:
    """exchange, symbol (either spelling), kind, min_severity, since/until all filter."""
    await insert_anomalies(database, [anomaly(i) for i in range(24)])
    api = await start_api(queries=queries)
    _, body = await api.get("/api/v1/anomalies?exchange=OKX&symbol=btc/usdt&limit=100")
    assert body["items"]
    assert all(a["exchange"] == "okx" and a["symbol"] == "BTC-USDT" for a in body["items"])
    _, body = await api.get("/api/v1/anomalies?kind=price_change&min_severity=high&limit=100")
    assert body["items"] == []  # price anomalies here are all low
    _, body = await api.get("/api/v1/anomalies?kind=price_change&limit=100")
    assert len(body["items"]) == 6
    _, body = await api.get("/api/v1/anomalies?min_severity=critical&limit=100")
    assert {a["severity"] for a in body["items"]} == {"critical"}
    assert len(body["items"]) == 6
    _, body = await api.get(f"/api/v1/anomalies?since={T0 + 10}&until={T0 + 13}&limit=100")
    assert [a["id"] for a in body["items"]] == ["a00012", "a00011", "a00010"]
    item = body["items"][0]
    assert item["reasons"] == ["Z-score: 12"]
    assert item["ts"] == T0 + 12


@pytest.mark.asyncio
async def test_bad_cursor_and_page_cap_are_422(start_api: StartApi, queries: Any) -> None:
    """A cursor the store did not issue and a limit above max_page_size name the field."""
    api = await start_api(config=api_config(max_page_size=100), queries=queries)
    status, body = await api.get("/api/v1/anomalies?cursor=garbage!")
    assert status == 422
    assert body["error"]["details"]["fields"][0]["field"] == "query.cursor"
    status, body = await api.get("/api/v1/anomalies?limit=101")
    assert status == 422
    assert "query.limit" in body["error"]["message"]
    status, body = await api.get(f"/api/v1/anomalies?since={T0 + 5}&until={T0}")
    assert status == 422


@pytest.mark.asyncio
async def test_unknown_kind_and_non_numeric_times_are_422(
    start_api: StartApi, queries: Any
) -> None:
    """A misspelt kind is refused with the valid kinds (it used to match nothing and return an
    empty page, which reads as "no anomalies"); a date in place of epoch seconds says which
    unit the field takes."""
    api = await start_api(queries=queries)
    status, body = await api.get("/api/v1/anomalies?kind=pricechange")
    assert status == 422
    (field,) = body["error"]["details"]["fields"]
    assert field["field"] == "query.kind"
    assert "price_change" in field["message"]
    assert "volume" in field["message"]
    for path in ("/api/v1/anomalies?since=2026-01-01", "/api/v1/anomalies/stats?until=today"):
        status, body = await api.get(path)
        assert status == 422, path
        (field,) = body["error"]["details"]["fields"]
        assert field["field"] in ("query.since", "query.until")
        assert "epoch seconds" in field["message"], field


@pytest.mark.asyncio
async def test_stats(start_api: StartApi, queries: Any, database: Any) -> None:
    """Counts by kind and severity come from the store."""
    await insert_anomalies(database, [anomaly(i) for i in range(8)])
    api = await start_api(queries=queries)
    status, body = await api.get("/api/v1/anomalies/stats")
    assert status == 200
    assert body["total"] == 8
    assert body["by_kind"] == {"price_change": 2, "volume": 6}
    assert body["by_severity"] == {"low": 2, "medium": 2, "high": 2, "critical": 2}


@pytest.mark.asyncio
async def test_cache_is_cleared_by_a_new_anomaly(
    start_api: StartApi, queries: Any, database: Any
) -> None:
    """Cached pages are reused, and dropped as soon as a new anomaly is published."""
    await insert_anomalies(database, [anomaly(i) for i in range(3)])
    api = await start_api(config=api_config(cache_ttl_s=60), queries=queries)
    _, first = await api.get("/api/v1/anomalies")
    _, again = await api.get("/api/v1/anomalies")
    cache = api.server.cache
    assert first == again
    assert cache.hits == 1
    new = anomaly(99)
    await insert_anomalies(database, [new])
    api.hub.publish(new)
    _, after = await api.get("/api/v1/anomalies")
    assert after["items"][0]["id"] == "a00099"


@pytest.mark.asyncio
async def test_cache_is_bounded_and_evictions_counted(start_api: StartApi, queries: Any) -> None:
    """Beyond cache_entries the least recently used page is evicted and counted in /metrics."""
    api = await start_api(config=api_config(cache_ttl_s=60, cache_entries=2), queries=queries)
    for limit in (1, 2, 3, 4):
        assert (await api.get(f"/api/v1/anomalies?limit={limit}"))[0] == 200
    assert api.server.cache.evictions == 2
    async with api.http.get(api.url + "/metrics", headers=bearer(READ)) as r:
        assert "cryptomon_api_cache_evictions_total 2.0" in await r.text()


@pytest.mark.asyncio
async def test_page_has_the_documented_shape_without_per_row_models(
    start_api: StartApi, queries: Any, database: Any
) -> None:
    """A page serialized from plain rows has exactly the AnomalyOut fields and validates."""
    from cryptomon.api.models import AnomalyOut, AnomalyPage

    await insert_anomalies(database, [anomaly(i) for i in range(3)])
    api = await start_api(queries=queries)
    status, body = await api.get("/api/v1/anomalies?limit=2")
    assert status == 200
    assert AnomalyPage.model_validate(body).items[0].id == "a00002"
    assert all(set(item) == set(AnomalyOut.model_fields) for item in body["items"])
    assert body["items"][0]["reasons"] == ["Z-score: 2"]
