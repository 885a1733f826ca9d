"""One-row PostgreSQL reads on the event loop (:meth:`Database.row_on_loop
<cryptomon.store.db.Database.row_on_loop>`), with psycopg's own ``AsyncConnection``.

The anomaly page is one statement giving one row. On a reader thread its cost was mostly the
trip there and back (a queue, a thread woken, the GIL taken from the loop and given back, a
wake-up of the loop through its self-pipe) and the pool's checkout and checkin; here the
statement is sent from the loop and its socket waits in the loop's selector like any other.

:class:`LoopRows` keeps up to ``size`` autocommit connections (opened when first needed,
reused most recent first). The guarantees of a threaded read are kept:

- a connection unused for ``idle_s()`` seconds is pinged first; a dead one is closed and
  replaced (a server restart costs no failed read);
- the whole read (waiting for a connection, connecting, ping, statement) has ``timeout_s``:
  past it the connection's socket is shut down (psycopg's own answer to a cancelled query is
  a cancel request and up to 10 s of waiting for it, which a stalled server never answers),
  the caller gets ``TimeoutError`` and the connection is closed, never reused; a read past
  its deadline opens no new connection; the server's ``statement_timeout`` ends the query;
- a driver error is SQLAlchemy's (``DBAPIError``, ``connection_invalidated`` on a
  disconnect), so an outage is a ``TemporaryError`` to the API (a 503), and the statement
  listeners of ``listeners`` (the reader threads' engine) see the statement.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

import psycopg
from psycopg import pq
from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from cryptomon.store.reader_threads import shut_down

_IDLE = pq.TransactionStatus.IDLE


class _Cut:
    """The deadline of one read: once passed, the attached connection's socket is shut down
    (the pending driver call fails at once) and no new connection is opened."""

    __slots__ = ("conn", "deadline", "expired")

    def __init__(self, deadline: float) -> None:
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self.deadline = deadline  # the loop's time
        self.expired = False

    def __call__(self) -> None:
        self.expired = True
        if self.conn is not None:
            shut_down(self.conn)


class LoopRows:
    """Up to ``size`` psycopg ``AsyncConnection`` s to ``conninfo`` for one-row reads on the
    loop (see the module's docstring)."""

    def __init__(
        self,
        *,
        conninfo: str,
        connect_kwargs: dict[str, Any],
        size: int,
        timeout_s: float,
        idle_s: Callable[[], float],
        listeners: Engine,
    ) -> None:
        self._conninfo = conninfo
        self._kwargs = connect_kwargs
        self._timeout_s = timeout_s
        self._idle_s = idle_s
        self._listeners = listeners
        self._dialect = listeners.dialect
        self._slots = asyncio.Semaphore(size)
        self._idle: list[tuple[psycopg.AsyncConnection[Any], float]] = []  # (conn, last use)
        self._open = 0  # connections open (idle or in a read)
        self._closed = False

    @property
    def connections(self) -> int:
        """How many connections are open (at most ``size``)."""
        return self._open

    async def _discard(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._open -= 1
        await conn.close()

    async def row(self, sql: str, params: Any) -> Any:
        """The first row of ``sql`` (None when it gives none) on one of the connections."""
        if self._closed:
            raise RuntimeError("the loop's PostgreSQL reads are closed")
        loop = asyncio.get_running_loop()
        cut = _Cut(loop.time() + self._timeout_s)
        timer = loop.call_at(cut.deadline, cut)
        try:
            if self._slots.locked():  # (free slot: no wait, no timeout context)
                async with asyncio.timeout_at(cut.deadline):
                    await self._slots.acquire()
            else:
                await self._slots.acquire()
            try:
                return await self._row(cut, sql, params)
            finally:
                self._slots.release()
        finally:
            timer.cancel()

    async def _row(self, cut: _Cut, sql: str, params: Any) -> Any:
        conn = await self._checkout(cut)
        keep = False
        try:
            cursor = conn.cursor()
            self._listeners.dispatch.before_cursor_execute(None, cursor, sql, params, None, False)
            try:
                await cursor.execute(sql, params)
                row = await cursor.fetchone()
            except psycopg.Error as exc:
                if cut.expired:
                    raise TimeoutError("the read's deadline passed") from exc
                raise self._error(sql, params, exc, conn) from exc
            keep = not cut.expired and conn.info.transaction_status == _IDLE
            if cut.expired:
                raise TimeoutError("the read's deadline passed")
            return row
        finally:
            cut.conn = None
            if keep and not self._closed:
                self._idle.append((conn, time.monotonic()))
            else:
                await self._discard(conn)

    async def _checkout(self, cut: _Cut) -> psycopg.AsyncConnection[Any]:
        """The most recently used idle connection (pinged first when idle past ``idle_s``;
        a dead one is closed and the next tried), else a new one."""
        if cut.expired:  # (the deadline passed as the read got its turn)
            raise TimeoutError("the read's deadline passed before it started")
        while self._idle:
            conn, used = self._idle.pop()
            if time.monotonic() - used < self._idle_s():
                cut.conn = conn
                return conn
            cut.conn = conn
            try:
                await conn.execute("SELECT 1", prepare=False)
            except psycopg.Error:
                cut.conn = None
                await self._discard(conn)
                if cut.expired:
                    raise TimeoutError("the read's deadline passed") from None
                continue
            if cut.expired:
                cut.conn = None
                await self._discard(conn)
                raise TimeoutError("the read's deadline passed")
            return conn
        if cut.expired:
            raise TimeoutError("the read's deadline passed: no new connection for it")
        try:  # (a connection attempt is cancelled at the deadline: no socket to cut yet)
            async with asyncio.timeout_at(cut.deadline):
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, **self._kwargs
                )
        except psycopg.Error as exc:
            raise self._error("connect", None, exc, None) from exc
        self._open += 1
        if cut.expired or self._closed:
            await self._discard(conn)
            raise TimeoutError("the read's deadline passed")
        cut.conn = conn
        return conn

    def _error(
        self, sql: str, params: Any, exc: psycopg.Error, conn: psycopg.AsyncConnection[Any] | None
    ) -> sa_exc.DBAPIError:
        disconnect = conn is None or self._dialect.is_disconnect(
            cast(Any, exc), cast(Any, conn), None
        )
        error = sa_exc.DBAPIError.instance(
            sql, params, exc, psycopg.Error, connection_invalidated=disconnect
        )
        return cast(sa_exc.DBAPIError, error)

    async def close(self) -> None:
        """Close the idle connections; one in use is closed when its read ends."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            await self._discard(conn)
