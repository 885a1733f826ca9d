"""StoreWriter under market load: durable rows go before every market batch, and market rows
bulk-written off the loop read back (and compare by time) like any other row."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from cryptomon.clock import ManualClock
from cryptomon.config import StorageConfig
from cryptomon.hub import Hub
from cryptomon.store.bulk import sqlite_params
from cryptomon.store.db import Database
from cryptomon.store.models import AnomalyRow, TradeRow
from cryptomon.store.types import utc
from cryptomon.store.writer import StoreWriter
from tests.stubs import T0, anomaly, trade
from tests.util import wait_until

M = T0 - T0 % 60


async def count(db: Database, model: type) -> int:
    async with db.sessionmaker() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


@pytest_asyncio.fixture
async def rig(db: Database) -> AsyncIterator[tuple[Hub, StoreWriter]]:
    """A started writer whose durable batches never fill or age on their own."""
    hub = Hub()
    config = StorageConfig(
        trades=True, batch_size=10_000, batch_max_age_s=3600, market_batch_size=100
    )
    writer = StoreWriter(hub=hub, db=db, config=config, clock=ManualClock(T0))
    await writer.start()
    await hub.start()
    yield hub, writer
    await writer.stop()


@pytest.mark.asyncio
async def test_durable_rows_are_written_before_each_market_batch(
    db: Database, rig: tuple[Hub, StoreWriter]
) -> None:
    """A market batch is never committed ahead of the durable rows received before it."""
    hub, writer = rig
    for i in range(5):
        hub.publish(anomaly(id=f"a{i}", ts_detected=T0 + i))
    await wait_until(lambda: len(writer._durable) == 5)
    for i in range(100):  # one full market batch
        hub.publish(trade(M + i))
    await wait_until(lambda: writer.rows.get("trades") == 100, timeout=10)
    assert await count(db, AnomalyRow) == 5
    assert await count(db, TradeRow) == 100


@pytest.mark.asyncio
async def test_bulk_trades_compare_by_time_like_orm_rows(
    db: Database, rig: tuple[Hub, StoreWriter]
) -> None:
    """Trades on whole seconds written in bulk are found by a time range and read back exact."""
    hub, writer = rig
    for i in range(100):
        hub.publish(trade(M + i))
    await wait_until(lambda: writer.rows.get("trades") == 100, timeout=10)
    async with db.sessionmaker() as s:
        rows = (
            await s.execute(select(TradeRow.ts).where(TradeRow.ts >= utc(M + 10)).order_by("ts"))
        ).all()
    assert len(rows) == 90
    assert rows[0][0] == datetime.fromtimestamp(M + 10, UTC)


def test_sqlite_params_store_times_as_naive_utc_with_microseconds() -> None:
    """A time in any zone becomes SQLite's naive-UTC text with six fractional digits."""
    east = datetime(2026, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=2)))
    rows = sqlite_params([("x", east, 1.0), ("y", datetime(2026, 1, 1, 1, 0, 0, 5), 2.0)], 1)
    assert rows == [
        ("x", "2026-01-01 01:00:00.000000", 1.0),
        ("y", "2026-01-01 01:00:00.000005", 2.0),
    ]


def test_sqlite_params_text_is_strftimes_for_any_year_and_fraction() -> None:
    """The fast path (isoformat) writes exactly what strftime would: whole seconds keep their
    six zeros, years before 1000 (which glibc's strftime does not pad) take the strftime path."""
    times = [datetime.fromtimestamp(T0 + k * 0.123457, UTC) for k in range(200)] + [
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(5, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    ]
    rows = sqlite_params([(ts,) for ts in times], 0)
    assert [row[0] for row in rows] == [f"{ts:%Y-%m-%d %H:%M:%S.%f}" for ts in times]
