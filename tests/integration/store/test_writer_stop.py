"""StoreWriter.stop() issued while an age timer is writing: the write in flight finishes (a
COPY cut off on PostgreSQL leaves its connection busy and the batch lost), then the rest is
flushed; no row is lost and stop() returns (under a ManualClock a retry would wait forever)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from cryptomon.clock import ManualClock
from cryptomon.config import StorageConfig
from cryptomon.hub import Hub
from cryptomon.store.db import Database
from cryptomon.store.models import AnomalyRow, TradeRow
from cryptomon.store.writer import StoreWriter
from tests.stubs import T0, anomaly, trade
from tests.util import wait_until

M = T0 - T0 % 60
MAX_AGE = 2.0


async def count(db: Database, model: type) -> int:
    async with db.sessionmaker() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


@pytest_asyncio.fixture
async def blocker(db: Database) -> AsyncIterator[AsyncConnection]:
    """A second connection whose open transaction holds the tables the writer writes: its
    writes wait in the database (a real lock, not a stub) until the transaction ends."""
    if db.dialect == "sqlite":
        async with db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE hold_writes (x INTEGER)"))
    async with db.engine.connect() as conn:
        yield conn


async def hold(db: Database, conn: AsyncConnection) -> None:
    await conn.begin()
    if db.dialect == "postgresql":
        await conn.execute(text("LOCK TABLE anomalies, trades IN ACCESS EXCLUSIVE MODE"))
    else:  # the one writer lock of the file
        await conn.execute(text("INSERT INTO hold_writes VALUES (1)"))


@pytest.mark.asyncio
async def test_stop_while_the_age_timers_write_loses_no_row(
    db: Database, blocker: AsyncConnection
) -> None:
    """Durable and market rows wait for their age; the clock moves, both timers start
    writing and the database holds them; stop() is issued meanwhile. Once the database lets
    go, the timers' writes finish, stop() writes what came after them, and every row is
    stored exactly once on SQLite and on PostgreSQL."""
    hub = Hub()
    clock = ManualClock(T0)
    config = StorageConfig(
        trades=True, batch_size=10_000, market_batch_size=10_000, batch_max_age_s=MAX_AGE
    )
    writer = StoreWriter(hub=hub, db=db, config=config, clock=clock)
    await writer.start()
    await hub.start()
    for i in range(20):
        hub.publish(anomaly(id=f"a{i}", ts_detected=T0 + i))
        hub.publish(trade(M + i))
    await hub.join()
    await wait_until(lambda: clock.sleepers == 2, message="both timers asleep")
    await hold(db, blocker)
    clock.advance(MAX_AGE)  # both batches are old enough: the timers write
    await wait_until(writer._durable_lock.locked, message="durable write in flight")
    await wait_until(lambda: writer._market_writing > 0, message="market write in flight")
    # rows that arrive while the timers' writes wait: stop() must write them after
    for i in range(20, 25):
        hub.publish(anomaly(id=f"a{i}", ts_detected=T0 + i))
        hub.publish(trade(M + i))
    stopping = asyncio.create_task(writer.stop())
    # stop() drained the queues and is at the timers: let the database go
    await wait_until(
        lambda: all(sub._task is None for sub in writer._subs), message="queues drained"
    )
    await blocker.rollback()
    await asyncio.wait_for(stopping, timeout=30)
    assert await count(db, AnomalyRow) == 25
    assert await count(db, TradeRow) == 25
    assert writer.rejected == 0
    assert writer.stats()["backlog"] == {"durable": 0, "market": 0, "queued": 0}
