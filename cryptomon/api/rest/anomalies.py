"""Stored anomalies with filters and keyset pagination, and their statistics."""

from __future__ import annotations

from cryptomon.api import models as m
from cryptomon.api.rest.paging import check_limit, invalid_query
from cryptomon.api.routing import Call, RouteTable
from cryptomon.api.services import QUERIES

table = RouteTable("anomalies")


_QUERY_FIELDS = ("cursor", "since", "until", "min_severity")


@table.get(
    "/api/v1/anomalies",
    scope="read",
    public=True,
    response=m.AnomalyPage,
    query=m.AnomalyQuery,
    needs=(QUERIES,),
    cache_group="anomalies",
    description="Newest first. Keyset pagination: pass next_cursor back as cursor.",
)
async def list_anomalies(call: Call) -> bytes:
    """Stored anomalies, newest first, filtered and paginated."""
    q: m.AnomalyQuery = call.query
    check_limit(call, q.limit)
    try:
        # the page's JSON as the store makes it from the driver's rows (the AnomalyOut
        # fields, no per-row validation: tests check the shape against AnomalyPage); a
        # reader thread serializes it (SQLite file, PostgreSQL) and the loop only writes bytes
        return await call.service(QUERIES).anomaly_page_json(
            exchange=q.exchange,
            symbol=q.symbol,
            kind=q.kind,
            min_severity=q.min_severity,
            since=q.since,
            until=q.until,
            limit=q.limit,
            cursor=q.cursor,
        )
    except ValueError as exc:  # the store names the argument (e.g. a malformed cursor)
        raise invalid_query(exc, _QUERY_FIELDS) from None


@table.get(
    "/api/v1/anomalies/stats",
    scope="read",
    public=True,
    response=m.AnomalyStatsOut,
    query=m.AnomalyStatsQuery,
    needs=(QUERIES,),
    cache_group="anomalies",
)
async def anomaly_stats(call: Call) -> m.AnomalyStatsOut:
    """Counts of stored anomalies by kind and severity."""
    q: m.AnomalyStatsQuery = call.query
    try:
        stats = await call.service(QUERIES).anomaly_stats(since=q.since, until=q.until)
    except ValueError as exc:
        raise invalid_query(exc, _QUERY_FIELDS) from None
    return m.AnomalyStatsOut.model_validate(dict(stats))
