"""Stored backtest runs (``crypto-monitor backtest``): the list, one run, its HTML report."""

from __future__ import annotations

import re

from aiohttp import web

from cryptomon.api import models_backtest as mb
from cryptomon.api.errors import ApiError
from cryptomon.api.routing import Call, RouteTable
from cryptomon.api.services import BACKTESTS

table = RouteTable("backtests")
_DIGITS = re.compile(r"[0-9]{1,19}")


def _run_id(call: Call) -> int:
    raw = call.request.match_info["run_id"]
    # ASCII digits only (str.isdigit also takes '²', which int() refuses) and within the
    # database's 64-bit integer (a larger id is no run, and SQLite cannot even bind it)
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= mb.MAX_RUN_ID:
        raise ApiError(
            422,
            f"invalid path: run_id must be a positive integer up to {mb.MAX_RUN_ID}, got {raw!r}",
            details={"fields": [{"field": "path.run_id", "message": "a positive integer"}]},
        )
    return int(raw)


@table.get(
    "/api/v1/backtests",
    scope="read",
    response=mb.BacktestPage,
    query=mb.BacktestQuery,
    needs=(BACKTESTS,),
    description="Newest first; pass next_before back as before for the next page. With "
    "sweep: that sweep's variants, best first; pass next_after_rank back as after_rank "
    "(404 when no sweep has that id).",
)
async def list_backtests(call: Call) -> mb.BacktestPage:
    """Stored backtest runs with their summaries, newest first (or a sweep's, ranked)."""
    q: mb.BacktestQuery = call.query
    rows = await call.service(BACKTESTS).list_runs(
        limit=q.limit,
        before=q.before,
        sweep=q.sweep,
        after_rank=q.after_rank,
        variants=q.variants,
    )
    items = [mb.BacktestRunOut.model_validate(dict(r)) for r in rows]
    full = len(items) == q.limit
    if q.sweep is not None and not items and q.after_rank is None:
        await _no_sweep(call, q.sweep)
    if q.sweep is not None:
        next_rank = items[-1].sweep_rank if full else None
        return mb.BacktestPage(items=items, next_before=None, next_after_rank=next_rank)
    return mb.BacktestPage(items=items, next_before=items[-1].id if full else None)


async def _no_sweep(call: Call, sweep: int) -> None:
    """404 for ``?sweep=`` naming no sweep: what the id is instead (a later variant's run id
    names its sweep, the best variant's)."""
    run = await call.service(BACKTESTS).get_run(sweep)
    if run is None:
        message = f"no sweep {sweep} (no backtest run {sweep})"
    elif run.get("sweep_id") is not None:
        message = (
            f"no sweep {sweep}: backtest run {sweep} is variant {run['sweep_rank']} of sweep "
            f"{run['sweep_id']} (GET /api/v1/backtests?sweep={run['sweep_id']})"
        )
    else:
        message = f"no sweep {sweep}: backtest run {sweep} is a single run, not a sweep"
    raise ApiError(404, message, details={"sweep": sweep})


@table.get(
    "/api/v1/backtests/{run_id}",
    scope="read",
    response=mb.BacktestRunDetail,
    needs=(BACKTESTS,),
    errors=(422,),
    description="404 for an unknown run.",
)
async def get_backtest(call: Call) -> mb.BacktestRunDetail:
    """One stored run: parameters, summary, breakdowns and trades."""
    run_id = _run_id(call)
    run = await call.service(BACKTESTS).get_run(run_id)
    if run is None:
        raise ApiError(404, f"no backtest run {run_id}", details={"run_id": run_id})
    return mb.BacktestRunDetail.model_validate(dict(run))


@table.get(
    "/api/v1/backtests/{run_id}/report",
    scope="read",
    response=None,
    media_type="text/html",
    needs=(BACKTESTS,),
    errors=(422,),
    description="text/html, self-contained (plotly.js inlined); 404 when the run has none.",
)
async def get_backtest_report(call: Call) -> web.Response:
    """The run's HTML report (runs made with --report; a sweep's variants have none)."""
    run_id = _run_id(call)
    html = await call.service(BACKTESTS).report(run_id)
    if html is None:
        raise ApiError(
            404,
            f"backtest run {run_id} has no report (unknown run, or run without --report: "
            "its params.command with --report makes one)",
            details={"run_id": run_id},
        )
    return web.Response(text=html, content_type="text/html", charset="utf-8")
