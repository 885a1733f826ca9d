"""The anomaly list's JSON page joined by the database from the rows' stored items
(``Queries.anomaly_page_json``) is byte for byte orjson's serialization of
``Queries.anomalies``' page, on SQLite and PostgreSQL (filters, cursors, the last and empty
pages, float edge values, NULLs, unicode); PostgreSQL reads beyond ``pool_size`` wait instead
of connecting."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
import pytest
from sqlalchemy import event

from cryptomon.events import Severity
from cryptomon.store.anomaly_json import driver_statement, page_body
from cryptomon.store.anomaly_queries import anomaly_params, joined_page
from cryptomon.store.db import Database
from cryptomon.store.queries import Queries, encode_cursor
from cryptomon.store.repos import insert_anomalies
from cryptomon.store.types import utc
from tests import stubs

T0 = 1_700_000_000.0
SEVERITIES = list(Severity)


def varied(i: int) -> Any:
    """The i-th of 40 anomalies: markets, kinds, severities and the optional columns vary;
    some share a detection time (the cursor's id tie-break)."""
    return stubs.anomaly(
        id=f"{i:032x}",
        exchange=("binance", "okx", "bybit")[i % 3],
        symbol=("BTC-USDT", "ETH-USDT")[i % 2],
        kind=("volume", "price", "whale", "book")[i % 4],
        severity=SEVERITIES[(i * 7) % 4],
        value=i * 1.1,
        ts=T0 + i + 0.123456,
        ts_detected=T0 + i // 2 + 0.000321,
        z_score=None if i % 5 == 0 else 3.25,
        price_change_pct=-0.5 if i % 3 == 0 else None,
        window_mean=None if i % 7 == 0 else 1.5,
        reasons=tuple(f"reason {k}" for k in range(i % 3)),
    )


def edge_values() -> list[Any]:
    """Anomalies whose values are hard to reproduce byte for byte: tiny, inexact and huge
    floats, negative zero (SQLite stores it as 0), whole floats given as integers, NaN and
    infinity in nullable columns (SQLite: NULL), NULLs, unicode and escapes in reasons, times
    before 1970 and with microseconds."""
    return [
        stubs.anomaly(
            id="edge-tiny",
            value=1e-300,
            threshold=0.1 + 0.2,
            confidence=5e-324,
            z_score=-0.0,
            price_change_pct=1.7976931348623157e308,
            window_mean=float("nan"),
            window_std=float("inf"),
            reasons=('quote "x" \\ é ✓ 😀', "tab\tnew\nline", "\u2028"),
            ts=T0 + 0.000001,
            ts_detected=T0 + 50.999999,
        ),
        stubs.anomaly(
            id="edge-zero",
            value=-0.0,
            threshold=3,
            confidence=-1e-7,
            z_score=None,
            price_change_pct=None,
            window_mean=None,
            window_std=None,
            reasons=(),
            samples=2**31 - 1,
            ts=-1.0e10,
            ts_recv=-1.0e10,
            ts_detected=0.0,  # falls back to ts_recv: year 1653
        ),
        stubs.anomaly(
            id="edge-kind",
            exchange="okx",
            symbol="ÉTH-ÜSDT",
            kind="price",
            value=123456789.123456789,
            threshold=-2.5e-8,
            z_score=float("-inf"),
            ts_detected=T0 + 50.999999,  # the same time as edge-tiny: the id breaks the tie
        ),
    ]


FILTERS: list[dict[str, Any]] = [
    {},
    {"exchange": "okx"},
    {"exchange": "okx", "symbol": "BTC-USDT"},
    {"symbol": "ETH-USDT"},
    {"kind": "whale"},
    {"min_severity": "high"},
    {"kind": "volume", "min_severity": "medium"},
    {"exchange": "bybit", "symbol": "BTC-USDT", "kind": "book"},
    {"since": T0 + 5},
    {"since": T0 + 3, "until": T0 + 12.5},
    {"cursor": encode_cursor(utc(T0 + 10.000321), f"{21:032x}")},
    {"min_severity": "low", "cursor": encode_cursor(utc(T0 + 15.000321), f"{30:032x}")},
]


@pytest.mark.asyncio
async def test_json_page_is_the_serialized_page_byte_for_byte(db: Database) -> None:
    """Every filter shape, with and without a next page: the same bytes as orjson's dump of
    ``anomalies()``' rows and cursor (times as epoch floats, NULLs, JSON lists)."""
    events = [varied(i) for i in range(40)]
    random.Random(5).shuffle(events)  # stored order (rowid) unlike the page order
    async with db.sessionmaker() as session, session.begin():
        await insert_anomalies(session, events)
    queries = Queries(db=db)
    pages = 0
    for filters in FILTERS:
        for limit in (1, 3, 39, 40, 50):
            rows, cursor = await queries.anomalies(limit=limit, **filters)
            expected = orjson.dumps({"items": rows, "next_cursor": cursor})
            assert await queries.anomaly_page_json(limit=limit, **filters) == expected
            pages += cursor is not None
    assert pages > len(FILTERS)  # the comparison covered pages with a next cursor


@pytest.mark.asyncio
async def test_json_page_of_edge_values_is_the_serialized_page(db: Database) -> None:
    """Float edge values, NULLs and unicode: the stored items give the bytes that the
    columns the database gives back give, page by page through the cursors too."""
    async with db.sessionmaker() as session, session.begin():
        await insert_anomalies(session, [*edge_values(), *(varied(i) for i in range(6))])
    queries = Queries(db=db)
    for filters in ({}, {"exchange": "okx"}, {"symbol": "ÉTH-ÜSDT"}, {"since": T0 + 50}):
        for limit in (1, 2, 50):
            cursor: str | None = None
            while True:
                rows, next_cursor = await queries.anomalies(limit=limit, cursor=cursor, **filters)
                expected = orjson.dumps({"items": rows, "next_cursor": next_cursor})
                got = await queries.anomaly_page_json(limit=limit, cursor=cursor, **filters)
                assert got == expected, filters
                if next_cursor is None:
                    break
                cursor = next_cursor
    page = orjson.loads(await queries.anomaly_page_json(limit=50))
    tiny = next(item for item in page["items"] if item["id"] == "edge-tiny")
    assert tiny["value"] == 1e-300
    assert tiny["threshold"] == 0.1 + 0.2
    assert tiny["reasons"][0] == 'quote "x" \\ é ✓ 😀'


@pytest.mark.asyncio
async def test_sqlite_joins_the_page_in_the_walk_order_without_an_ordered_aggregate(
    sqlite_url: str,
) -> None:
    """SQLite before 3.44 has no ORDER BY inside group_concat: the page relies on the
    aggregate visiting the numbered walk in its order. That statement (whatever this SQLite's
    version) gives the page in order for every filter shape, from rows stored shuffled."""
    from cryptomon.config import DatabaseConfig

    db = Database(DatabaseConfig(url=sqlite_url))
    await db.start()
    try:
        events = [varied(i) for i in range(40)]
        random.Random(11).shuffle(events)
        async with db.sessionmaker() as session, session.begin():
            await insert_anomalies(session, events)
        queries = Queries(db=db)
        for filters in FILTERS:
            for limit in (1, 3, 39, 50):
                rows, cursor = await queries.anomalies(limit=limit, **filters)
                params = anomaly_params(limit=limit, **{**NO_FILTERS, **filters})
                params["shown"] = limit
                stmt = joined_page(frozenset(params), "sqlite", ordered=False)
                async with db.reader.connect() as conn:
                    row = (await conn.execute(stmt, params)).one()
                expected = orjson.dumps({"items": rows, "next_cursor": cursor})
                assert page_body(tuple(row), limit) == expected, filters
    finally:
        await db.stop()


NO_FILTERS: dict[str, Any] = dict.fromkeys(
    ("exchange", "symbol", "kind", "min_severity", "since", "until", "cursor")
)


@pytest.mark.asyncio
async def test_the_page_is_one_statement_of_one_row(db: Database) -> None:
    """One statement per page, compiled once per filter shape: its single row holds the
    joined items and what the cursor needs."""
    async with db.sessionmaker() as session, session.begin():
        await insert_anomalies(session, [varied(i) for i in range(10)])
    queries = Queries(db=db)
    await queries.anomaly_page_json(limit=3, exchange="okx")
    before = driver_statement.cache_info()
    await queries.anomaly_page_json(limit=4, exchange="binance")
    assert driver_statement.cache_info().hits == before.hits + 1
    assert driver_statement.cache_info().misses == before.misses


@pytest.mark.asyncio
async def test_json_page_refuses_bad_arguments_like_the_rows(db: Database) -> None:
    """A malformed cursor, severity or range is the same ValueError."""
    queries = Queries(db=db)
    for bad in ({"cursor": "garbage!"}, {"min_severity": "worst"}, {"since": 5, "until": 1}):
        with pytest.raises(ValueError) as rows_error:
            await queries.anomalies(**bad)
        with pytest.raises(ValueError) as json_error:
            await queries.anomaly_page_json(**bad)
        assert str(json_error.value) == str(rows_error.value)


@pytest.mark.asyncio
async def test_postgresql_reads_beyond_the_pool_wait_instead_of_connecting(pg_url: str) -> None:
    """40 concurrent reads with ``pool_size: 2`` all answer over the pool's 2 connections:
    none opens (and then closes) an overflow connection."""
    from cryptomon.config import DatabaseConfig

    db = Database(DatabaseConfig(url=pg_url, pool_size=2, max_overflow=10))
    await db.start()
    try:
        async with db.sessionmaker() as session, session.begin():
            await insert_anomalies(session, [varied(i) for i in range(10)])
        queries = Queries(db=db)
        await asyncio.gather(*(queries.anomaly_page_json(limit=5) for _ in range(2)))
        connects: list[object] = []
        event.listen(db.engine.sync_engine.pool, "connect", lambda *_: connects.append(1))
        pages = await asyncio.gather(
            *(queries.anomaly_page_json(limit=5) for _ in range(20)),
            *(queries.anomalies(limit=5) for _ in range(20)),
        )
        assert all(orjson.loads(p)["items"] for p in pages[:20])  # type: ignore[arg-type]
        assert all(rows for rows, _ in pages[20:])  # type: ignore[misc]
        assert connects == []
    finally:
        await db.stop()


@pytest.mark.asyncio
async def test_the_driver_row_is_executed_like_sqlalchemy_executes(db: Database) -> None:
    """The page's row comes from the driver cursor directly, but statement listeners still
    see the statement and a driver error is SQLAlchemy's (what the outage handling reads)."""
    from sqlalchemy import exc as sa_exc

    from cryptomon.store.anomaly_json import driver_row

    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    for engine in db.read_engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        assert await db.read_on_loop(lambda conn: tuple(driver_row(conn, "SELECT 1, 2", ()))) == (
            1,
            2,
        )
        with pytest.raises(sa_exc.DBAPIError) as error:
            await db.read_on_loop(lambda conn: driver_row(conn, "SELECT * FROM nowhere", ()))
        assert "nowhere" in str(error.value.orig)
        assert await db.read_on_loop(lambda conn: tuple(driver_row(conn, "SELECT 3", ()))) == (3,)
    finally:
        for engine in db.read_engines:
            event.remove(engine, "before_cursor_execute", record)
    assert seen == ["SELECT 1, 2", "SELECT * FROM nowhere", "SELECT 3"]
