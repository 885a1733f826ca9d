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

The statement goes out through libpq's calls on the connection (:func:`_first_row`), not
psycopg's cursor: each filter shape prepared once per connection, the result awaited with one
reader callback. A read whose caller is cancelled (the API's request timeout) closes its
connection at once, as any failed read does (the cursor sent a cancel request and waited up
to 5 s for the server's answer first); the server's ``statement_timeout`` still ends the query.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

import psycopg
from psycopg import pq
from psycopg._queries import PostgresQuery
from psycopg.adapt import Transformer
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
        # per connection: what :func:`_first_row` keeps between its reads of it
        self._states: dict[psycopg.AsyncConnection[Any], _State] = {}
        self._closed = False

    @property
    def connections(self) -> int:
        """How many connections are open (at most ``size``)."""
        return self._open

    async def _discard(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._open -= 1
        self._states.pop(conn, None)
        await conn.close()

    async def row(self, sql: str, params: Any, *, first_bytes: bool = False) -> Any:
        """The first row of ``sql`` (None when it gives none) on one of the connections;
        ``first_bytes``: its first column, when a ``text`` in UTF-8, as the bytes the server
        sent (what the text's ``encode()`` gives, without decoding and encoding it again)."""
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
                return await self._row(cut, sql, params, first_bytes)
            finally:
                self._slots.release()
        finally:
            timer.cancel()

    async def _row(self, cut: _Cut, sql: str, params: Any, first_bytes: bool) -> Any:
        conn = await self._checkout(cut)
        keep = False
        try:
            self._listeners.dispatch.before_cursor_execute(None, None, sql, params, None, False)
            try:
                state = self._states.get(conn)
                if state is None:
                    state = self._states[conn] = _State(conn)
                row = await _first_row(conn, state, sql, params, first_bytes)
            except psycopg.Error as exc:
                if cut.expired:
                    raise TimeoutError("the read's deadline passed") from exc
                raise self._error(sql, params, exc, conn) from exc
            keep = not cut.expired and conn.pgconn.transaction_status == _IDLE
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


# Statements prepared per connection by :func:`_first_row` (our own names, apart from
# psycopg's): the anomaly page has 128 filter shapes on PostgreSQL; past this many on one
# connection a new SQL text is sent unprepared.
MAX_PREPARED = 256
_TUPLES_OK = pq.ExecStatus.TUPLES_OK
_TEXT_OID = 25  # PostgreSQL's text
_COMMAND_OK = pq.ExecStatus.COMMAND_OK


class _State:
    """What :func:`_first_row` keeps per connection: the statements prepared on it (query
    -> name) and its transformer (psycopg's cursor keeps one across its executions: the
    adapters it looked up stay cached)."""

    __slots__ = ("prepared", "tx")

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.prepared: dict[bytes, bytes] = {}
        self.tx = Transformer(conn)


async def _first_row(
    conn: psycopg.AsyncConnection[Any], state: _State, sql: str, params: Any, first_bytes: bool
) -> Any:
    """The first row of ``sql`` (None when it gives none) as psycopg's cursor gives it (a
    tuple, values loaded by psycopg's adapters), sent with libpq's calls from the loop: the
    statement prepared on its first use on ``conn`` (``state``: what was prepared on it;
    psycopg's ``prepare_threshold=0`` did the same), then
    executed by name, the result awaited with one reader callback. psycopg's cursor did the
    same through generators, a lock, and a timer per wait (~100 us of the loop's CPU per read
    at 50 concurrent reads). ``conn`` is this read's alone (:class:`LoopRows`); a failed read
    raises ``psycopg.Error`` and its connection is discarded, never reused, so a statement
    is never left half-prepared on a kept connection."""
    pgconn = conn.pgconn
    tx, prepared = state.tx, state.prepared
    query = PostgresQuery(tx)
    query.convert(sql, params)
    name = prepared.get(query.query)
    if name is None and len(prepared) < MAX_PREPARED:
        name = f"_cm_{len(prepared)}".encode()
        pgconn.send_prepare(name, query.query, param_types=query.types)
        _check(conn, await _results(pgconn), _COMMAND_OK)
        prepared[query.query] = name
    if name is None:
        pgconn.send_query_params(
            query.query, query.params, param_types=query.types, param_formats=query.formats
        )
    else:
        pgconn.send_query_prepared(name, query.params, param_formats=query.formats)
    result = _check(conn, await _results(pgconn), _TUPLES_OK)
    if not result.ntuples:
        return None
    tx.set_pgresult(result)
    if first_bytes and result.ftype(0) == _TEXT_OID and tx.encoding == "utf-8":
        values = [result.get_value(0, i) for i in range(result.nfields)]
        first, values[0] = values[0], None
        return (first, *tx.load_sequence(values)[1:])
    return tx.load_row(0, tuple)


def _check(conn: psycopg.AsyncConnection[Any], results: list[pq.abc.PGresult], ok: Any) -> Any:
    """The last result of a statement, or its error raised as psycopg raises it."""
    for result in results:
        if result.status == pq.ExecStatus.FATAL_ERROR:
            raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
    if not results or results[-1].status != ok:
        status = pq.ExecStatus(results[-1].status).name if results else "no result"
        raise psycopg.InterfaceError(f"unexpected result of a one-row read: {status}")
    return results[-1]


async def _results(pgconn: pq.abc.PGconn) -> list[pq.abc.PGresult]:
    """Send what libpq holds of a statement and collect its results, waiting on the loop."""
    loop = asyncio.get_running_loop()
    fd = pgconn.socket
    while pgconn.flush():  # (nonblocking: a full socket buffer; a page's request is small)
        sent: asyncio.Future[None] = loop.create_future()
        loop.add_writer(fd, _wake, sent)
        try:
            await sent
        finally:
            loop.remove_writer(fd)
    done: asyncio.Future[list[pq.abc.PGresult]] = loop.create_future()
    loop.add_reader(fd, _consume, pgconn, done, [])
    try:
        return await done
    finally:
        loop.remove_reader(fd)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _consume(
    pgconn: pq.abc.PGconn,
    done: asyncio.Future[list[pq.abc.PGresult]],
    results: list[pq.abc.PGresult],
) -> None:
    """The socket is readable: take what arrived; the results once libpq has them all."""
    if done.done():
        return
    try:
        pgconn.consume_input()  # (a closed or cut socket raises OperationalError)
        while not pgconn.is_busy():
            result = pgconn.get_result()
            if result is None:
                done.set_result(results)
                return
            results.append(result)
    except psycopg.Error as exc:
        done.set_exception(exc)
