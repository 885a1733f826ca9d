"""The database component: async engine and session factory from ``database.url``.

SQLite (``sqlite+aiosqlite:///PATH``, the default) runs in WAL mode with foreign keys on and a
busy timeout; reads (the API's queries) go through a second pool of ``read_pool_size`` query-only
connections to the same file, which WAL lets read while the writer writes. PostgreSQL
(``postgresql+psycopg://...``) uses one connection pool sized from config for the writer and
the async reads, and reads through :meth:`Database.read` run on ``pool_size`` reader threads
with psycopg's sync driver (their own pool of autocommit connections); a one-row read (the
anomaly page) is read on the loop with psycopg's async connections (:meth:`row_on_loop`, at
most ``pool_size`` more). ``start()`` checks
connectivity and fails with a :class:`FatalError` naming the URL (password redacted); with
``auto_migrate`` it then runs ``upgrade head``; without it, a schema that is not this version's
head is refused (naming its revision and ``crypto-monitor db upgrade``).

A pooled connection is checked with a ping before use only when it has been idle for
``PING_IDLE_S`` (a restarted server is still noticed before the first query after a pause);
a connection back from use a moment ago is not pinged, which spares every API read one round
trip (and, on SQLite, one hop through aiosqlite's thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
import structlog
from sqlalchemy import (
    Connection,
    Engine,
    StaticPool,
    create_engine,
    event,
    inspect,
    make_url,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from cryptomon.config import DatabaseConfig
from cryptomon.errors import FatalError, OperatorError
from cryptomon.log import Redactor, redact_url
from cryptomon.store.loop_rows import LoopRows
from cryptomon.store.reader_threads import (
    ReaderThreads,
    ReadGuard,
    guard_checkout,
    guard_connect,
)
from cryptomon.store.revision import packaged_head

log = structlog.get_logger()

Dialect = Literal["sqlite", "postgresql"]
T = TypeVar("T")

PING_IDLE_S = 1.0  # ping a pooled connection before use only after this long unused
# a read on the loop (SQLite file, one-step statements) is interrupted after this long and
# run on a reader thread instead; SQLite's progress handler checks it every so many steps
LOOP_READ_BUDGET_S = 0.002
_PROGRESS_OPS = 10_000
_USED = "cryptomon_used"  # the pool record's last checkout or checkin (monotonic seconds)


def _ping_when_idle(
    engine: Engine,
    idle_s: Callable[[], float],
    before_ping: Callable[[Any], bool] | None = None,
) -> None:
    """SQLAlchemy's pessimistic disconnect handling (``pool_pre_ping``), limited to
    connections idle for ``idle_s()`` seconds: a dead one raises ``DisconnectionError`` in the
    checkout event, which makes the pool invalidate it and connect again. ``before_ping``
    is given every driver connection checked out, before its ping, and False from it skips
    the ping (the reader threads' deadline:
    :func:`~cryptomon.store.reader_threads.guard_checkout`)."""
    dialect = engine.dialect

    def on_connect(_dbapi_conn: Any, record: Any) -> None:
        record.info[_USED] = time.monotonic()

    def on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        ping = before_ping is None or before_ping(dbapi_conn)
        now = time.monotonic()
        if ping and now - record.info.get(_USED, 0.0) >= idle_s():
            try:
                alive = dialect.do_ping(dbapi_conn)
            except Exception as exc:
                raise sa_exc.DisconnectionError(str(exc)) from exc
            if not alive:
                raise sa_exc.DisconnectionError("ping failed")
        record.info[_USED] = now

    def on_checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info[_USED] = time.monotonic()

    pool = engine.pool
    event.listen(pool, "connect", on_connect)
    event.listen(pool, "checkout", on_checkout)
    event.listen(pool, "checkin", on_checkin)


def _sqlite_pragmas(busy_ms: int, *, read_only: bool = False) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        _apply_pragmas(dbapi_conn, busy_ms, read_only=read_only)

    return on_connect


def _apply_pragmas(dbapi_conn: Any, busy_ms: int, *, read_only: bool = False) -> None:
    cur = dbapi_conn.cursor()
    try:
        if not read_only:  # the journal mode is stored in the file: a write
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        else:
            cur.execute("PRAGMA query_only=ON")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
    finally:
        cur.close()


def _short_error(exc: BaseException, url: str) -> str:
    msg = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = msg[0] if msg else type(exc).__name__
    # the URL's userinfo is hidden by its shape (redact_url); the password's text only where
    # the Redactor would take it (4 characters or more): a one-letter password replaced in
    # the text made "port 5432" "***ort 5432" (and told which letter it was)
    password = make_url(url).password if "://" in url else None
    return Redactor([str(password)] if password else []).scrub(first)


# PostgreSQL's refusals of a login that the same login will meet again (the server answered:
# no outage to wait out), by the server's message: libpq hands psycopg no SQLSTATE for a
# failed connection. Matched on the English texts (the server's lc_messages); a refusal in
# another language stays "unreachable" (exit 1, restarted), as before.
_LOGIN_REFUSALS = (
    ("password authentication failed", "check the user and password in database.url"),
    ("does not exist", "create the role or database, or fix database.url"),
    ("no pg_hba.conf entry", "allow this host and user in the server's pg_hba.conf"),
    ("permission denied for database", "GRANT CONNECT on the database to the user"),
    ("authentication failed", "check the credentials in database.url"),
)


def login_refusal_fix(exc: BaseException) -> str:
    """The fix to name when ``exc`` is PostgreSQL refusing the login itself (a role or a
    database that does not exist, a wrong password, a pg_hba.conf without this host), else
    ``""``: a server that is starting, full or unreachable may take the login later."""
    orig = getattr(exc, "orig", None) or exc
    if type(orig).__module__.split(".")[0] != "psycopg":
        return ""
    text = str(orig)
    if "FATAL:" not in text:
        return ""
    for needle, fix in _LOGIN_REFUSALS:
        if needle in text:
            return fix
    return ""


# SQLite's primary result codes for a statement interrupted (the progress handler) or kept
# from starting by another connection's lock; an extended code carries its primary one in
# the low byte (SQLITE_BUSY_SNAPSHOT is 517 = 5 | 2 << 8)
_RETRY_ON_THREAD = frozenset((sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_INTERRUPT))


def _interrupted_or_locked(exc: sa_exc.OperationalError) -> bool:
    """A loop read SQLite interrupted (over its budget) or could not start (a lock), by the
    error's result code (not its message, which SQLite may word differently)."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _RETRY_ON_THREAD


def is_transient(exc: BaseException) -> bool:
    """True for failures an outage explains (retry); False for data the database refuses."""
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        )
    return isinstance(exc, OSError | TimeoutError | ConnectionError | sa_exc.TimeoutError)


def _schema_revisions(conn: Connection) -> list[str]:
    """The revisions in ``alembic_version`` ([] without the table), read without alembic."""
    if not inspect(conn).has_table("alembic_version"):
        return []
    return [str(row[0]) for row in conn.execute(text("SELECT version_num FROM alembic_version"))]


class Database:
    """Owns the engine and the session factory; other components receive it as ``db=``."""

    name = "database"

    def __init__(
        self, config: DatabaseConfig, *, read_only: bool = False, check_schema: bool = True
    ) -> None:
        """``read_only``: for reports; nothing is created, migrated or written (SQLite opened
        with ``mode=ro``, PostgreSQL sessions ``default_transaction_read_only``).
        ``check_schema``: without ``auto_migrate``, refuse to start on a schema that is not
        this version's head (the ``db`` commands, which move it, turn it off)."""
        self.config = config
        self.read_only = read_only
        self.check_schema = check_schema
        self.url: URL = make_url(config.url)
        self.dialect: Dialect = (
            "sqlite" if self.url.get_backend_name() == "sqlite" else "postgresql"
        )
        self.safe_url = redact_url(config.url)
        self.ping_idle_s = PING_IDLE_S  # pooled connections unused this long are pinged first
        self._engine: AsyncEngine | None = None
        self._reader: AsyncEngine | None = None
        self._sync_reader: Engine | None = None  # SQLite file: the read pool, used by threads
        self._read_threads: ReaderThreads | None = None
        self._loop_reader: Engine | None = None  # SQLite file: one connection, on the loop
        self._loop_conn: Connection | None = None  # its connection (autocommit)
        self._loop_deadline = 0.0  # the running loop read's end (perf_counter), 0: none
        self._loop_rows: LoopRows | None = None  # PostgreSQL: one-row reads on the loop
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None

    # ------------------------------------------------------------------ accessors

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("Database.start() has not been called")
        return self._engine

    @property
    def reader(self) -> AsyncEngine:
        """The engine of read-only queries: a pool of query-only connections on a SQLite file,
        the main engine (and its pool) otherwise."""
        if self._reader is None:
            raise RuntimeError("Database.start() has not been called")
        return self._reader

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        if self._sessionmaker is None:
            raise RuntimeError("Database.start() has not been called")
        return self._sessionmaker

    @property
    def started(self) -> bool:
        return self._engine is not None

    # ------------------------------------------------------------------ lifecycle

    def _sqlite_file(self) -> Path | None:
        """The SQLite database file (None for in-memory and ``file:`` URIs)."""
        database = self.url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            return Path(database).expanduser()
        return None

    def _sqlite_target(self) -> tuple[URL, dict[str, Any]]:
        """The URL and connect arguments: a missing directory is created (and said so in
        the log); read-only opens an existing file with ``mode=ro`` and creates nothing."""
        url, args = self.url, {"timeout": self.config.sqlite_busy_timeout_s}
        path = self._sqlite_file()
        if path is None:
            return url, args
        if self.read_only:
            if not path.is_file():
                raise FatalError(f"database {self.safe_url}: no database file at {path}")
            ro = url.set(database=f"file:{path.resolve()}", query={"mode": "ro", "uri": "true"})
            return ro, args
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
            log.warning("db.directory_created", path=str(path.parent.resolve()))
        return url, args

    def _sqlite_unwritable(self) -> str:
        """Why a SQLite file could not be opened when its directory or the file itself cannot
        be written (a read-only mount, another owner); sqlite3 says only "unable to open
        database file" or "attempt to write a readonly database". "" otherwise."""
        path = self._sqlite_file()
        if path is None or self.read_only or not path.parent.is_dir():
            return ""
        if not os.access(path.parent, os.W_OK | os.X_OK):
            return (
                f" (the directory {path.parent} is not writable: SQLite creates "
                f"{path.name}-wal and {path.name}-shm beside the database)"
            )
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            return f" ({path} cannot be read and written by this user)"
        return ""

    def _create_engine(self, *, reader: bool = False) -> AsyncEngine:
        cfg = self.config
        # JSON columns (reasons, details) are parsed by orjson on the way out
        kwargs: dict[str, Any] = {"echo": cfg.echo, "json_deserializer": orjson.loads}
        url = self.url
        if self.dialect == "sqlite":
            url, kwargs["connect_args"] = self._sqlite_target()
            if reader:
                kwargs.update(pool_size=cfg.read_pool_size, max_overflow=0)
                kwargs.update(pool_timeout=cfg.pool_timeout_s, pool_reset_on_return=None)
        else:
            connect: dict[str, Any] = {"connect_timeout": max(1, round(cfg.connect_timeout_s))}
            if self.read_only:
                connect["options"] = "-c default_transaction_read_only=on"
            kwargs.update(
                pool_size=cfg.pool_size,
                max_overflow=cfg.max_overflow,
                pool_timeout=cfg.pool_timeout_s,
                connect_args=connect,
            )
        engine = create_async_engine(url, **kwargs)
        _ping_when_idle(engine.sync_engine, lambda: self.ping_idle_s)
        if self.dialect == "sqlite":
            busy_ms = round(self.config.sqlite_busy_timeout_s * 1000)
            pragmas = _sqlite_pragmas(busy_ms, read_only=self.read_only or reader)
            event.listen(engine.sync_engine, "connect", pragmas)
        return engine

    def _create_sync_reader(self) -> Engine:
        """The read pool of :meth:`read`, used from reader threads with the sync driver, so a
        query is one hand-off to a thread. On a SQLite file: the stdlib driver on query-only
        connections (aiosqlite hands off each cursor call: create, execute, fetch, close and
        the rollback on release). On PostgreSQL: psycopg's sync connections in autocommit,
        ``database.pool_size`` of them, with the server's ``statement_timeout`` set to
        ``statement_timeout_s`` (a stalled socket is cut by :meth:`read`'s own deadline)."""
        cfg = self.config
        if self.dialect == "postgresql":
            options = f"-c statement_timeout={max(1, round(cfg.statement_timeout_s * 1000))}"
            if self.read_only:
                options += " -c default_transaction_read_only=on"
            pg = create_engine(
                self.url,
                echo=cfg.echo,
                json_deserializer=orjson.loads,
                isolation_level="AUTOCOMMIT",
                pool_reset_on_return=None,  # autocommit: no transaction to end
                connect_args={
                    "connect_timeout": max(1, round(cfg.connect_timeout_s)),
                    "options": options,
                },
                pool_size=cfg.pool_size,
                max_overflow=0,
                pool_timeout=cfg.pool_timeout_s,
            )
            _ping_when_idle(pg, lambda: self.ping_idle_s, guard_checkout)
            event.listen(pg, "do_connect", lambda *_: guard_connect())
            return pg
        url, connect_args = self._sqlite_target()
        engine = create_engine(
            url.set(drivername="sqlite+pysqlite"),
            echo=cfg.echo,
            json_deserializer=orjson.loads,
            connect_args={**connect_args, "check_same_thread": False},
            pool_size=cfg.read_pool_size,
            max_overflow=0,
            pool_timeout=cfg.pool_timeout_s,
            pool_reset_on_return=None,
        )
        busy_ms = round(cfg.sqlite_busy_timeout_s * 1000)
        event.listen(engine, "connect", _sqlite_pragmas(busy_ms, read_only=True))
        return engine

    def _create_loop_reader(self) -> Engine:
        """The one query-only connection :meth:`read_on_loop` uses (SQLite file): no busy
        wait (a lock is reported at once), and a progress handler that interrupts a statement
        running past :data:`LOOP_READ_BUDGET_S`."""
        url, connect_args = self._sqlite_target()
        engine = create_engine(
            url.set(drivername="sqlite+pysqlite"),
            echo=self.config.echo,
            json_deserializer=orjson.loads,
            connect_args={**connect_args, "timeout": 0, "check_same_thread": False},
            isolation_level="AUTOCOMMIT",  # no transaction held between reads
            poolclass=StaticPool,
            pool_reset_on_return=None,
        )

        def over_budget() -> int:
            deadline = self._loop_deadline
            return 1 if deadline and time.perf_counter() > deadline else 0

        def on_connect(dbapi_conn: Any, _record: Any) -> None:
            _apply_pragmas(dbapi_conn, 0, read_only=True)
            dbapi_conn.set_progress_handler(over_budget, _PROGRESS_OPS)

        event.listen(engine, "connect", on_connect)
        return engine

    def _create_loop_rows(self, listeners: Engine) -> LoopRows:
        """PostgreSQL's one-row reads on the loop (:meth:`row_on_loop`): ``pool_size``
        connections at most, set up as the reader threads' (autocommit, the server's
        ``statement_timeout``, read-only for reports)."""
        cfg = self.config
        options = f"-c statement_timeout={max(1, round(cfg.statement_timeout_s * 1000))}"
        if self.read_only:
            options += " -c default_transaction_read_only=on"
        url = self.url.set(drivername="postgresql")
        return LoopRows(
            conninfo=url.render_as_string(hide_password=False),
            connect_kwargs={
                "connect_timeout": max(1, round(cfg.connect_timeout_s)),
                "options": options,
                # each filter shape's statement is prepared on its first read of a connection
                # (psycopg's default waits for the 5th: parsed and planned by the server and
                # sent whole from the loop until then); at most psycopg's ``prepared_max``
                # statements are kept per connection
                "prepare_threshold": 0,
            },
            size=cfg.pool_size,
            timeout_s=cfg.statement_timeout_s,
            idle_s=lambda: self.ping_idle_s,
            listeners=listeners,
        )

    @property
    def rows_on_loop(self) -> bool:
        """Whether :meth:`row_on_loop` reads on the loop (PostgreSQL)."""
        return self._loop_rows is not None

    @property
    def loop_rows(self) -> LoopRows | None:
        """The connections of :meth:`row_on_loop` (PostgreSQL), None elsewhere."""
        return self._loop_rows

    async def row_on_loop(
        self, statement: Callable[[Any], tuple[str, Any]], *, first_bytes: bool = False
    ) -> Any:
        """The one row of a statement of one step, ``statement(dialect)`` giving its driver
        SQL and parameters, read on the loop with psycopg's async connection (PostgreSQL,
        ``rows_on_loop``; :class:`~cryptomon.store.loop_rows.LoopRows`: no reader thread,
        the deadline, idle ping and error types of :meth:`read`). ``first_bytes``: a text
        first column as its UTF-8 bytes (:meth:`LoopRows.row
        <cryptomon.store.loop_rows.LoopRows.row>`)."""
        rows, engine = self._loop_rows, self._sync_reader
        if rows is None or engine is None:
            raise RuntimeError("reads on the loop need a started PostgreSQL database")
        return await rows.row(*statement(engine.dialect), first_bytes=first_bytes)

    async def read_on_loop(self, work: Callable[[Connection], T]) -> T:
        """:meth:`read` for a statement of one step (one row): on a SQLite file it runs on
        the event loop itself, on a connection of its own, without the hand-off to a reader
        thread and back (whose cost, with the GIL passed between the two, was larger than
        such a read). Bounded: SQLite interrupts it past :data:`LOOP_READ_BUDGET_S` and a
        lock is not waited for; either then runs as :meth:`read` on a reader thread, like
        every read elsewhere (PostgreSQL: sockets block)."""
        engine = self._loop_reader
        if engine is None or self._loop_deadline:  # (not re-entered: work is synchronous)
            return await self.read(work)
        self._loop_deadline = time.perf_counter() + LOOP_READ_BUDGET_S
        try:
            conn = self._loop_conn
            if conn is None:  # kept: a checkout per read cost as much as the rest of it
                conn = self._loop_conn = engine.connect()
            return work(conn)
        except Exception as exc:
            if not isinstance(exc, sa_exc.OperationalError) or not _interrupted_or_locked(exc):
                self._close_loop_conn()  # the next read starts on a new connection
                raise
        finally:
            self._loop_deadline = 0.0
        return await self.read(work)

    def _close_loop_conn(self) -> None:
        conn, self._loop_conn = self._loop_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    @property
    def threaded_reads(self) -> bool:
        """Whether :meth:`read` runs on reader threads (a SQLite file written by this
        process, or PostgreSQL); otherwise callers read through :attr:`reader`."""
        return self._sync_reader is not None

    @property
    def reads_running(self) -> int:
        """How many reader threads are running a read now (0 without threaded reads)."""
        return 0 if self._read_threads is None else self._read_threads.busy

    @property
    def read_engines(self) -> tuple[Engine, ...]:
        """The (sync) engines reads go through, for statement listeners: the read pool's and,
        with threaded reads, the reader threads'."""
        engines: tuple[Engine, ...] = (self.reader.sync_engine,)
        if self._sync_reader is not None:
            engines = (*engines, self._sync_reader)
        return engines if self._loop_reader is None else (*engines, self._loop_reader)

    async def read(self, work: Callable[[Connection], T]) -> T:
        """``work(connection)`` on a connection of the read pool, in a reader thread
        (``threaded_reads`` must be true); ``work`` runs its statements and returns plain
        data (no lazy results: the connection goes back to the pool when it returns).

        On PostgreSQL the whole read (wait for a thread and a connection, statements) has
        :attr:`answer_timeout_s`: past it the caller gets ``TimeoutError`` and the thread's
        connection is cut (its socket shut down), so a thread blocked on a socket whose
        packets are held gets an error instead of hanging forever; the pool drops that
        connection."""
        engine, threads = self._sync_reader, self._read_threads
        if engine is None or threads is None:
            raise RuntimeError("threaded reads need a started database (SQLite file or PostgreSQL)")
        limit = self.answer_timeout_s
        if limit is None:

            def run() -> T:
                with engine.connect() as conn:
                    return work(conn)

            return await threads.submit(run)

        guard = ReadGuard()

        def guarded() -> T:
            with guard, engine.connect() as conn:  # the checkout attaches it before a ping
                try:
                    guard.attach(conn)  # (again; TimeoutError when the deadline has passed)
                    return work(conn)
                finally:  # before the connection goes back to the pool
                    if guard.detach():
                        conn.invalidate()  # its socket was shut down: not to be reused

        future = threads.submit(guarded)
        try:
            async with asyncio.timeout(limit):
                return await future
        except TimeoutError:
            guard.expire()
            raise

    async def start(self) -> None:
        """Create the engine, check the database answers, migrate when configured."""
        if self._engine is not None:
            return
        try:
            engine = self._create_engine()
        except FatalError:
            raise
        except Exception as exc:
            why = _short_error(exc, self.config.url)
            raise FatalError(f"database {self.safe_url}: cannot create engine: {why}") from None
        try:
            await self._first_contact(engine)
        except Exception as exc:
            await engine.dispose()
            why = _short_error(exc, self.config.url) + self._sqlite_unwritable()
            fix = login_refusal_fix(exc)
            if fix:  # the server answered and refused this login: a restart cannot fix it
                raise OperatorError(
                    f"database {self.safe_url} refused the login: {why}; {fix}"
                ) from None
            raise FatalError(f"database {self.safe_url} is unreachable: {why}") from None
        self._engine = engine
        # reads run in autocommit: one round trip per query instead of BEGIN, SELECT and
        # ROLLBACK (PostgreSQL; the same pool, the isolation level set per checkout); the
        # SQLite read pool's connections never open a transaction for a SELECT, so they are
        # returned to the pool without a rollback (one hop less through aiosqlite's thread)
        if self._read_pool():
            self._reader = self._create_engine(reader=True)
        else:
            self._reader = engine.execution_options(isolation_level="AUTOCOMMIT")
        if self._read_pool() or self.dialect == "postgresql":
            self._sync_reader = self._create_sync_reader()
            threads = self.config.read_pool_size if self._read_pool() else self.config.pool_size
            self._read_threads = ReaderThreads(threads, "cryptomon-read")
        if self._read_pool():
            self._loop_reader = self._create_loop_reader()
        elif self._sync_reader is not None:
            self._loop_rows = self._create_loop_rows(self._sync_reader)
        self._sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        log.debug("db.connected", url=self.safe_url, dialect=self.dialect)
        await self._prepare_schema()

    async def _prepare_schema(self) -> None:
        """``upgrade head`` with ``auto_migrate``, else the schema check (see ``__init__``)."""
        if self.read_only or not (self.config.auto_migrate or self.check_schema):
            return
        step, doing = (
            (self._migrate, "migration to head")
            if self.config.auto_migrate
            else (self._require_head, "schema check")
        )
        try:
            await step()
        except FatalError:
            await self.stop()
            raise
        except Exception as exc:
            await self.stop()
            # imported here: a start at head never loads alembic (see _migrate)
            from cryptomon.store.migrate import UnknownSchemaRevision

            if isinstance(exc, UnknownSchemaRevision):  # a newer cryptomon's: no restart fixes it
                raise OperatorError(f"database {self.safe_url}: {exc}") from None
            raise FatalError(
                f"database {self.safe_url}: {doing} failed: {_short_error(exc, self.config.url)}"
            ) from exc

    async def _first_contact(self, engine: AsyncEngine) -> None:
        """``SELECT 1`` on a new connection. On a SQLite file another process may be creating
        (its first connection switches the new file to WAL, then migrates): SQLite then refuses
        the switch at once with "database is locked" instead of waiting its busy timeout, so the
        attempt is repeated until ``sqlite_busy_timeout_s`` has passed."""
        deadline = time.monotonic() + self.config.sqlite_busy_timeout_s
        while True:
            try:
                async with asyncio.timeout(self.config.connect_timeout_s + 1):
                    async with engine.connect() as conn:
                        await conn.execute(text("SELECT 1"))
                return
            except sa_exc.DBAPIError as exc:
                locked = self.dialect == "sqlite" and "database is locked" in str(exc)
                if not locked or time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.02)

    async def _migrate(self) -> None:
        """``upgrade head``, unless the database says it is at the packaged head already (then
        alembic is not even imported: see :mod:`cryptomon.store.revision`). An existing schema it
        moved is logged (``db.migrated``: from which revision to which)."""
        head = packaged_head()
        async with self.engine.connect() as conn:
            found = await conn.run_sync(_schema_revisions)
        if head is not None and found == [head]:
            return
        from cryptomon.store.migrate import head as script_head
        from cryptomon.store.migrate import upgrade

        await upgrade(self, "head")
        to = script_head()
        if found and found != [to]:  # an existing schema moved (a new one: debug, see below)
            log.info(
                "db.migrated", url=self.safe_url, from_revision=", ".join(found), to_revision=to
            )
        elif not found:  # a new database: one-shot commands make one, said on their stderr
            log.debug("db.migrated", url=self.safe_url, from_revision="base", to_revision=to)

    async def _require_head(self) -> None:
        """``auto_migrate`` off: the schema must be this version's head. A database behind it
        started, and then its writer refused every row of a changed table (anomalies too) as
        bad data; one a newer cryptomon migrated is refused as the migration refuses it."""
        head = packaged_head()
        async with self.engine.connect() as conn:
            if head is not None and await conn.run_sync(_schema_revisions) == [head]:
                return  # alembic is not imported (see _migrate)
            from cryptomon.store.migrate import UnknownSchemaRevision, schema_revision

            try:
                at, newest = await conn.run_sync(schema_revision)
            except UnknownSchemaRevision as exc:
                raise OperatorError(f"database {self.safe_url}: {exc}") from None
        if at == newest:
            return
        where = (
            "has no cryptomon schema"
            if at is None
            else f"is at schema revision {at}, this cryptomon needs {newest}"
        )
        raise OperatorError(
            f"database {self.safe_url} {where} (database.auto_migrate is off): run "
            "`crypto-monitor db upgrade` first, or turn database.auto_migrate on"
        )

    @property
    def answer_timeout_s(self) -> float | None:
        """The deadline of one unit of work (checkout, statements, commit): PostgreSQL's
        ``statement_timeout_s``, so held packets fail like a refused connection instead of
        hanging on the socket; none on SQLite (a local file; its lock wait has its own limit)."""
        return None if self.dialect == "sqlite" else self.config.statement_timeout_s

    def _read_pool(self) -> bool:
        """A separate read pool: SQLite files written by this process (WAL readers)."""
        return self.dialect == "sqlite" and not self.read_only and self._sqlite_file() is not None

    async def stop(self) -> None:
        if self._reader is not None and self._read_pool():
            await self._reader.dispose()
        if self._loop_rows is not None:
            await self._loop_rows.close()
            self._loop_rows = None
        if self._read_threads is not None:
            self._read_threads.shutdown()
            self._read_threads = None
        if self._sync_reader is not None:
            self._sync_reader.dispose()
            self._sync_reader = None
        self._close_loop_conn()
        if self._loop_reader is not None:
            self._loop_reader.dispose()
            self._loop_reader = None
        if self._engine is not None:
            await self._engine.dispose()
        self._reader = None
        self._engine = None
        self._sessionmaker = None

    async def ping(self) -> bool:
        """True when the database answers ``SELECT 1`` within the connect timeout."""
        if self._engine is None:
            return False
        try:
            async with asyncio.timeout(self.config.connect_timeout_s):
                async with self._engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True
