"""Bulk writes of market data: candles (upsert), trades and book tops (``COPY`` on PostgreSQL,
multi-row ``INSERT`` statements on SQLite). Re-exported by :mod:`cryptomon.store.repos`."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from itertools import chain
from math import modf
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from cryptomon.events import BookTop, Candle, Trade
from cryptomon.store.types import utc


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """The dialect's INSERT (both have on_conflict_do_nothing / on_conflict_do_update)."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def insert_ignore(
    session: AsyncSession, table: Any, rows: list[dict[str, Any]], key: list[str]
) -> int:
    """Bulk INSERT ... ON CONFLICT (key) DO NOTHING."""
    if rows:
        stmt = dialect_insert(session, table).on_conflict_do_nothing(index_elements=key)
        await session.execute(stmt, rows)
    return len(rows)


TRADE_COLUMNS = (
    *("exchange", "symbol", "ts", "price", "amount", "side", "trade_id", "notional", "flag"),
)
BOOK_TOP_COLUMNS = (
    "exchange",
    "symbol",
    "ts",
    "bid",
    "bid_size",
    "ask",
    "ask_size",
    "spread",
    "spread_bps",
    "bid_depth",
    "ask_depth",
    "imbalance",
    "levels",
)
# PostgreSQL types of those columns, for binary COPY (4x cheaper than text on both ends).
COPY_TYPES: dict[str, tuple[str, ...]] = {
    "trades": (
        *("varchar", "varchar", "timestamptz", "float8", "float8", "varchar", "varchar"),
        *("float8", "varchar"),
    ),
    "book_tops": ("varchar", "varchar", "timestamptz", *("float8",) * 9, "int4"),
}


def candle_row(ev: Candle) -> dict[str, Any]:
    """A candle row from an exchange ``Candle`` event."""
    return {
        "exchange": ev.exchange,
        "symbol": ev.symbol,
        "interval": ev.interval,
        "open_time": utc(ev.start),
        "close_time": utc(ev.end),
        "open": ev.open,
        "high": ev.high,
        "low": ev.low,
        "close": ev.close,
        "volume": ev.volume,
        "trade_count": ev.trades,
        "buy_volume": None,
        "sell_volume": None,
        "closed": ev.closed,
        "source": "exchange",
    }


CANDLE_COLUMNS = (
    *("exchange", "symbol", "interval", "open_time", "close_time", "open", "high", "low"),
    *("close", "volume", "trade_count", "buy_volume", "sell_volume", "closed", "source"),
    "history",
)
CANDLE_KEY = CANDLE_COLUMNS[:4]
# the columns an upsert replaces when the new row wins (history is OR-ed, see upsert_candles)
_CANDLE_VALUES = CANDLE_COLUMNS[4:-1]
_CANDLE_TS = (CANDLE_COLUMNS.index("open_time"), CANDLE_COLUMNS.index("close_time"))


def _candle_conflict(*, sqlite: bool) -> str:
    """The candle upsert's conflict clause as SQLAlchemy compiles its Core form for the
    dialect (``case((wins, excluded.c), else_=candles.c)`` per value, ``history = old OR
    new``; the 'exchange' literal inlined): the rule of migration 0013."""
    wins = "(candles.source != 'exchange' OR excluded.source = 'exchange')"
    values = ", ".join(
        f"{c} = CASE WHEN {wins} THEN excluded.{c} ELSE candles.{c} END" for c in _CANDLE_VALUES
    )
    if sqlite:  # booleans are integers
        old, new, not_old = "candles.history = 1", "excluded.history = 1", "candles.history = 0"
    else:
        old, new, not_old = "candles.history", "excluded.history", "NOT candles.history"
    return (
        f" ON CONFLICT ({', '.join(CANDLE_KEY)}) DO UPDATE SET {values},"
        f" history = ({old} OR {new})"
        f" WHERE candles.source != 'exchange' OR excluded.source = 'exchange'"
        f" OR {new} AND {not_old}"
    )


SQLITE_CANDLE_CONFLICT = _candle_conflict(sqlite=True)
PG_CANDLE_CONFLICT = _candle_conflict(sqlite=False)
# PostgreSQL: rows per candle INSERT (16 values each, within its 65,535 parameters)
PG_ROWS_PER_INSERT = 1024


def latest_candles(
    rows: Iterable[dict[str, Any]],
) -> dict[tuple[str, str, str, datetime], dict[str, Any]]:
    """The rows by candle key, a key twice in the batch settled by the upsert's own rule
    (PostgreSQL refuses a key twice in one statement): a later row replaces an earlier one
    unless the earlier is the exchange's candle and the later is not (a market batch holds
    the venue's candle and, after it, the bar built from the same minute's trades), and
    ``history`` is sticky (``old OR new``)."""
    latest: dict[tuple[str, str, str, datetime], dict[str, Any]] = {}
    for r in rows:
        key = (r["exchange"], r["symbol"], r["interval"], r["open_time"])
        old = latest.get(key)
        if old is not None:
            if old.get("source") == "exchange" and r.get("source") != "exchange":
                if r.get("history") and not old.get("history"):
                    latest[key] = {**old, "history": True}
                continue
            if old.get("history") and not r.get("history"):
                latest[key] = {**r, "history": True}
                continue
        latest[key] = r
    return latest


def candle_tuples(rows: Iterable[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """:func:`latest_candles` as ``CANDLE_COLUMNS`` tuples, with the model's defaults for a
    missing ``closed`` (true), ``source`` (``trades``) or ``history`` (false)."""
    out: list[tuple[Any, ...]] = []
    append = out.append
    for r in latest_candles(rows).values():
        append(
            (
                *(r["exchange"], r["symbol"], r["interval"], r["open_time"], r["close_time"]),
                *(r["open"], r["high"], r["low"], r["close"], r["volume"]),
                *(r.get("trade_count"), r.get("buy_volume"), r.get("sell_volume")),
                *(r.get("closed", True), r.get("source", "trades"), r.get("history", False)),
            )
        )
    return out


async def upsert_candles(session: AsyncSession, rows: Iterable[dict[str, Any]]) -> int:
    """Upsert candle rows (``CandleRow`` columns). A row from the exchange (``source:
    exchange``) always wins; a row aggregated from trades never replaces an exchange row.

    ``history`` (downloaded or imported, kept by retention) is sticky whichever row wins:
    ``history = old OR new``. A history minute stays history when a live candle of the same
    minute replaces its values, and a live row becomes history when a download or import
    covers it (its values then replaced only if the new row wins).

    A key twice in ``rows``: the last row replaces the earlier ones (:func:`latest_candles`;
    PostgreSQL refuses a key twice in one statement). Multi-row ``INSERT ... ON CONFLICT DO
    UPDATE`` statements of up to 1,024 rows, the rest in halving sizes
    (:func:`statement_groups`), instead of one statement per row: on SQLite through
    :func:`sqlite_insert` (one GIL retake per statement next to a busy loop), on PostgreSQL
    one pipelined ``executemany`` per statement size (the server runs a statement per
    1,024 rows, not per row)."""
    if not isinstance(rows, Sequence):
        rows = list(rows)
    if not rows:
        return 0
    conn = await session.connection()
    if conn.dialect.name == "sqlite":
        return await sqlite_insert(
            conn,
            "candles",
            CANDLE_COLUMNS,
            rows,
            _CANDLE_TS,
            tail=SQLITE_CANDLE_CONFLICT,
            prepare=candle_tuples,
        )
    count, groups = await asyncio.to_thread(_pg_candle_statements, rows, PG_ROWS_PER_INSERT)
    for size, params in groups:
        sql = multirow_insert_sql("candles", CANDLE_COLUMNS, size, PG_CANDLE_CONFLICT, "%s")
        await conn.exec_driver_sql(sql, params)
    return count


def _pg_candle_statements(
    rows: Sequence[dict[str, Any]], per: int
) -> tuple[int, list[tuple[int, list[tuple[Any, ...]]]]]:
    """:func:`candle_tuples` (a naive time taken as UTC, as ``UTCDateTime`` binds it) grouped
    by :func:`statement_groups`."""
    tuples = candle_tuples(rows)
    at = _CANDLE_TS
    for n, row in enumerate(tuples):
        if row[at[0]].tzinfo is None or row[at[1]].tzinfo is None:
            values = list(row)
            for i in at:
                if values[i].tzinfo is None:
                    values[i] = values[i].replace(tzinfo=UTC)
            tuples[n] = tuple(values)
    return len(tuples), statement_groups(tuples, per)


def trade_tuple(ev: Trade, flag: str | None = None) -> tuple[Any, ...]:
    """A trades row in ``TRADE_COLUMNS`` order; ``flag`` as a FlaggedTrade's."""
    return (
        *(ev.exchange, ev.symbol, utc(ev.ts), ev.price, ev.amount, ev.side, ev.trade_id),
        *(ev.notional, flag),
    )


def book_top_tuple(ev: BookTop) -> tuple[Any, ...]:
    return (
        ev.exchange,
        ev.symbol,
        utc(ev.ts),
        ev.bid,
        ev.bid_size,
        ev.ask,
        ev.ask_size,
        ev.spread,
        ev.spread_bps,
        ev.bid_depth,
        ev.ask_depth,
        ev.imbalance,
        ev.levels,
    )


async def copy_rows(
    session: AsyncSession, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> int:
    """Bulk-insert tuples: PostgreSQL ``COPY ... FROM STDIN`` (binary) on the session's own
    connection (same transaction); SQLite multi-row INSERTs (:func:`sqlite_insert`).
    ``table`` is ``trades`` or ``book_tops`` and ``columns`` its ``*_COLUMNS``."""
    if not rows:
        return 0
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        pg: Any = raw.driver_connection
        cols = ", ".join(columns)
        sql = f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)"
        async with pg.cursor() as cur, cur.copy(sql) as copy:
            copy.set_types(list(COPY_TYPES[table]))
            write = copy.write_row
            for row in rows:
                await write(row)
        return len(rows)
    # SQLite: the rows become driver parameters in a worker thread and sqlite3 runs the
    # INSERTs in the connection's own thread: the event loop never converts or waits row by row
    return await sqlite_insert(conn, table, tuple(columns), rows, (columns.index("ts"),))


# Rows per INSERT statement on SQLite. sqlite3 gives up the GIL around every statement it
# steps, and an executemany steps one statement per row. Next to a busy event loop, taking the
# GIL back is a lottery: the loop releases and retakes it at every turn's select, so the
# writer's thread, whose wait keeps timing out against a GIL that changed hands, gets it only
# when it wins a race (measured 2026-12-05 on the idle 2-core machine: 1-230 ms per statement,
# a 5,000-row executemany 15-24 s). So a batch is as few statements as SQLite allows: up to
# 1,024 rows each (one SQL text, prepared once and cached by sqlite3; the rows left go in
# halving sizes, see sqlite_statements), fewer where the rows are wide for the library's
# bound-value limit (32,766 by default since 3.32; 999 before).
SQLITE_ROWS_PER_INSERT = 1024
_SQLITE_MAX_VALUES = sqlite3.connect(":memory:").getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


def sqlite_rows_per_insert(width: int, max_values: int = _SQLITE_MAX_VALUES) -> int:
    """Rows of ``width`` values in one SQLite INSERT (:data:`SQLITE_ROWS_PER_INSERT`, fewer
    where the rows are too wide for ``max_values`` bound values)."""
    return max(1, min(SQLITE_ROWS_PER_INSERT, max_values // width))


@functools.cache
def multirow_insert_sql(
    table: str, columns: tuple[str, ...], rows: int, tail: str = "", mark: str = "?"
) -> str:
    """``INSERT INTO table (columns) VALUES (?, ...), ... tail`` for ``rows`` rows (``mark``:
    the driver's placeholder)."""
    one = f"({', '.join([mark] * len(columns))})"
    values = ", ".join([one] * rows)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}{tail}"  # noqa: S608 (fixed names)


async def sqlite_insert(
    conn: Any,
    table: str,
    columns: tuple[str, ...],
    rows: Sequence[Any],
    ts_indexes: tuple[int, ...],
    *,
    tail: str = "",
    prepare: Callable[[Sequence[Any]], Sequence[tuple[Any, ...]]] | None = None,
) -> int:
    """``rows`` into ``table`` on a SQLite connection (the session's ``AsyncConnection``, so
    the same transaction), :func:`sqlite_rows_per_insert` rows per statement, each statement
    ending in ``tail`` (e.g. an ``ON CONFLICT`` clause): the datetimes at ``ts_indexes``
    become SQLite's text (:func:`sqlite_params`) and the rows one flat parameter tuple per
    statement in a worker thread (:func:`sqlite_statements`); sqlite3 runs the statements in
    the connection's own thread. A driver error is raised as SQLAlchemy would raise it (a lock
    is an outage, retried); the rows of a failed batch roll back with its transaction.
    ``prepare`` (run in that worker thread too) turns ``rows`` into the tuples first. The
    number of rows written."""
    raw = await conn.get_raw_connection()
    per = sqlite_rows_per_insert(len(columns))
    count, groups = await asyncio.to_thread(_sqlite_groups, rows, ts_indexes, per, prepare)
    driver = raw.driver_connection
    sql = ""
    try:
        for size, params in groups:
            sql = multirow_insert_sql(table, columns, size, tail)
            await driver.executemany(sql, params)
    except sqlite3.Error as exc:
        raise sa_exc.DBAPIError.instance(sql, None, exc, sqlite3.Error) from exc
    return count


def _sqlite_groups(
    rows: Sequence[Any],
    ts_indexes: tuple[int, ...],
    per: int,
    prepare: Callable[[Sequence[Any]], Sequence[tuple[Any, ...]]] | None,
) -> tuple[int, list[tuple[int, list[tuple[Any, ...]]]]]:
    tuples = rows if prepare is None else prepare(rows)
    return len(tuples), sqlite_statements(tuples, ts_indexes, per)


def sqlite_statements(
    rows: Sequence[tuple[Any, ...]], ts_indexes: tuple[int, ...], per: int
) -> list[tuple[int, list[tuple[Any, ...]]]]:
    """The parameters of ``rows`` (:func:`sqlite_params`) flattened per INSERT, grouped by
    statement size: ``(rows per statement, one flat tuple per statement)``. Full statements
    of ``per`` rows, then the rows left in statements of halving sizes (``per // 2``, ...,
    1; only those needed): a few statements more, but a bounded set of SQL texts, so neither
    :func:`multirow_insert_sql`'s cache nor sqlite3's cache of prepared statements grows with
    the batch sizes a daemon sees (a prepared 1,024-row INSERT is large)."""
    if not rows:
        return []
    # One flat list of every value, the time columns replaced in place (a slice each): no
    # tuple rebuilt per row; each statement's parameters are then one slice of it.
    width = len(rows[0])
    flat = list(chain.from_iterable(rows))
    if len(flat) != width * len(rows):
        raise ValueError(f"rows of unequal width: expected {width} values in each row")
    for i in ts_indexes:
        flat[i::width] = _sqlite_texts(flat[i::width])
    return _flat_groups(flat, width, len(rows), per)


# "HH:MM:" of each minute of a day and "SS." of each second: a time of day's text from its
# second without a datetime (:func:`_sqlite_texts`)
_MINUTE_TEXTS = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_SECOND_TEXTS = tuple(f"{s:02d}." for s in range(60))


def _sqlite_texts(times: list[Any]) -> list[Any]:
    """:func:`sqlite_text` of each time (None stays None). Epoch seconds (a float: the store
    writer's market rows on SQLite) are formatted here, off the loop: the text of each whole
    second is made once per call (rows of one batch share their seconds) from its day's date,
    made once per day, and two table lookups, and the microseconds appended, so no datetime
    is built per row nor per second (a batch of history trades has a second of its own per
    row)."""
    iso_year = _ISO_YEAR
    minutes, secs = _MINUTE_TEXTS, _SECOND_TEXTS
    seconds: dict[float, str] = {}  # whole second -> "YYYY-MM-DD HH:MM:SS."
    days: dict[float, str] = {}  # day number -> "YYYY-MM-DD " ("" before year 1000)
    out: list[Any] = []
    append = out.append
    for ts in times:
        cls = ts.__class__
        if cls is float:
            # datetime.fromtimestamp's microseconds (round half even) without the datetime
            frac, whole = modf(ts)
            us = round(frac * 1e6)
            if us >= 1_000_000:
                us -= 1_000_000
                whole += 1.0
            elif us < 0:
                us += 1_000_000
                whole -= 1.0
            head = seconds.get(whole)
            if head is None:
                day, second = divmod(whole, 86400.0)  # UTC has no leap seconds
                date = days.get(day)
                if date is None:  # datetime's range checks, once per day (days bound it)
                    first = datetime.fromtimestamp(whole, UTC)
                    date = days[day] = sqlite_text(first)[:11] if first.year >= iso_year else ""
                if date:
                    n = int(second)
                    head = date + minutes[n // 60] + secs[n % 60]
                else:  # strftime's unpadded year
                    head = sqlite_text(datetime.fromtimestamp(whole, UTC))[:-6]
                seconds[whole] = head
            append(head + str(1_000_000 + us)[1:])
        elif cls is datetime and ts.tzinfo is UTC and ts.year >= iso_year:
            append(ts.isoformat(" ", "microseconds")[:26])
        else:
            append(None if ts is None else sqlite_text(ts))
    return out


def _flat_groups(
    flat: list[Any], width: int, n: int, per: int
) -> list[tuple[int, list[tuple[Any, ...]]]]:
    """:func:`statement_groups` of ``n`` rows of ``width`` values given as one flat list."""
    out: list[tuple[int, list[tuple[Any, ...]]]] = []
    start, size = 0, per
    while start < n:
        end = start + (n - start) // size * size
        if end > start:
            step = size * width
            out.append(
                (size, [tuple(flat[i : i + step]) for i in range(start * width, end * width, step)])
            )
            start = end
        size = max(1, size // 2)
    return out


def statement_groups(
    params: Sequence[tuple[Any, ...]], per: int
) -> list[tuple[int, list[tuple[Any, ...]]]]:
    """Row parameters flattened per multi-row statement, grouped by statement size (see
    :func:`sqlite_statements`)."""
    flat = chain.from_iterable
    out: list[tuple[int, list[tuple[Any, ...]]]] = []
    start, size = 0, per
    while start < len(params):
        end = start + (len(params) - start) // size * size
        if end > start:
            out.append((size, [tuple(flat(params[i : i + size])) for i in range(start, end, size)]))
            start = end
        size = max(1, size // 2)
    return out


_ISO_YEAR = 1000  # from this year on isoformat and strftime write the same date


def sqlite_params(rows: Sequence[tuple[Any, ...]], ts_index: int) -> list[tuple[Any, ...]]:
    """Rows with their time as SQLite stores a UTC datetime (what ``UTCDateTime`` and
    SQLAlchemy's SQLite DateTime write: naive UTC ``YYYY-MM-DD HH:MM:SS.ffffff``)."""
    out: list[tuple[Any, ...]] = []
    append = out.append
    for row in rows:
        ts = row[ts_index]
        if ts.tzinfo is not UTC:
            ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
        # isoformat is ~2x cheaper than strftime and gives the same text from year 1000 on
        # (strftime's %Y does not pad earlier years to four digits)
        text = (
            ts.isoformat(" ", "microseconds")[:26]
            if ts.year >= _ISO_YEAR
            else f"{ts:%Y-%m-%d %H:%M:%S.%f}"
        )
        append((*row[:ts_index], text, *row[ts_index + 1 :]))
    return out


def sqlite_text(ts: datetime | float) -> str:
    """One UTC datetime (or epoch seconds) as SQLite stores it (see :func:`sqlite_params`)."""
    if not isinstance(ts, datetime):
        ts = datetime.fromtimestamp(ts, UTC)
    if ts.tzinfo is not UTC:
        ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    if ts.year >= _ISO_YEAR:
        return ts.isoformat(" ", "microseconds")[:26]
    return f"{ts:%Y-%m-%d %H:%M:%S.%f}"


def sqlite_params_at(
    rows: Sequence[tuple[Any, ...]], ts_indexes: tuple[int, ...]
) -> list[tuple[Any, ...]]:
    """:func:`sqlite_params` for rows with several datetimes (None stays None)."""
    out: list[tuple[Any, ...]] = []
    for row in rows:
        values = list(row)
        for i in ts_indexes:
            if values[i] is not None:
                values[i] = sqlite_text(values[i])
        out.append(tuple(values))
    return out


async def insert_trades(session: AsyncSession, events: Sequence[Trade]) -> int:
    return await copy_rows(session, "trades", TRADE_COLUMNS, [trade_tuple(e) for e in events])


async def insert_book_tops(session: AsyncSession, events: Sequence[BookTop]) -> int:
    return await copy_rows(
        session, "book_tops", BOOK_TOP_COLUMNS, [book_top_tuple(e) for e in events]
    )
