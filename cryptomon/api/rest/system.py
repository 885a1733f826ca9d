"""Liveness, readiness, status and feed health."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from cryptomon.api import models as m
from cryptomon.api.routing import Call, RouteTable
from cryptomon.api.services import CLOCK, DATABASE, FEEDS, HUB, TRADING, WRITER

table = RouteTable("system")
_DB_PING_TIMEOUT_S = 2.0


@table.get("/health", scope=None, response=m.Health)
async def health(call: Call) -> m.Health:
    """Liveness: the process answers."""
    return m.Health()


def feed_states(health: Mapping[str, Any]) -> list[str]:
    """Every ``status``/``state`` string found in a feed-health mapping (any nesting)."""
    found: list[str] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, Mapping):
            for k, v in obj.items():
                if k in ("status", "state") and isinstance(v, str):
                    found.append(v)
                else:
                    walk(v)
        elif isinstance(obj, list | tuple):
            for item in obj:
                walk(item)

    walk(health)
    return found


@table.get(
    "/ready",
    scope=None,
    response=m.Ready,
    errors=(503,),
    description="200 when feeds are live, the database answers and takes writes and trading "
    "is reconciled; "
    "503 (same body) otherwise. A subsystem that is not configured is not checked.",
)
async def ready(call: Call) -> web.Response:
    """Readiness: feeds live, database reachable, trading reconciled."""
    app = call.request.app
    checks: dict[str, m.Check] = {}
    db = app.get(DATABASE)
    if db is not None:
        try:
            ok = bool(await asyncio.wait_for(db.ping(), _DB_PING_TIMEOUT_S))
            checks["database"] = m.Check(ok=ok, detail="" if ok else "ping failed")
        except Exception as exc:
            checks["database"] = m.Check(ok=False, detail=f"unreachable: {type(exc).__name__}")
    writer = app.get(WRITER)
    if writer is not None and checks.get("database", m.Check(ok=True)).ok:
        # a database that answers reads may still refuse every write (a SQLite file locked
        # by another process, a full disk, a read-only file): the writer knows
        # /ready needs no token: the database's own words (hostnames, tables, SQL) stay in
        # the log and the read-scoped /api/v1/status
        failing = writer.stats().get("outage_s") or 0.0
        if failing > 0:
            checks["database"] = m.Check(
                ok=False,
                detail=f"writes failing for {failing:.0f} s (the error: GET /api/v1/status, "
                "store.last_error, or the log's store.write_retry)",
            )
    feeds = app.get(FEEDS)
    if feeds is not None:
        states = feed_states(feeds.health())
        bad = sorted({s for s in states if s != "live"})
        checks["feeds"] = m.Check(
            ok=not bad,
            detail=("not live: " + ", ".join(bad)) if bad else ("" if states else "no feeds"),
        )
    trading = app.get(TRADING)
    if trading is not None:
        rec = bool(trading.reconciled)
        checks["trading"] = m.Check(ok=rec, detail="" if rec else "reconciling")
    body = m.Ready(ready=all(c.ok for c in checks.values()), checks=checks)
    return web.Response(
        status=200 if body.ready else 503,
        body=body.model_dump_json().encode(),
        content_type="application/json",
    )


@table.get("/api/v1/status", scope="read", response=m.Status)
async def status(call: Call) -> m.Status:
    """Version, uptime, components, hub statistics and feed health."""
    ctx = call.ctx
    feeds = call.request.app.get(FEEDS)
    writer = call.request.app.get(WRITER)
    return m.Status(
        version=ctx.version,
        uptime_s=round(call.service(CLOCK).monotonic() - ctx.started_monotonic, 3),
        components=ctx.components(),
        hub=call.service(HUB).stats(),
        feeds=dict(feeds.health()) if feeds is not None else None,
        websocket=ctx.ws_stats(),
        store=dict(writer.stats()) if writer is not None else None,
    )


@table.get("/api/v1/feeds", scope="read", response=m.Feeds, needs=(FEEDS,))
async def feeds(call: Call) -> m.Feeds:
    """Health per exchange and channel."""
    return m.Feeds(feeds=dict(call.service(FEEDS).health()))
