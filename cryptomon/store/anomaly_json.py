"""The anomaly list's page as JSON bytes (:meth:`Queries.anomaly_page_json
<cryptomon.store.queries.Queries.anomaly_page_json>`), joined by the database from the JSON
item every anomaly row stores.

Anomalies are never updated once written, so each row's item of the list (the columns a page
shows, times as epoch seconds) is serialized once, when it is written (:func:`anomaly_item`,
``anomalies.item``), instead of on every read. A page is then ONE row of one statement per
dialect and filter shape (:func:`~cryptomon.store.anomaly_queries.joined_page`: the items
joined in page order, how many rows the ``limit`` + 1 walk found, the last page row's time
and id for the cursor), compiled once and sent as driver SQL: with the stdlib SQLite driver
one step of the statement (the driver gives up the GIL for every step, and a reader thread
then took it back once per page row). The bytes are those of
``orjson.dumps({"items": rows, "next_cursor": cursor})`` with the rows and cursor of
:meth:`Queries.anomalies <cryptomon.store.queries.Queries.anomalies>` (tested on both
databases): :func:`anomaly_item` gives a value as the database gives it back (a float column's
integer as a float; SQLite's ``-0.0`` as ``0.0``, as SQLite stores it).
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, DateTime, Dialect, Double
from sqlalchemy import exc as sa_exc

from cryptomon.store.anomaly_queries import ITEM_COLUMNS, joined_page
from cryptomon.store.pages import encode_cursor
from cryptomon.store.types import epoch

_Convert = Callable[[Any], Any]
# SQLite 3.44 has ORDER BY inside an aggregate; before, the join follows its subquery's order
SQLITE_ORDERED_CONCAT = sqlite3.sqlite_version_info >= (3, 44)


def _kind(col: Any) -> str:
    impl = getattr(col.type, "impl_instance", col.type)
    if isinstance(impl, DateTime):
        return "time"
    if isinstance(impl, Double):
        return "float"
    return "json" if col.name == "reasons" else "plain"


_PLAN = tuple((c.name, _kind(c)) for c in ITEM_COLUMNS)


def anomaly_item(row: Mapping[str, Any], *, dialect: str) -> str:
    """The JSON text of one anomaly's page item: ``row``'s :data:`ITEM_COLUMNS` (times as
    datetimes, ``reasons`` a list or its JSON text) as ``dialect``'s database gives them back
    to :meth:`Queries.anomalies`, serialized by orjson. What the store writes in
    ``anomalies.item`` (the writer, and migration 0011 for older rows)."""
    sqlite = dialect == "sqlite"
    item: dict[str, Any] = {}
    for name, kind in _PLAN:
        value = row[name]
        if value is not None:
            if kind == "time":
                value = epoch(value)
            elif kind == "float":
                # SQLite keeps a whole float as an integer: -0.0 comes back as 0.0
                value = float(value) + 0.0 if sqlite else float(value)
            elif kind == "json" and isinstance(value, str | bytes):
                value = orjson.loads(value)
        item[name] = value
    try:
        return orjson.dumps(item).decode()
    except orjson.JSONEncodeError:  # a lone surrogate in a reason: escaped, as JSON allows
        return json.dumps(item, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """One filter shape's compiled page statement: its SQL text and how a request's bound
    values become the driver's parameters (positional or named, bind processors applied)."""

    sql: str
    positions: tuple[str, ...] | None  # qmark/format dialects: the parameter names in order
    compiled: Any
    binds: tuple[tuple[str, _Convert], ...]
    names: tuple[str, ...] | None  # the binds when they are exactly the keys of ``present``

    def parameters(self, params: dict[str, Any]) -> Sequence[Any] | dict[str, Any]:
        if self.names is None:
            values = self.compiled.construct_params(params)
        else:  # (every bind is a value of ``params``: no need of construct_params' work)
            values = {name: params[name] for name in self.names}
        for name, process in self.binds:
            value = values[name]
            if value is not None:
                values[name] = process(value)
        if self.positions is None:
            return values
        return tuple(values[name] for name in self.positions)


@functools.lru_cache(maxsize=256)
def driver_statement(dialect: Dialect, present: frozenset[str]) -> DriverStatement:
    """The joined page statement of ``present`` (the bound values' names) compiled for
    ``dialect`` (built once)."""
    ordered = dialect.name != "sqlite" or SQLITE_ORDERED_CONCAT
    stmt = joined_page(present, dialect.name, ordered=ordered)
    compiled = stmt.compile(dialect=dialect)
    binds = []
    for name, bind in compiled.binds.items():
        process = bind.type.bind_processor(dialect)
        if process is not None:
            binds.append((name, process))
    positions = tuple(compiled.positiontup or ()) if compiled.positional else None
    # PostgreSQL's statement binds exactly the request's values; SQLite's adds its own
    # (LIMIT's offset): construct_params fills those in
    names: tuple[str, ...] | None = tuple(compiled.binds)
    if set(compiled.binds) != present:
        names = None
    return DriverStatement(compiled.string, positions, compiled, tuple(binds), names)


def driver_row(conn: Connection, sql: str, params: Any) -> Any:
    """The one row of ``sql`` from a driver cursor of ``conn`` directly, without SQLAlchemy's
    result (with psycopg, its description alone made a column object per column and access;
    ~40-100 us of a threaded page). What an execution through SQLAlchemy keeps: the
    ``before_cursor_execute`` listeners see the statement, a driver error is raised as
    SQLAlchemy's (an outage is a ``TemporaryError`` to the caller) and a disconnect
    invalidates the connection (not to be reused)."""
    raw = conn.connection.dbapi_connection
    if raw is None:
        raise sa_exc.ResourceClosedError("the read's connection is closed")
    dbapi = conn.dialect.loaded_dbapi
    cursor = raw.cursor()
    try:
        conn.dispatch.before_cursor_execute(conn, cursor, sql, params, None, False)
        cursor.execute(sql, params)
        return cursor.fetchone()
    except dbapi.Error as exc:
        disconnect = conn.dialect.is_disconnect(exc, raw, cursor)
        error = sa_exc.DBAPIError.instance(
            sql, params, exc, dbapi.Error, connection_invalidated=disconnect
        )
        if disconnect:
            conn.invalidate(exc)
        raise error from exc
    finally:
        cursor.close()


def page_body(row: Sequence[Any], limit: int) -> bytes:
    """The page's JSON from the joined statement's row: ``{"items":[...],"next_cursor":...}``
    with orjson's separators and key order. The joined items are text, or already its UTF-8
    bytes (PostgreSQL's loop reads); the page is put together in one copy."""
    joined, found, last_ts, last_id = row
    if joined.__class__ is not bytes:
        joined = joined.encode() if joined else b""
    if found <= limit:
        return b"".join((b'{"items":[', joined, b'],"next_cursor":null}'))
    if isinstance(last_ts, str):  # SQLite's text of the time
        last_ts = datetime.fromisoformat(last_ts)
    if last_ts.tzinfo is None:
        last_ts = last_ts.replace(tzinfo=UTC)
    cursor = encode_cursor(last_ts, last_id).encode()
    return b"".join((b'{"items":[', joined, b'],"next_cursor":"', cursor, b'"}'))
