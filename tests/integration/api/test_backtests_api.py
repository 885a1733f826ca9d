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


SL = "trading.stop_loss_percentage"


async def stored_sweep(url: str, stops: list[float], *, plain_before: int = 0) -> list[int]:
    """``plain_before`` single runs, then a sweep of ``stops`` (run in-process here: the
    command's worker processes are tested in tests/integration/test_backtest_sweep_store.py),
    stored ranked by PnL: the run ids, best first."""
    from cryptomon.backtest.session import store_sweep
    from cryptomon.backtest.sweep import apply_overrides, rank_documents

    cfg = await stored_runs(url, plain_before, report=False)
    docs = []
    for stop in stops:
        variant = apply_overrides(cfg, {SL: stop})
        req = BacktestRequest(overrides={SL: stop})
        docs.append((await run_series(variant, [random_walk(600, seed=0)], req))[1])
    return await store_sweep(cfg, rank_documents(docs, "pnl"), metric="pnl")


@pytest.mark.asyncio
async def test_a_sweeps_variants_are_listed_ranked_and_paged(
    start_api: StartApi, db_url: str
) -> None:
    """``?sweep=ID`` lists the sweep's variants best first (rank 1 first) with their
    overrides, paged by rank; the plain list shows them newest first among the other runs,
    ``variants=false`` a sweep by its best variant alone. On SQLite and PostgreSQL."""
    from cryptomon.config import DatabaseConfig
    from cryptomon.store.db import Database

    ids = await stored_sweep(db_url, [0.5, 1.0, 2.0, 4.0], plain_before=2)
    await stored_runs(db_url, 1, report=False)  # a run after the sweep
    database = Database(DatabaseConfig(url=db_url))
    await database.start()
    try:
        api = await start_api(backtests=BacktestRuns(db=database))
        await _check_sweep_listing(api, ids)
    finally:
        await database.stop()


async def _check_sweep_listing(api: Any, ids: list[int]) -> None:
    sweep = ids[0]
    assert sorted(ids) == [3, 4, 5, 6]
    status, page = await api.get(f"/api/v1/backtests?sweep={sweep}")
    assert status == 200, page
    items = page["items"]
    assert [r["id"] for r in items] == ids
    assert [r["sweep_rank"] for r in items] == [1, 2, 3, 4]
    assert {(r["sweep_id"], r["sweep_metric"]) for r in items} == {(sweep, "pnl")}
    assert sorted(r["overrides"][SL] for r in items) == [0.5, 1.0, 2.0, 4.0]
    pnls = [r["summary"]["pnl"] for r in items]
    assert pnls == sorted(pnls, reverse=True)
    assert page["next_after_rank"] is None

    status, first = await api.get(f"/api/v1/backtests?sweep={sweep}&limit=3")
    assert [r["id"] for r in first["items"]] == ids[:3]
    assert first["next_after_rank"] == 3
    assert first["next_before"] is None
    _, rest = await api.get(f"/api/v1/backtests?sweep={sweep}&limit=3&after_rank=3")
    assert [r["id"] for r in rest["items"]] == ids[3:]
    assert rest["next_after_rank"] is None

    _, everything = await api.get("/api/v1/backtests")
    assert [r["id"] for r in everything["items"]] == [7, 6, 5, 4, 3, 2, 1]
    plain = {r["id"]: r for r in everything["items"]}
    assert plain[7]["sweep_id"] is None
    assert plain[7]["sweep_rank"] is None
    assert plain[7]["overrides"] == {}
    _, grouped = await api.get("/api/v1/backtests?variants=false")
    assert [r["id"] for r in grouped["items"]] == [7, sweep, 2, 1]
    _, paged = await api.get("/api/v1/backtests?variants=false&limit=2")
    assert [r["id"] for r in paged["items"]] == [7, sweep]
    _, paged = await api.get(f"/api/v1/backtests?variants=false&limit=2&before={sweep}")
    assert [r["id"] for r in paged["items"]] == [2, 1]

    # no such sweep: 404 naming it (an empty 200 read as a sweep of no variants); a run id
    # of a later variant names the sweep it belongs to, a single run says it is none
    status, body = await api.get("/api/v1/backtests?sweep=999")
    assert status == 404, body
    assert body["error"]["message"] == "no sweep 999 (no backtest run 999)"
    status, body = await api.get(f"/api/v1/backtests?sweep={ids[1]}")
    assert status == 404, body
    assert body["error"]["message"] == (
        f"no sweep {ids[1]}: backtest run {ids[1]} is variant 2 of sweep {sweep} "
        f"(GET /api/v1/backtests?sweep={sweep})"
    )
    status, body = await api.get("/api/v1/backtests?sweep=1")
    assert status == 404, body
    assert body["error"]["message"] == "no sweep 1: backtest run 1 is a single run, not a sweep"
    # past a sweep's last rank: an empty page, not an error
    status, empty = await api.get(f"/api/v1/backtests?sweep={sweep}&after_rank=4")
    assert (status, empty["items"], empty["next_after_rank"]) == (200, [], None)
    status, run = await api.get(f"/api/v1/backtests/{ids[1]}")
    assert status == 200
    assert (run["sweep_id"], run["sweep_rank"]) == (sweep, 2)
    assert f"--set={SL}=" in run["params"]["command"]
    for query, name in (
        (f"sweep={sweep}&before=5", "before"),
        ("after_rank=1", "after_rank"),
        ("sweep=0", "sweep"),
        (f"sweep={sweep}&variants=false", "variants"),
    ):
        status, body = await api.get(f"/api/v1/backtests?{query}")
        assert status == 422, (query, body)
        assert name in body["error"]["message"], body


@pytest.mark.asyncio
async def test_openapi_documents_the_sweep_filter(start_api: StartApi, database: Any) -> None:
    """The list route's parameters in /api/v1/openapi.json include the sweep filter, its
    rank paging and the grouping switch."""
    api = await start_api(backtests=BacktestRuns(db=database))
    status, doc = await api.get("/api/v1/openapi.json")
    assert status == 200
    params = {p["name"]: p for p in doc["paths"]["/api/v1/backtests"]["get"]["parameters"]}
    assert {"limit", "before", "sweep", "after_rank", "variants"} <= set(params)
    assert "rank" in params["sweep"]["description"]
