"""/api/v1/backtests over the real store: a run stored by the backtest code, listed, read,
its report served as HTML; unknown and malformed ids."""

from __future__ import annotations

from typing import Any

import pytest

from cryptomon.backtest.report import render
from cryptomon.backtest.session import BacktestRequest, run_series, store_run
from cryptomon.config import Settings
from cryptomon.store.history import BacktestRuns
from tests.integration.api.conftest import READ, StartApi, bearer
from tests.unit.backtest.conftest import random_walk, settings


async def stored_runs(sqlite_url: str, count: int, *, report: bool) -> Settings:
    cfg = settings(min_signal_strength=0.5)
    cfg = cfg.model_copy(update={"database": cfg.database.model_copy(update={"url": sqlite_url})})
    for n in range(count):
        result, doc = await run_series(cfg, [random_walk(600, seed=n)], BacktestRequest())
        html = render(result, doc, "test") if report else None
        await store_run(cfg, result, doc, html)
    return cfg


@pytest.mark.asyncio
async def test_list_detail_and_report(start_api: StartApi, database: Any, sqlite_url: str) -> None:
    """Runs are listed newest first with summaries; one run has trades; the report is HTML."""
    await stored_runs(sqlite_url, 3, report=True)
    api = await start_api(backtests=BacktestRuns(db=database))
    status, page = await api.get("/api/v1/backtests?limit=2")
    assert status == 200
    assert [r["id"] for r in page["items"]] == [3, 2]
    assert page["next_before"] == 2
    assert page["items"][0]["summary"]["candles"] == 600
    assert page["items"][0]["has_report"] is True
    _, rest = await api.get("/api/v1/backtests?limit=2&before=2")
    assert [r["id"] for r in rest["items"]] == [1]
    assert rest["next_before"] is None
    status, run = await api.get("/api/v1/backtests/1")
    assert status == 200
    assert run["params"]["symbols"] == ["ALT-BTC"]
    assert len(run["trades"]) == run["summary"]["trades"]
    async with api.http.get(api.url + "/api/v1/backtests/1/report", headers=bearer(READ)) as r:
        assert r.status == 200
        assert r.content_type == "text/html"
        assert (await r.text()).startswith("<!DOCTYPE html>")


@pytest.mark.asyncio
async def test_unknown_and_malformed_ids(
    start_api: StartApi, database: Any, sqlite_url: str
) -> None:
    """An unknown run is 404, a run without report 404 on /report, a bad id 422."""
    await stored_runs(sqlite_url, 1, report=False)
    api = await start_api(backtests=BacktestRuns(db=database))
    status, body = await api.get("/api/v1/backtests/99")
    assert status == 404
    assert "no backtest run 99" in body["error"]["message"]
    status, body = await api.get("/api/v1/backtests/1/report")
    assert status == 404
    assert "has no report" in body["error"]["message"]
    status, _ = await api.get("/api/v1/backtests/abc")
    assert status == 422
    status, _ = await api.get("/api/v1/backtests", token=None)
    assert status == 401


@pytest.mark.asyncio
async def test_routes_are_absent_without_a_store(start_api: StartApi) -> None:
    """A daemon without a database answers 404 capability_unavailable."""
    api = await start_api()
    status, body = await api.get("/api/v1/backtests")
    assert status == 404
    assert body["error"]["code"] == "capability_unavailable"


@pytest.mark.asyncio
async def test_ids_beyond_the_database_integer_are_422_not_500(
    start_api: StartApi, db_url: str
) -> None:
    """A run id or ``before`` past 2**63 - 1 (SQLite cannot bind it: a 500; PostgreSQL
    refuses it: a 503 as if the store were down) and a non-ASCII digit ('²' passes
    str.isdigit, not int) are clear 422s naming the field; the largest 64-bit id is simply
    no run. On SQLite and PostgreSQL."""
    from cryptomon.config import DatabaseConfig
    from cryptomon.store.db import Database

    await stored_runs(db_url, 1, report=False)
    database = Database(DatabaseConfig(url=db_url))
    await database.start()
    try:
        await _check_huge_ids(start_api, database)
    finally:
        await database.stop()


async def _check_huge_ids(start_api: StartApi, database: Any) -> None:
    api = await start_api(backtests=BacktestRuns(db=database))
    huge = str(2**63)
    for path in (f"/api/v1/backtests/{huge}", f"/api/v1/backtests/{huge}/report"):
        status, body = await api.get(path)
        assert status == 422, body
        assert body["error"]["details"]["fields"][0]["field"] == "path.run_id"
    status, body = await api.get("/api/v1/backtests/%C2%B2")
    assert status == 422, body
    status, body = await api.get(f"/api/v1/backtests?before={huge}")
    assert status == 422, body
    assert body["error"]["details"]["fields"][0]["field"] == "query.before"
    status, _ = await api.get(f"/api/v1/backtests/{2**63 - 1}")
    assert status == 404
    status, page = await api.get(f"/api/v1/backtests?before={2**63 - 1}")
    assert status == 200
    assert [r["id"] for r in page["items"]] == [1]
