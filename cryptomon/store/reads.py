"""How :class:`~cryptomon.store.queries.Queries` reaches the database: a connection of the
read pool or a reader thread (:meth:`Database.read <cryptomon.store.db.Database.read>`, on a
SQLite file and on PostgreSQL), a bounded number of async reads at a time on PostgreSQL, and
an unreachable database as a :class:`~cryptomon.errors.TemporaryError`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from cryptomon.errors import TemporaryError
from cryptomon.log import redact_url
from cryptomon.store.anomaly_json import driver_row
from cryptomon.store.db import is_transient

if TYPE_CHECKING:
    from cryptomon.store.db import Database

T = TypeVar("T")


class ReadPool:
    """The read side's access to ``db``. Row reads and JSON pages run on the reader threads
    where the database has them (``threaded_reads``: a SQLite file, PostgreSQL); the reads
    that need an async connection or session (statistics, signal pages) use the read pool.
    On PostgreSQL (those share the engine's pool) at most ``database.pool_size`` of them
    hold a connection at a time and the others wait for
    one of them: more would open overflow connections, which the pool closes again when they
    come back to a full pool, so a burst of reads connected (a server process each) and
    disconnected for nearly every query."""

    def __init__(self, *, db: Database) -> None:
        self.db = db
        shared = db.dialect == "postgresql"  # (a SQLite file's reads have their own pool)
        self._slots = asyncio.Semaphore(db.config.pool_size) if shared else None

    def _unavailable(self, exc: Exception) -> NoReturn:
        """Raise ``exc`` as a ``TemporaryError`` when an outage explains it, else as it is."""
        if is_transient(exc):
            first = str(getattr(exc, "orig", None) or exc).splitlines()[:1]
            raise TemporaryError(
                f"database {self.db.safe_url} unavailable: {redact_url(''.join(first))}"
            ) from None
        raise exc

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        """A read session on the read pool (for the statistics helpers that take a session)."""
        async with self._connection() as conn, AsyncSession(bind=conn) as session:
            yield session

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        """A read connection from the database's read pool (Core: no ORM session per request);
        an unreachable or unanswering database becomes a ``TemporaryError``."""
        try:
            deadline = asyncio.timeout(self.db.answer_timeout_s)
            async with deadline, self._slot(), self.db.reader.connect() as conn:
                yield conn
        except Exception as exc:
            self._unavailable(exc)

    @contextlib.asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        if self._slots is None:
            yield
        else:
            async with self._slots:
                yield

    async def _fetch(
        self, stmt: Select[Any], params: dict[str, Any] | None = None
    ) -> tuple[Any, list[Any]]:
        """(result, rows) of one statement: in one reader thread (``threaded_reads``), else
        on the async read pool; an unreachable database becomes a ``TemporaryError``."""
        if not self.db.threaded_reads:
            async with self._connection() as conn:
                result = await conn.execute(stmt, params)
                return result, result.all()

        def work(conn: Any) -> tuple[Any, list[Any]]:
            result = conn.execute(stmt, params)
            return result, result.all()

        return await self._in_reader(work)

    async def _one_row(
        self, statement: Callable[[Any], tuple[str, Any]], *, first_bytes: bool = False
    ) -> Any:
        """The one row of a statement of one step, ``statement(dialect)`` giving its driver
        SQL and parameters, read where such a read costs least: on PostgreSQL on the loop
        with psycopg's async connection (:meth:`Database.row_on_loop
        <cryptomon.store.db.Database.row_on_loop>`); on a SQLite file on the loop, bounded,
        else on a reader thread (:meth:`Database.read_on_loop
        <cryptomon.store.db.Database.read_on_loop>`); in memory on the async read pool. An
        unreachable database becomes a ``TemporaryError``. ``first_bytes``: the first column,
        a text, may come as its UTF-8 bytes (where the read gets them without decoding: the
        loop's PostgreSQL reads)."""
        db = self.db
        if not db.threaded_reads:
            async with self._connection() as conn:
                result = await conn.exec_driver_sql(*statement(conn.dialect))
                return result.one()
        try:
            if db.rows_on_loop:
                return await db.row_on_loop(statement, first_bytes=first_bytes)
            return await db.read_on_loop(lambda conn: driver_row(conn, *statement(conn.dialect)))
        except Exception as exc:
            self._unavailable(exc)

    async def _in_reader(self, work: Callable[[Any], T]) -> T:
        """``work(connection)`` in a reader thread (``threaded_reads``); an unreachable
        database becomes a ``TemporaryError``."""
        try:
            return await self.db.read(work)
        except Exception as exc:
            self._unavailable(exc)
