"""PostgreSQL one-row reads on the loop (``store/loop_rows.py``): statements sent with libpq's
calls, prepared once per connection up to a bound, a cancelled read's connection closed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cryptomon.config import DatabaseConfig
from cryptomon.store import loop_rows
from cryptomon.store.db import Database
from tests.util import wait_until


async def _started(pg_url: str, **kw: Any) -> Database:
    db = Database(DatabaseConfig(url=pg_url, **kw))
    await db.start()
    return db


async def _row(db: Database, sql: str, params: Any = None) -> Any:
    return await db.row_on_loop(lambda _dialect: (sql, params))


@pytest.mark.asyncio
async def test_statements_are_prepared_once_per_connection_up_to_the_bound(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each SQL text is prepared on its first read of a connection and run by name after;
    past ``MAX_PREPARED`` texts on one connection a new one runs unprepared, with the same
    answer. Values are bound, loaded as psycopg's cursor loads them; no row is None."""
    monkeypatch.setattr(loop_rows, "MAX_PREPARED", 3)
    db = await _started(pg_url, pool_size=1)
    try:
        count = "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE '_cm_%'"
        assert await _row(db, count) == (1,)  # prepared, then run: it sees itself
        assert await _row(db, count) == (1,)  # run by name: not prepared again
        assert await _row(db, "SELECT %(a)s::int + 1, %(b)s::text", {"a": 41, "b": "x"}) == (
            42,
            "x",
        )
        assert await _row(db, "SELECT %(a)s::int + 1, %(b)s::text", {"a": 1, "b": "é"}) == (
            2,
            "é",
        )
        assert await _row(db, "SELECT 1 WHERE false") is None
        for k in range(5):  # past the bound: unprepared
            assert await _row(db, f"SELECT {k}, %(v)s::int", {"v": k}) == (k, k)
        assert await _row(db, count) == (3,)
        assert db.loop_rows is not None
        assert db.loop_rows.connections == 1
    finally:
        await db.stop()


@pytest.mark.asyncio
async def test_a_cancelled_read_closes_its_connection_and_the_next_read_works(
    pg_url: str,
) -> None:
    """A read cancelled by its caller while the server runs it (the API's request timeout)
    is not waited for: its connection is closed, never reused, and the next read opens a
    new one."""
    db = await _started(pg_url, pool_size=1)
    try:
        assert await _row(db, "SELECT 1") == (1,)
        rows = db.loop_rows
        assert rows is not None
        assert rows.connections == 1
        read = asyncio.create_task(_row(db, "SELECT pg_sleep(30)"))
        probe = "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)'"

        async def running() -> bool:
            return bool(await _admin_row(pg_url, probe) == (1,))

        await wait_until(running, message="the server running the read")
        read.cancel()
        with pytest.raises(asyncio.CancelledError):
            await read
        assert rows.connections == 0
        assert await _row(db, "SELECT 2") == (2,)
        assert rows.connections == 1
    finally:
        await db.stop()


async def _admin_row(pg_url: str, sql: str) -> Any:
    """One row from a connection of its own (not the loop reads' pool)."""
    import psycopg

    url = pg_url.replace("postgresql+psycopg", "postgresql")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cursor = await conn.execute(sql)
        return await cursor.fetchone()


@pytest.mark.asyncio
async def test_first_bytes_gives_a_text_first_column_as_its_utf8_bytes(pg_url: str) -> None:
    """``first_bytes``: a ``text`` first column comes as the bytes its ``encode()`` gives
    (what the anomaly page joins without decoding it); NULL stays None; a first column of
    another type, and the other columns, are loaded as without it."""
    db = await _started(pg_url, pool_size=1)
    try:

        async def row(sql: str) -> Any:
            return await db.row_on_loop(lambda _dialect: (sql, None), first_bytes=True)

        assert await row("SELECT 'é,€'::text, 1, 'x'::text") == ("é,€".encode(), 1, "x")
        assert await row("SELECT NULL::text, 2") == (None, 2)
        assert await row("SELECT 3, 'y'::text") == (3, "y")
        assert await row("SELECT 'z'::varchar") == ("z",)
        assert await _row(db, "SELECT 'é'::text") == ("é",)  # without it: text
    finally:
        await db.stop()
