"""Alembic, driven programmatically (no ``alembic.ini`` needed, so a wheel install works).

The migration environment lives inside the package (``cryptomon/store/migrations``). These
helpers build the alembic ``Config`` and run commands on a connection of a started
:class:`~cryptomon.store.db.Database` (the env.py "connection sharing" path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class Database(Protocol):
    """What migrating needs of :class:`cryptomon.store.db.Database` (which imports this
    module to migrate on start): its engine."""

    @property
    def engine(self) -> AsyncEngine: ...


MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An alembic Config pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


class UnknownSchemaRevision(Exception):
    """The database is at a revision the packaged migrations do not have (a newer cryptomon
    migrated it): nothing is changed."""


def check_known_revision(conn: Connection, cfg: Config) -> None:
    """Raise :class:`UnknownSchemaRevision` naming what to do when the database's revision
    is not one of the packaged migrations (alembic says only "Can't locate revision")."""
    script = ScriptDirectory.from_config(cfg)
    known = {rev.revision for rev in script.walk_revisions()}
    for rev in MigrationContext.configure(conn).get_current_heads():
        if rev not in known:
            newest = ", ".join(script.get_heads())
            raise UnknownSchemaRevision(
                f"the database schema is at revision {rev}, which this cryptomon does not "
                f"have (its newest is {newest}): a newer cryptomon migrated it. Run that "
                f"version, or take the schema back with its `crypto-monitor db downgrade "
                f"{newest}` first"
            )


def schema_revision(conn: Connection) -> tuple[str | None, str | None]:
    """(the revision the database is at, None without a schema; the packaged head). Raises
    :class:`UnknownSchemaRevision` for a revision a newer cryptomon made."""
    cfg = alembic_config()
    check_known_revision(conn, cfg)
    heads = MigrationContext.configure(conn).get_current_heads()
    return (", ".join(heads) or None), ScriptDirectory.from_config(cfg).get_current_head()


def _run(cfg: Config, fn: Any, *args: Any) -> Any:
    def inner(conn: Connection) -> Any:
        check_known_revision(conn, cfg)
        cfg.attributes["connection"] = conn
        return fn(cfg, *args)

    return inner


# Any constant: serializes migrations of daemons/commands starting at the same time.
_PG_MIGRATION_LOCK = 0x63727970746F6D  # "cryptom"


async def _locked(conn: AsyncConnection) -> None:
    """Take the database's write lock first, so concurrent migrations run one after another
    (the second then finds the schema at head)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})"))
    else:  # pysqlite defers BEGIN until the first DML; DDL must be inside the locked transaction
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


async def upgrade(db: Database, revision: str = "head") -> None:
    """Migrate up to ``revision`` in one transaction (PostgreSQL: under an advisory lock)."""
    cfg = alembic_config()
    async with db.engine.begin() as conn:
        await _locked(conn)
        await conn.run_sync(_run(cfg, command.upgrade, revision))


async def downgrade(db: Database, revision: str) -> None:
    """Migrate down to ``revision`` (``base`` removes the schema)."""
    cfg = alembic_config()
    async with db.engine.begin() as conn:
        await _locked(conn)
        await conn.run_sync(_run(cfg, command.downgrade, revision))


async def current(db: Database) -> tuple[str, ...]:
    """The revision(s) the database is at (empty when unversioned)."""

    def heads(conn: Connection) -> tuple[str, ...]:
        return tuple(MigrationContext.configure(conn).get_current_heads())

    async with db.engine.connect() as conn:
        return await conn.run_sync(heads)


def history() -> list[str]:
    """One line per revision, newest first: ``rev (head) <- down: message``."""
    script = ScriptDirectory.from_config(alembic_config())
    heads = set(script.get_heads())
    out = []
    for rev in script.walk_revisions():
        mark = " (head)" if rev.revision in heads else ""
        down = rev.down_revision or "base"
        out.append(f"{down} -> {rev.revision}{mark}: {rev.doc}")
    return out


def head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def compare(db: Database) -> list[Any]:
    """Differences alembic autogenerate finds between the models and the database."""
    from alembic.autogenerate import compare_metadata

    from cryptomon.store.models import Base

    def diff(conn: Connection) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))

    async with db.engine.connect() as conn:
        return await conn.run_sync(diff)
