"""The database component: async engine and session factory from ``database.url``.

SQLite (``sqlite+aiosqlite:///PATH``, the default) runs in WAL mode with foreign keys on and a
busy timeout; PostgreSQL (``postgresql+psycopg://...``) uses a connection pool sized from
config. ``start()`` checks connectivity and fails with a :class:`FatalError` naming the URL
(password redacted); with ``auto_migrate`` it then runs ``upgrade head``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

import structlog
from sqlalchemy import event, make_url, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from cryptomon.config import DatabaseConfig
from cryptomon.errors import FatalError
from cryptomon.log import redact_url

log = structlog.get_logger()

Dialect = Literal["sqlite", "postgresql"]


def _sqlite_pragmas(busy_ms: int) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        _apply_pragmas(dbapi_conn, busy_ms)

    return on_connect


def _apply_pragmas(dbapi_conn: Any, busy_ms: int) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
    finally:
        cur.close()


def _short_error(exc: BaseException, url: str) -> str:
    msg = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = msg[0] if msg else type(exc).__name__
    password = make_url(url).password if "://" in url else None
    if password:
        first = first.replace(str(password), "***")
    return redact_url(first)


def is_transient(exc: BaseException) -> bool:
    """True for failures an outage explains (retry); False for data the database refuses."""
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        )
    return isinstance(exc, OSError | TimeoutError | ConnectionError | sa_exc.TimeoutError)


class Database:
    """Owns the engine and the session factory; other components receive it as ``db=``."""

    name = "database"

    def __init__(self, config: DatabaseConfig) -> None:
        self.config = config
        self.url: URL = make_url(config.url)
        self.dialect: Dialect = (
            "sqlite" if self.url.get_backend_name() == "sqlite" else "postgresql"
        )
        self.safe_url = redact_url(config.url)
        self._engine: AsyncEngine | None = None
        self._sessionmaker: async_sessionmaker[AsyncSession] | None = None

    # ------------------------------------------------------------------ accessors

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("Database.start() has not been called")
        return self._engine

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        if self._sessionmaker is None:
            raise RuntimeError("Database.start() has not been called")
        return self._sessionmaker

    @property
    def started(self) -> bool:
        return self._engine is not None

    # ------------------------------------------------------------------ lifecycle

    def _create_engine(self) -> AsyncEngine:
        cfg = self.config
        kwargs: dict[str, Any] = {"echo": cfg.echo, "pool_pre_ping": True}
        if self.dialect == "sqlite":
            database = self.url.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": cfg.sqlite_busy_timeout_s}
        else:
            kwargs.update(
                pool_size=cfg.pool_size,
                max_overflow=cfg.max_overflow,
                pool_timeout=cfg.pool_timeout_s,
                connect_args={"connect_timeout": max(1, round(cfg.connect_timeout_s))},
            )
        engine = create_async_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            busy_ms = round(self.config.sqlite_busy_timeout_s * 1000)
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas(busy_ms))
        return engine

    async def start(self) -> None:
        """Create the engine, check the database answers, migrate when configured."""
        if self._engine is not None:
            return
        try:
            engine = self._create_engine()
        except Exception as exc:
            why = _short_error(exc, self.config.url)
            raise FatalError(f"database {self.safe_url}: cannot create engine: {why}") from None
        try:
            async with asyncio.timeout(self.config.connect_timeout_s + 1):
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception as exc:
            await engine.dispose()
            raise FatalError(
                f"database {self.safe_url} is unreachable: {_short_error(exc, self.config.url)}"
            ) from None
        self._engine = engine
        self._sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        log.debug("db.connected", url=self.safe_url, dialect=self.dialect)
        if self.config.auto_migrate:
            from cryptomon.store.migrate import upgrade

            try:
                await upgrade(self, "head")
            except Exception as exc:
                await self.stop()
                raise FatalError(
                    f"database {self.safe_url}: migration to head failed: "
                    f"{_short_error(exc, self.config.url)}"
                ) from exc

    @property
    def answer_timeout_s(self) -> float | None:
        """The deadline of one unit of work (checkout, statements, commit): PostgreSQL's
        ``statement_timeout_s``, so held packets fail like a refused connection instead of
        hanging on the socket; none on SQLite (a local file; its lock wait has its own limit)."""
        return None if self.dialect == "sqlite" else self.config.statement_timeout_s

    async def stop(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
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
