"""The anomaly list's page statement and parameters (:meth:`Queries.anomalies
<cryptomon.store.queries.Queries.anomalies>`): one statement per combination of filters,
built once, with its values as bound parameters."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, and_, bindparam, or_, select

from cryptomon.events import Severity
from cryptomon.store.models import AnomalyRow
from cryptomon.store.pages import as_time, decode_cursor

ITEM_COLUMNS = tuple(c for c in AnomalyRow.__table__.c if c.name != "severity_rank")


@functools.cache
def anomaly_page(present: frozenset[str], *, items: bool = False) -> Select[Any]:
    """The page statement for one combination of filters (bound parameters named like the
    keys of ``present``), built once: the list route's requests differ in values, rarely in
    shape. ``items``: only the columns a page item shows (:data:`ITEM_COLUMNS`, in the
    table's order), else every column."""
    t = AnomalyRow.__table__
    stmt = select(*ITEM_COLUMNS) if items else select(t)
    for name in ("exchange", "symbol", "kind"):
        if name in present:
            stmt = stmt.where(t.c[name] == bindparam(name))
    if "rank" in present:
        stmt = stmt.where(t.c.severity_rank >= bindparam("rank"))
    if "since" in present:
        stmt = stmt.where(t.c.ts_detected >= bindparam("since", type_=t.c.ts_detected.type))
    if "until" in present:
        stmt = stmt.where(t.c.ts_detected <= bindparam("until", type_=t.c.ts_detected.type))
    if "c_ts" in present:
        c_ts = bindparam("c_ts", type_=t.c.ts_detected.type)
        c_id = bindparam("c_id", type_=t.c.id.type)
        # the redundant ``<=`` bounds the index range: the OR alone is a filter, and a later
        # page walked the index from the newest row down to the cursor
        after = or_(t.c.ts_detected < c_ts, and_(t.c.ts_detected == c_ts, t.c.id < c_id))
        stmt = stmt.where(t.c.ts_detected <= c_ts, after)
    order = (t.c.ts_detected.desc(), t.c.id.desc())
    return stmt.order_by(*order).limit(bindparam("limit", type_=Integer()))


def anomaly_params(
    *,
    exchange: str | None,
    symbol: str | None,
    kind: str | None,
    min_severity: str | Severity | None,
    since: float | datetime | None,
    until: float | datetime | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """The bound parameters of a page of ``limit`` rows (one more is fetched to know whether
    there is a next page); ValueError naming a bad severity, time range or cursor."""
    params: dict[str, Any] = {"limit": limit + 1}
    if exchange is not None:
        params["exchange"] = exchange
    if symbol is not None:
        params["symbol"] = symbol
    if kind is not None:
        params["kind"] = kind
    if min_severity is not None:
        try:
            params["rank"] = Severity(str(min_severity).lower()).rank
        except ValueError:
            allowed = ", ".join(s.value for s in Severity)
            raise ValueError(
                f"min_severity must be one of {allowed}, got {min_severity!r}"
            ) from None
    lo, hi = as_time(since, "since"), as_time(until, "until")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"since ({since}) must not be after until ({until})")
    if lo is not None:
        params["since"] = lo
    if hi is not None:
        params["until"] = hi
    if cursor:
        params["c_ts"], params["c_id"] = decode_cursor(cursor)
    return params
