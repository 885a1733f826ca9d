"""Protective exits never wait for the database: the local fsync'd exit journal under
``data_dir`` on a real SQLite file held locked by another connection, folded exactly once."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from cryptomon.config import DatabaseConfig
from cryptomon.store.db import Database
from cryptomon.store.journal import StoreJournal
from cryptomon.store.models import OrderRow
from cryptomon.trading.exit_journal import ExitJournal
from tests.stubs import intent
from tests.util import wait_until


@pytest_asyncio.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    database = Database(DatabaseConfig(url=sqlite_url, sqlite_busy_timeout_s=0.2))
    await database.start()
    try:
        yield database
    finally:
        await database.stop()


class Lock:
    """Another connection holding an exclusive lock: every write of the daemon fails."""

    def __init__(self, url: str) -> None:
        self.conn = sqlite3.connect(str(make_url(url).database), timeout=5, isolation_level=None)
        self.held = False

    def take(self) -> None:
        self.conn.execute("BEGIN EXCLUSIVE")
        self.held = True

    def release(self) -> None:
        if self.held:
            self.conn.execute("ROLLBACK")
            self.held = False


@pytest.fixture
def lock(sqlite_url: str) -> Iterator[Lock]:
    held = Lock(sqlite_url)
    try:
        yield held
    finally:
        held.release()
        held.conn.close()


async def _origins(db: Database, cid: str) -> list[str]:
    async with db.sessionmaker() as session:
        stmt = select(OrderRow.origin).where(OrderRow.client_order_id == cid)
        return list((await session.scalars(stmt)).all())


async def _orders(db: Database) -> int:
    async with db.sessionmaker() as session:
        return int((await session.scalar(select(func.count()).select_from(OrderRow))) or 0)


@pytest.mark.asyncio
async def test_stop_loss_intent_is_journaled_locally_and_folded_once(
    db: Database, lock: Lock, tmp_path: Path
) -> None:
    """With the database locked a stop-loss intent returns at once from the local journal and
    lands in the database exactly once (origin kept) when the lock goes."""
    journal = ExitJournal(
        inner=StoreJournal(db=db), data_dir=tmp_path / "state", timeout_s=0.5, backoff_s=0.05
    )
    lock.take()
    exit_intent = intent("cm-stop", origin="stop_loss", side="sell", type="market", price=None)
    await asyncio.wait_for(journal.record_intent(exit_intent), 3)
    assert journal.path.exists()
    assert [i.client_order_id for i in journal.pending()] == ["cm-stop"]
    with pytest.raises(Exception, match="locked"):  # an entry waits for the database
        await journal.record_intent(intent("cm-entry", origin="signal"))
    lock.release()
    await wait_until(lambda: not journal.path.exists(), timeout=10, message="folded")
    assert await _origins(db, "cm-stop") == ["stop_loss"]
    await journal.record_intent(exit_intent)  # the writer or a retry: still one row
    assert await _orders(db) == 1
    await journal.aclose()


@pytest.mark.asyncio
async def test_spooled_exit_survives_a_restart(db: Database, lock: Lock, tmp_path: Path) -> None:
    """An exit spooled before the process died is an open order at the next start: folded
    into the database if it is back, reported for reconciliation if not."""
    first = ExitJournal(inner=StoreJournal(db=db), data_dir=tmp_path, timeout_s=0.3)
    lock.take()
    await first.record_intent(intent("cm-tp", origin="take_profit", side="sell"))
    await first.aclose()  # died before the fold
    second = ExitJournal(inner=StoreJournal(db=db), data_dir=tmp_path, timeout_s=0.3)
    still_away = await second.open_orders()
    assert [s.intent.origin for s in still_away] == ["take_profit"]
    lock.release()
    back = await second.open_orders()
    assert [s.intent.client_order_id for s in back] == ["cm-tp"]
    assert await _origins(db, "cm-tp") == ["take_profit"]
    assert second.pending() == []
    await second.aclose()


@pytest.mark.asyncio
async def test_stored_intents_come_from_the_database(db: Database, tmp_path: Path) -> None:
    """A restart reads an entry's intent (its own stop-loss) back through the exit journal
    from the database it wraps."""
    journal = ExitJournal(inner=StoreJournal(db=db), data_dir=tmp_path / "state")
    entry = intent("cm-entry", origin="signal")
    await journal.record_intent(entry)
    got = await journal.stored_intents(["cm-entry", "cm-never"])
    assert list(got) == ["cm-entry"]
    assert got["cm-entry"].stop_loss == Decimal("63000")
    await journal.aclose()
