"""The anomaly list's page statement and parameters (:meth:`Queries.anomalies
<cryptomon.store.queries.Queries.anomalies>`): one statement per combination of filters,
built once, with its values as bound parameters."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    LargeBinary,
    Select,
    aggregate_order_by,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    or_,
    select,
)

from cryptomon.events import Severity
from cryptomon.store.models import AnomalyRow
from cryptomon.store.pages import as_time, decode_cursor

ROW_COLUMNS = tuple(c for c in AnomalyRow.__table__.c if c.name != "item")
"""The columns of a row as :meth:`Queries.anomalies` reads it (not the stored JSON item)."""
ITEM_COLUMNS = tuple(c for c in ROW_COLUMNS if c.name != "severity_rank")
"""The columns a page item shows, in the table's order (the keys of the ``item`` JSON)."""


@functools.cache
def anomaly_page(present: frozenset[str]) -> Select[Any]:
    """The page statement for one combination of filters (bound parameters named like the
    keys of ``present``), built once: the list route's requests differ in values, rarely in
    shape; the row's columns (:data:`ROW_COLUMNS`)."""
    return _page(present, ROW_COLUMNS)


def _page(present: frozenset[str], columns: tuple[Any, ...]) -> Select[Any]:
    t = AnomalyRow.__table__
    stmt = select(*columns)
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


@functools.cache
def joined_page(present: frozenset[str], dialect: str, *, ordered: bool) -> Select[Any]:
    """The page of :func:`anomaly_page` as ONE row, joined by ``dialect``'s database: (the
    stored ``item`` JSON of the first ``shown`` rows joined with commas in page order, how
    many rows the ``limit`` + 1 walk found, ``ts_detected`` and ``id`` of the ``shown``-th
    row: the next page's cursor when there are more). The walk's rows are numbered in page
    order: on PostgreSQL by the window's order (the walk is in that order already: no sort);
    on SQLite in the order they come from the walk (a window with an order would sort them
    again). ``ordered``: the join has the page order in the aggregate (PostgreSQL, SQLite
    3.44+); else (older SQLite) it visits the numbered rows in the walk's order, as SQLite's
    aggregate does over a subquery it does not flatten (tests prove both orders)."""
    t = AnomalyRow.__table__
    page = _page(present, (t.c.item, t.c.ts_detected, t.c.id)).subquery("page")
    order = (page.c.ts_detected.desc(), page.c.id.desc())
    number = func.row_number().over(order_by=None if dialect == "sqlite" else order)
    rows = select(page.c.item, page.c.ts_detected, page.c.id, number.label("rn")).subquery()
    shown = bindparam("shown", type_=Integer())
    concat = func.group_concat if dialect == "sqlite" else func.string_agg
    joined: Any = concat(rows.c.item, literal_column("','"))
    if ordered:
        joined = aggregate_order_by(joined, rows.c.ts_detected.desc(), rows.c.id.desc())
    last = rows.c.rn == shown
    joined = joined.filter(rows.c.rn <= shown)
    if dialect == "sqlite":  # its UTF-8 bytes as they are: no decoding to text and back
        joined = cast(joined, LargeBinary)
    return select(
        joined,
        func.count(),
        func.max(rows.c.ts_detected).filter(last),
        func.max(rows.c.id).filter(last),
    )


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
