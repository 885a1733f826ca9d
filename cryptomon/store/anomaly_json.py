"""The anomaly list's page as JSON bytes (:meth:`Queries.anomaly_page_json
<cryptomon.store.queries.Queries.anomaly_page_json>`), made from the driver's rows.

The page statement of :func:`~cryptomon.store.anomaly_queries.anomaly_page` (with only the
columns an item shows) is compiled once per dialect and filter shape and sent with
``exec_driver_sql`` (SQLAlchemy's events, error wrapping and pool invalidation still apply),
but its rows skip SQLAlchemy's typed result processing: a row is zipped with the column names
and only the columns that need it are converted, by the column type's result processor
(planned once per dialect and column types) and, for times, to epoch seconds in the same
step; the page is serialized by orjson right away. The bytes are those of
``orjson.dumps({"items": rows, "next_cursor": cursor})`` with the rows and cursor of
:meth:`Queries.anomalies <cryptomon.store.queries.Queries.anomalies>`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import DateTime, Dialect

from cryptomon.store.anomaly_queries import ITEM_COLUMNS, anomaly_page
from cryptomon.store.pages import encode_cursor
from cryptomon.store.types import UTCDateTime

_Convert = Callable[[Any], Any]
_NAMES = tuple(c.name for c in ITEM_COLUMNS)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)


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
    """The item page statement of ``present`` compiled for ``dialect`` (built once)."""
    compiled = anomaly_page(present, items=True).compile(dialect=dialect)
    binds = []
    for name, bind in compiled.binds.items():
        process = bind.type.bind_processor(dialect)
        if process is not None:
            binds.append((name, process))
    positions = tuple(compiled.positiontup or ()) if compiled.positional else None
    return DriverStatement(compiled.string, positions, compiled, tuple(binds))


def sqlite_epoch(text: str) -> float:
    """SQLite's text of a :class:`UTCDateTime` as epoch seconds: what SQLAlchemy's reading
    (``datetime.fromisoformat``, naive taken as UTC) then ``.timestamp()`` give, without the
    aware datetime (the same division of whole microseconds by 10**6)."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return (value - _NAIVE_EPOCH) / _SECOND
    return value.timestamp()


def _epoch(process: _Convert | None) -> _Convert:
    """Epoch seconds of a time column's driver value: an aware datetime's instant directly
    (the same float in any zone, so the column type's conversion to UTC is skipped), else
    through the column type's result processor."""
    if process is None:
        return datetime.timestamp

    def convert(value: Any) -> float:
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.timestamp()
        return float(process(value).timestamp())

    return convert


@dataclass(frozen=True, slots=True)
class RowPlan:
    """The item columns to convert, each with its conversion (result processor; times then
    as epoch seconds), and how ``ts_detected`` becomes the cursor's datetime."""

    convert: tuple[tuple[str, _Convert], ...]
    cursor_time: _Convert | None
    cursor_at: int


@functools.lru_cache(maxsize=256)
def row_plan(dialect: Dialect, coltypes: tuple[Any, ...]) -> RowPlan:
    """The :class:`RowPlan` of the item columns as the driver describes them (``coltypes``:
    the cursor description's type codes), planned once."""
    convert: list[tuple[str, _Convert]] = []
    cursor_time = None
    for col, coltype in zip(ITEM_COLUMNS, coltypes, strict=True):
        process = col.type.dialect_impl(dialect).result_processor(dialect, coltype)
        if col.name == "ts_detected":
            cursor_time = process
        if isinstance(col.type, UTCDateTime) and dialect.name == "sqlite":
            convert.append((col.name, sqlite_epoch))
        elif isinstance(getattr(col.type, "impl_instance", col.type), DateTime):
            convert.append((col.name, _epoch(process)))
        elif process is not None:
            convert.append((col.name, process))
    return RowPlan(tuple(convert), cursor_time, _NAMES.index("ts_detected"))


def _type_codes(cursor: Any) -> tuple[Any, ...]:
    """The type codes of the cursor description's columns; from psycopg's result directly
    (its ``description`` makes a column object per column on every access)."""
    res = getattr(cursor, "pgresult", None)
    if res is not None:
        return tuple(res.ftype(i) for i in range(res.nfields))
    return tuple(d[1] for d in cursor.description)


def page_json(dialect: Dialect, result: Any, limit: int) -> bytes:
    """The JSON page of ``result`` (the item page statement's rows, ``limit`` + 1 at most)."""
    plan = row_plan(dialect, _type_codes(result.cursor))
    rows = result.all()
    items = [dict(zip(_NAMES, row, strict=True)) for row in rows[:limit]]
    for name, process in plan.convert:
        for item in items:
            value = item[name]
            if value is not None:
                item[name] = process(value)
    next_cursor = None
    if len(rows) > limit:
        ts = rows[limit - 1][plan.cursor_at]
        if plan.cursor_time is not None:
            ts = plan.cursor_time(ts)
        next_cursor = encode_cursor(ts, items[-1]["id"])
    return orjson.dumps({"items": items, "next_cursor": next_cursor})
