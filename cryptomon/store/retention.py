"""Retention: deletes live market data older than ``storage.retention_days`` (DESIGN.md 5).

Only live rows go: trades with ``source = feed``, candles with ``history`` false, all book
tops. Downloaded and imported history (trades ``download`` / ``import``, candles ``history``)
is kept whatever its age; each delete walks a partial time index of the live rows only
(``models.RETENTION_WHERE``, migration 0013), so a large kept history below the cutoff costs
the statements nothing.

Runs once at start and then every ``storage.retention_interval_s`` (sleeping on the injected
clock), deleting at most ``storage.retention_batch`` rows per statement so a large backlog
never holds a long lock. Durable tables (anomalies, orders, fills, ...) are never touched.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Select, delete, select, text

from cryptomon.clock import Clock
from cryptomon.config import StorageConfig
from cryptomon.store.models import MARKET_TABLES, RETENTION_WHERE
from cryptomon.store.types import utc
from cryptomon.tasks import cancel_and_wait

if TYPE_CHECKING:
    from cryptomon.store.db import Database

log = structlog.get_logger()
DAY_S = 86_400.0


def expired(table: Any, cutoff: datetime) -> Select[Any]:
    """The ids retention deletes from a market table: its live rows older than ``cutoff``
    (the caller adds the batch's ``LIMIT``). The live-row condition is the partial time
    index's predicate word for word, so both databases walk that index."""
    time_col = table.c.open_time if "open_time" in table.c else table.c.ts
    stmt = select(table.c.id).where(time_col < cutoff)
    if table.name in RETENTION_WHERE:
        stmt = stmt.where(text(RETENTION_WHERE[table.name]))
    return stmt


class Retention:
    """Periodic bounded deletes of old trades, book tops and candles."""

    name = "store-retention"

    def __init__(self, *, db: Database, config: StorageConfig, clock: Clock) -> None:
        self.db = db
        self.config = config
        self.clock = clock
        self.runs = 0
        self.deleted: dict[str, int] = {}
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an outage must not end retention; try next time
                self.last_error = repr(exc)
                log.warning("store.retention_failed", error=self.last_error)
            await self.clock.sleep(self.config.retention_interval_s)

    async def run_once(self) -> dict[str, int]:
        """Delete the live rows older than the retention horizon; returns rows per table."""
        cutoff = utc(self.clock.time() - self.config.retention_days * DAY_S)
        batch = self.config.retention_batch
        out: dict[str, int] = {}
        for model in MARKET_TABLES:
            table: Any = model.__table__
            old = expired(table, cutoff)
            total = 0
            while True:
                ids = old.limit(batch).scalar_subquery()
                async with self.db.sessionmaker() as session, session.begin():
                    result: Any = await session.execute(delete(table).where(table.c.id.in_(ids)))
                n = int(result.rowcount or 0)
                total += n
                if n < batch:
                    break
            out[table.name] = total
            self.deleted[table.name] = self.deleted.get(table.name, 0) + total
        self.runs += 1
        if any(out.values()):
            log.info("store.retention", deleted=out, cutoff=cutoff.isoformat())
        return out

    def stats(self) -> dict[str, Any]:
        return {"runs": self.runs, "deleted": dict(self.deleted), "last_error": self.last_error}
