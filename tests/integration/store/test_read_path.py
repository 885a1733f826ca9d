"""The read side the API uses: every documented list filter walks an index in the page order
(EXPLAIN-checked on SQLite and PostgreSQL), and SQLite reads come from a query-only pool that
WAL lets read while the writer holds a transaction."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from cryptomon.store.db import Database
from cryptomon.store.queries import Queries, encode_cursor
from cryptomon.store.repos import insert_anomalies
from cryptomon.store.types import utc
from tests import stubs

CURSOR = encode_cursor(utc(1_700_000_100.0), "a" * 32)
NOTIFICATION_CURSOR = encode_cursor(utc(1_700_000_100.0), 12_345)  # the id is an integer
SINCE, UNTIL = 1_700_000_000.0, 1_700_000_500.0

# (method, arguments): the filter combinations the list routes document
LISTS: list[tuple[str, dict[str, Any]]] = [
    ("anomalies", {}),
    ("anomalies", {"exchange": "okx"}),
    ("anomalies", {"exchange": "okx", "symbol": "BTC-USDT"}),
    ("anomalies", {"symbol": "BTC-USDT"}),
    ("anomalies", {"kind": "volume"}),
    ("anomalies", {"min_severity": "high"}),
    ("anomalies", {"kind": "volume", "min_severity": "high"}),
    ("anomalies", {"exchange": "okx", "symbol": "BTC-USDT", "kind": "price"}),
    ("anomalies", {"since": SINCE}),
    ("anomalies", {"since": SINCE, "until": UNTIL}),
    ("anomalies", {"cursor": CURSOR}),
    ("anomalies", {"exchange": "okx", "cursor": CURSOR}),
    ("anomalies", {"symbol": "BTC-USDT", "cursor": CURSOR}),
    ("anomalies", {"kind": "price", "min_severity": "medium", "cursor": CURSOR}),
    ("anomaly_page_json", {}),  # the API's route: the same statements sent as driver SQL
    ("anomaly_page_json", {"exchange": "okx", "symbol": "BTC-USDT"}),
    ("anomaly_page_json", {"since": SINCE, "until": UNTIL}),
    ("anomaly_page_json", {"kind": "price", "min_severity": "medium", "cursor": CURSOR}),
    ("orders", {}),
    ("orders", {"symbol": "BTC-USDT"}),
    ("fills", {}),
    ("fills", {"symbol": "BTC-USDT"}),
    ("signal_page", {}),
    ("signal_page", {"symbol": "BTC-USDT"}),
    ("signal_page", {"exchange": "okx", "symbol": "BTC-USDT"}),
    ("signal_page", {"cursor": CURSOR}),
    ("notifications", {}),
    ("notifications", {"channel": "ops"}),
    ("notifications", {"status": "failed"}),
    ("notification_page", {}),
    ("notification_page", {"cursor": NOTIFICATION_CURSOR}),
    ("notification_page", {"channel": "ops", "cursor": NOTIFICATION_CURSOR}),
    ("notification_page", {"status": "failed", "cursor": NOTIFICATION_CURSOR}),
    ("notification_page", {"event_type": "fill", "cursor": NOTIFICATION_CURSOR}),
    ("notification_page", {"channel": "ops", "status": "sent", "event_type": "anomaly"}),
    ("notification_page", {"since": SINCE, "until": UNTIL}),
    ("notification_page", {"channel": "ops", "since": SINCE, "until": UNTIL}),
]

# a sort of every matching row (a partial sort within equal times is allowed)
FULL_SORT = re.compile(r"TEMP B-TREE FOR ORDER BY|(?<!Incremental )\bSort  \(")
FULL_SCAN = re.compile(r"^SCAN (\w+)$|Seq Scan", re.MULTILINE)


def full_scans(text_plan: str) -> list[str]:
    """The plan's scans of a whole table (SQLite's scans of a co-routine, the rows a subquery
    of the statement yields, such as the joined anomaly page's walk, are not tables)."""
    coroutines = set(re.findall(r"CO-ROUTINE (\S+)", text_plan))
    return [m.group(0) for m in FULL_SCAN.finditer(text_plan) if m.group(1) not in coroutines]


async def statements(db: Database, run: Callable[[], Awaitable[Any]]) -> list[tuple[str, Any]]:
    """The SQL (and parameters) ``run`` sends through the read pool."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    for engine in db.read_engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        await run()
    finally:
        for engine in db.read_engines:
            event.remove(engine, "before_cursor_execute", record)
    return [(s, p) for s, p in seen if s.lstrip().upper().startswith("SELECT")]


async def plan(db: Database, statement: str, params: Any) -> str:
    """The query plan of one captured statement, as text."""
    async with db.reader.connect() as conn:
        if db.dialect == "sqlite":
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            return "\n".join(str(r[-1]) for r in rows)
        # tiny test tables: make PostgreSQL show whether an index can give the order at all
        await conn.exec_driver_sql("SET enable_seqscan = off")
        await conn.exec_driver_sql("SET enable_sort = off")
        rows = await conn.exec_driver_sql(f"EXPLAIN {statement}", params)
        return "\n".join(str(r[0]) for r in rows)


@pytest.mark.asyncio
@pytest.mark.parametrize(("method", "args"), LISTS, ids=[f"{m}-{'-'.join(a)}" for m, a in LISTS])
async def test_list_filters_walk_an_index_in_page_order(
    db: Database, method: str, args: dict[str, Any]
) -> None:
    """Each documented list filter reads an index in page order: no full scan, no full sort."""
    queries = Queries(db=db)
    captured = await statements(db, lambda: getattr(queries, method)(limit=50, **args))
    assert captured, f"{method} sent no SELECT"
    for statement, params in captured:
        text_plan = await plan(db, statement, params)
        assert not FULL_SORT.search(text_plan), f"{method}{args} sorts:\n{text_plan}"
        assert not full_scans(text_plan), f"{method}{args} scans:\n{text_plan}"


SEVERITY_SHAPES: list[tuple[str, dict[str, Any]]] = [
    (method, {**args, "min_severity": "critical"})
    for method in ("anomalies", "anomaly_page_json")
    for args in (
        {},
        {"kind": "whale"},
        {"exchange": "okx"},
        {"symbol": "BTC-USDT"},
        {"exchange": "okx", "symbol": "BTC-USDT"},
        {"kind": "whale", "cursor": CURSOR},
    )
]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("method", "args"), SEVERITY_SHAPES, ids=[f"{m}-{'-'.join(a)}" for m, a in SEVERITY_SHAPES]
)
async def test_min_severity_is_checked_on_the_index_entry(
    db: Database, method: str, args: dict[str, Any]
) -> None:
    """``min_severity`` is a condition on the index the page walks (0012: every anomaly index
    ends in ``severity_rank``), not a filter of the table rows it points to: a page of a rare
    severity does not read every row of its walk. PostgreSQL shows it as an index condition;
    SQLite, which seeks the table row only for a column the index lacks, by the index."""
    queries = Queries(db=db)
    captured = await statements(db, lambda: getattr(queries, method)(limit=50, **args))
    assert captured, f"{method} sent no SELECT"
    for statement, params in captured:
        text_plan = await plan(db, statement, params)
        if db.dialect == "postgresql":
            assert re.search(r"Index Cond: .*severity_rank >=", text_plan), text_plan
            assert "Filter: (severity_rank" not in text_plan, text_plan
        else:
            assert re.search(r"USING INDEX ix_anomalies_\w+_rank\b", text_plan), text_plan


NOTIFICATION_SHAPES: list[dict[str, Any]] = [
    {"channel": "ops"},
    {"status": "failed"},
    {"event_type": "kill_switch"},
    {"event_type": "kill_switch", "cursor": NOTIFICATION_CURSOR},
    {"channel": "ops", "cursor": NOTIFICATION_CURSOR},
]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "args", NOTIFICATION_SHAPES, ids=["-".join(a) for a in NOTIFICATION_SHAPES]
)
async def test_a_notification_filter_seeks_its_own_index(
    db: Database, args: dict[str, Any]
) -> None:
    """The notification history's channel, status and event type filters each seek an index
    that starts with their column: a page of a rare event type (a kill switch among 300k
    anomaly notifications: 90 ms on PostgreSQL, 1.3 s on SQLite) does not walk every
    notification's time order."""
    queries = Queries(db=db)
    captured = await statements(db, lambda: queries.notification_page(limit=50, **args))
    column = next(k for k in args if k != "cursor")
    for statement, params in captured:
        text_plan = await plan(db, statement, params)
        if db.dialect == "postgresql":
            assert re.search(rf"Index Cond: \(\(?\({column}\)", text_plan), text_plan
        else:
            assert re.search(rf"USING INDEX \w+ \({column}=\?", text_plan), text_plan


@pytest.mark.asyncio
async def test_sqlite_reads_come_from_a_query_only_pool(sqlite_url: str) -> None:
    """On a SQLite file the read pool is its own engine and refuses writes."""
    from cryptomon.config import DatabaseConfig

    db = Database(DatabaseConfig(url=sqlite_url, read_pool_size=3))
    await db.start()
    try:
        assert db.reader is not db.engine
        assert db.reader.pool.size() == 3  # type: ignore[attr-defined]
        async with db.reader.connect() as conn:
            with pytest.raises(OperationalError, match="readonly"):
                await conn.execute(text("DELETE FROM anomalies"))
    finally:
        await db.stop()


@pytest.mark.asyncio
async def test_reads_answer_while_the_writer_holds_a_transaction(sqlite_url: str) -> None:
    """WAL: a page is read (with the committed rows only) while a write transaction is open."""
    from cryptomon.config import DatabaseConfig

    db = Database(DatabaseConfig(url=sqlite_url))
    await db.start()
    try:
        async with db.sessionmaker() as session, session.begin():
            await insert_anomalies(session, [stubs.anomaly(id="committed")])
        async with db.sessionmaker() as session, session.begin():
            await insert_anomalies(session, [stubs.anomaly(id="pending")])
            await session.flush()
            async with asyncio.timeout(5):
                rows, _ = await Queries(db=db).anomalies(limit=10)
        assert [r["id"] for r in rows] == ["committed"]
    finally:
        await db.stop()


async def _end_server_connections(pg_url: str) -> None:
    """The server ends every connection to the test database (as a restart would)."""
    import psycopg

    from tests.conftest import _plain
    from tests.util import wait_until

    name = pg_url.rsplit("/", 1)[1]
    others = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
    async with await psycopg.AsyncConnection.connect(
        _plain(pg_url.rsplit("/", 1)[0] + "/postgres"), autocommit=True
    ) as admin:
        await admin.execute(f"SELECT pg_terminate_backend(pid) FROM ({others}) o", (name,))

        async def gone() -> bool:
            cur = await admin.execute(others, (name,))
            return not await cur.fetchall()

        await wait_until(gone, timeout=10)


@pytest.mark.asyncio
async def test_a_connection_ended_while_idle_is_replaced_before_the_read(pg_url: str) -> None:
    """A pooled connection idle past ``ping_idle_s`` is pinged first: one the server ended is
    replaced and the read answers (the reader threads' pool and the page's connections on
    the loop)."""
    from cryptomon.config import DatabaseConfig

    db = Database(DatabaseConfig(url=pg_url))
    await db.start()
    try:
        db.ping_idle_s = 0.0  # every pooled connection counts as idle
        queries = Queries(db=db)
        empty = b'{"items":[],"next_cursor":null}'
        assert await queries.anomalies() == ([], None)
        assert await queries.anomaly_page_json() == empty  # (its connection, on the loop)
        await _end_server_connections(pg_url)
        assert await queries.anomalies() == ([], None)
        assert await queries.anomaly_page_json() == empty
    finally:
        await db.stop()


@pytest.mark.asyncio
async def test_a_connection_used_a_moment_ago_goes_straight_to_the_query(pg_url: str) -> None:
    """Within ``ping_idle_s`` of its last use a connection is not pinged (no extra round trip
    per read): if the server ended it meanwhile, that one read is a TemporaryError and the
    pool, invalidated by it, answers the next."""
    from cryptomon.config import DatabaseConfig
    from cryptomon.errors import TemporaryError

    db = Database(DatabaseConfig(url=pg_url))
    await db.start()
    try:
        db.ping_idle_s = 3600.0
        queries = Queries(db=db)
        assert await queries.anomalies() == ([], None)
        await _end_server_connections(pg_url)
        with pytest.raises(TemporaryError, match="unavailable"):
            await queries.anomalies()
        assert await queries.anomalies() == ([], None)
        empty = b'{"items":[],"next_cursor":null}'
        assert await queries.anomaly_page_json() == empty  # (its own connection, on the loop)
        await _end_server_connections(pg_url)  # the API's JSON page: the same
        with pytest.raises(TemporaryError, match="unavailable"):
            await queries.anomaly_page_json()
        assert await queries.anomaly_page_json() == empty
    finally:
        await db.stop()


@pytest.mark.asyncio
async def test_postgresql_reads_hold_no_transaction(pg_url: str) -> None:
    """A read on PostgreSQL is one statement in autocommit (no BEGIN before it, no ROLLBACK
    after it); the writer's sessions still get transactions."""
    import psycopg

    from cryptomon.config import DatabaseConfig

    db = Database(DatabaseConfig(url=pg_url))
    await db.start()
    try:
        async with db.reader.connect() as conn:
            await conn.execute(text("SELECT 1"))
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        async with db.sessionmaker() as session, session.begin():
            await session.execute(text("SELECT 1"))
            raw = (await (await session.connection()).get_raw_connection()).driver_connection
            assert raw.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
    finally:
        await db.stop()


@pytest.mark.asyncio
async def test_sqlite_pages_are_read_in_one_reader_thread_hop(sqlite_url: str) -> None:
    """On a SQLite file a page's statement runs in a reader thread on a query-only
    connection, and the rows come back the same as written."""
    import threading

    from cryptomon.config import DatabaseConfig

    db = Database(DatabaseConfig(url=sqlite_url, read_pool_size=2))
    await db.start()
    try:
        async with db.sessionmaker() as session, session.begin():
            await insert_anomalies(session, [stubs.anomaly(id=f"a{i}") for i in range(3)])
        threads: list[str] = []

        def record(*_: Any) -> None:
            threads.append(threading.current_thread().name)

        assert db.threaded_reads
        for engine in db.read_engines:
            event.listen(engine, "before_cursor_execute", record)
        rows, _ = await Queries(db=db).anomalies(limit=10)
        assert sorted(r["id"] for r in rows) == ["a0", "a1", "a2"]
        assert threads
        assert all(name.startswith("cryptomon-read") for name in threads)
        with pytest.raises(OperationalError, match="readonly"):
            await db.read(lambda conn: conn.execute(text("DELETE FROM anomalies")))
    finally:
        await db.stop()


async def _threads_of_page(db: Database, **filters: Any) -> tuple[bytes, list[str]]:
    """The JSON page and the threads its statements ran on."""
    import threading

    threads: list[str] = []

    def record(*_: Any) -> None:
        threads.append(threading.current_thread().name)

    for engine in db.read_engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        page = await Queries(db=db).anomaly_page_json(limit=2, **filters)
    finally:
        for engine in db.read_engines:
            event.remove(engine, "before_cursor_execute", record)
    return page, threads


@pytest.mark.asyncio
async def test_sqlite_json_pages_are_read_on_the_loop(sqlite_url: str) -> None:
    """On a SQLite file the JSON page (one statement, one row) runs on the loop's thread, on
    a query-only connection, with no reader thread involved."""
    import threading

    from cryptomon.config import DatabaseConfig

    db = Database(DatabaseConfig(url=sqlite_url))
    await db.start()
    try:
        async with db.sessionmaker() as session, session.begin():
            await insert_anomalies(session, [stubs.anomaly(id=f"a{i}") for i in range(3)])
        page, threads = await _threads_of_page(db)
        assert [item["id"] for item in orjson.loads(page)["items"]] == ["a2", "a1"]
        assert threads == [threading.current_thread().name]
        with pytest.raises(OperationalError, match="readonly"):
            await db.read_on_loop(lambda conn: conn.execute(text("DELETE FROM anomalies")))
        assert (await _threads_of_page(db))[0] == page  # a new connection after the error
    finally:
        await db.stop()


@pytest.mark.asyncio
async def test_postgresql_json_pages_are_read_on_the_loop(pg_url: str) -> None:
    """On PostgreSQL the JSON page (one statement, one row) is read on the loop's thread
    with psycopg's async connection: the statement listeners see it, 50 pages at once open
    at most ``pool_size`` connections and get the same bytes as one at a time, a driver
    error is SQLAlchemy's and leaves the connection usable."""
    import threading

    from sqlalchemy.exc import ProgrammingError

    from cryptomon.config import DatabaseConfig

    db = Database(DatabaseConfig(url=pg_url, pool_size=3))
    await db.start()
    try:
        async with db.sessionmaker() as session, session.begin():
            await insert_anomalies(session, [stubs.anomaly(id=f"a{i}") for i in range(3)])
        page, threads = await _threads_of_page(db)
        assert [item["id"] for item in orjson.loads(page)["items"]] == ["a2", "a1"]
        assert threads == [threading.current_thread().name]
        queries = Queries(db=db)
        pages = await asyncio.gather(*(queries.anomaly_page_json(limit=2) for _ in range(50)))
        assert set(pages) == {page}
        assert db.loop_rows is not None
        assert 1 <= db.loop_rows.connections <= 3
        with pytest.raises(ProgrammingError, match="nowhere"):
            await db.row_on_loop(lambda _dialect: ("SELECT * FROM nowhere", None))
        assert await db.row_on_loop(lambda _dialect: ("SELECT 1, 2", None)) == (1, 2)
    finally:
        await db.stop()
    assert db.loop_rows is None


@pytest.mark.asyncio
async def test_a_loop_read_over_its_budget_runs_on_a_reader_thread(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loop read that SQLite interrupts (past ``LOOP_READ_BUDGET_S``: here at once) is run
    again on a reader thread and gives the same page; the loop's connection stays usable."""
    from cryptomon.config import DatabaseConfig
    from cryptomon.store import db as db_module

    db = Database(DatabaseConfig(url=sqlite_url))
    await db.start()
    try:
        async with db.sessionmaker() as session, session.begin():
            await insert_anomalies(session, [stubs.anomaly(id=f"a{i}") for i in range(3)])
        expected, _ = await _threads_of_page(db, exchange="binance")
        monkeypatch.setattr(db_module, "LOOP_READ_BUDGET_S", -1.0)  # every check is past it
        monkeypatch.setattr(db_module, "_PROGRESS_OPS", 1)  # checked at every step
        await db.stop()
        await db.start()  # the loop's connection takes the progress period on connect
        page, threads = await _threads_of_page(db, exchange="binance")
        assert page == expected
        assert threads[-1].startswith("cryptomon-read")  # the loop's try, then the thread
        monkeypatch.setattr(db_module, "LOOP_READ_BUDGET_S", 1.0)
        page, threads = await _threads_of_page(db, exchange="binance")
        assert page == expected
        assert not any(name.startswith("cryptomon-read") for name in threads)
    finally:
        await db.stop()


@pytest.mark.asyncio
async def test_a_locked_loop_read_runs_on_a_reader_thread(sqlite_url: str) -> None:
    """A loop read SQLite refuses as busy or locked (the loop's connection has no busy
    wait: a WAL reader meets a lock only while another connection holds the file in exclusive
    locking mode or recovers the WAL index) is run again on a reader thread, which waits for
    the lock like every other read; the loop's connection is kept. Any other error is raised
    as it is."""
    import sqlite3
    import threading

    from cryptomon.config import DatabaseConfig

    db = Database(DatabaseConfig(url=sqlite_url))
    await db.start()
    try:
        ran: list[str] = []

        # the error as the driver raises it: recognised by its result code, not its words
        # (SQLITE_BUSY, and SQLITE_BUSY_SNAPSHOT, an extended code of it)
        for code in (sqlite3.SQLITE_BUSY, 517):
            ran.clear()

            def locked_on_the_loop(conn: Any, code: int = code) -> int:
                ran.append(threading.current_thread().name)
                if len(ran) == 1:
                    busy = sqlite3.OperationalError("worded in any way")
                    busy.sqlite_errorcode = code  # type: ignore[attr-defined]
                    raise OperationalError("SELECT 1", None, busy)
                return int(conn.execute(text("SELECT 7")).scalar_one())

            assert await db.read_on_loop(locked_on_the_loop) == 7
            assert ran[0] == threading.current_thread().name
            assert ran[1].startswith("cryptomon-read")
            kept = db._loop_conn
            assert kept is not None  # a lock does not cost the loop its connection

        def refused(conn: Any) -> int:  # a real SQLite error (SQLITE_ERROR), not a lock
            return int(conn.execute(text("SELECT count(*) FROM nowhere")).scalar_one())

        with pytest.raises(OperationalError, match="no such table"):
            await db.read_on_loop(refused)
        assert db._loop_conn is None  # dropped after any other error: the next read reconnects
    finally:
        await db.stop()
