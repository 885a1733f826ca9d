"""The anomaly list's page as JSON bytes (:meth:`Queries.anomaly_page_json
<cryptomon.store.queries.Queries.anomaly_page_json>`), made from the driver's rows.

The page statement of :func:`~cryptomon.store.anomaly_queries.anomaly_page` is compiled once
per dialect and filter shape and sent with ``exec_driver_sql`` (the same SQL text and
parameters, and SQLAlchemy's events, error wrapping and pool invalidation still apply), but
its rows skip SQLAlchemy's typed result processing: each column's result processor, planned
once per dialect and column types, runs only on the columns that have one, datetimes become
epoch seconds in the same pass and the page is serialized by orjson right away. The bytes
are those of ``orjson.dumps({"items": rows, "next_cursor": cursor})`` with the rows and
cursor of :meth:`Queries.anomalies <cryptomon.store.queries.Queries.anomalies>`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import DateTime, Dialect

from cryptomon.store.anomaly_queries import anomaly_page
from cryptomon.store.models import AnomalyRow
from cryptomon.store.pages import encode_cursor

_HIDDEN = frozenset({"event_key", "severity_rank"})  # as pages.plain_rows drops them
_COLUMNS = tuple(AnomalyRow.__table__.c)
_Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """One filter shape's compiled page statement: its SQL text and how a request's bound
    values become the driver's parameters (positional or named, bind processors applied)."""

    sql: str
    positions: tuple[str, ...] | None  # qmark/format dialects: the parameter names in order
    compiled: Any
    binds: tuple[tuple[str, _Convert], ...]

    def parameters(self, params: dict[str, Any]) -> Sequence[Any] | dict[str, Any]:
        values = self.compiled.construct_params(params)
        for name, process in self.binds:
            value = values[name]
            if value is not None:
                values[name] = process(value)
        if self.positions is None:
            return values
        return tuple(values[name] for name in self.positions)


@functools.lru_cache(maxsize=256)
def driver_statement(dialect: Dialect, present: frozenset[str]) -> DriverStatement:
    """The page statement of ``present`` compiled for ``dialect`` (built once)."""
    compiled = anomaly_page(present).compile(dialect=dialect)
    binds = []
    for name, bind in compiled.binds.items():
        process = bind.type.bind_processor(dialect)
        if process is not None:
            binds.append((name, process))
    positions = tuple(compiled.positiontup or ()) if compiled.positional else None
    return DriverStatement(compiled.string, positions, compiled, tuple(binds))


@dataclass(frozen=True, slots=True)
class RowPlan:
    """How a driver row becomes a page item: the kept columns' names and positions, the
    result processors to run (datetimes then as epoch seconds), ``ts_detected``'s and
    ``id``'s positions for the cursor."""

    names: tuple[str, ...]
    keep: tuple[int, ...]
    convert: tuple[tuple[int, _Convert], ...]
    cursor_time: tuple[int, _Convert | None]
    cursor_id: int


def _epoch(process: _Convert | None) -> _Convert:
    if process is None:
        return datetime.timestamp
    return lambda value: process(value).timestamp()


@functools.lru_cache(maxsize=256)
def row_plan(dialect: Dialect, coltypes: tuple[Any, ...]) -> RowPlan:
    """The :class:`RowPlan` of the page statement's columns as the driver describes them
    (``coltypes``: the cursor description's type codes), built once."""
    convert: list[tuple[int, _Convert]] = []
    names, keep = [], []
    cursor_time: tuple[int, _Convert | None] = (-1, None)
    for i, (col, coltype) in enumerate(zip(_COLUMNS, coltypes, strict=True)):
        process = col.type.dialect_impl(dialect).result_processor(dialect, coltype)
        if col.name == "ts_detected":
            cursor_time = (i, process)
        if col.name in _HIDDEN:
            continue
        names.append(col.name)
        keep.append(i)
        if isinstance(getattr(col.type, "impl_instance", col.type), DateTime):
            convert.append((i, _epoch(process)))
        elif process is not None:
            convert.append((i, process))
    cursor_id = [c.name for c in _COLUMNS].index("id")
    return RowPlan(tuple(names), tuple(keep), tuple(convert), cursor_time, cursor_id)


def page_json(dialect: Dialect, result: Any, limit: int) -> bytes:
    """The JSON page of ``result`` (the page statement's rows, ``limit`` + 1 at most)."""
    coltypes = tuple(d[1] for d in result.cursor.description)
    rows = result.all()
    plan = row_plan(dialect, coltypes)
    names, keep = plan.names, plan.keep
    items = []
    for row in rows[:limit]:
        values = list(row)
        for i, process in plan.convert:
            value = values[i]
            if value is not None:
                values[i] = process(value)
        items.append(dict(zip(names, [values[i] for i in keep], strict=True)))
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        at, to_time = plan.cursor_time
        ts = last[at] if to_time is None else to_time(last[at])
        next_cursor = encode_cursor(ts, last[plan.cursor_id])
    return orjson.dumps({"items": items, "next_cursor": next_cursor})
