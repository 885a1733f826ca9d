"""An engine journaled on a real database, as the daemon runs it, for restart tests: the
database, its store writer, the hub and the engine, stopped in the daemon's order; and the
paper perpetual engine built on it (tests/unit/trading/test_futures_paper.py's market)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptomon.clock import Clock, ManualClock
from cryptomon.config import DatabaseConfig, StorageConfig
from cryptomon.hub import Hub
from cryptomon.store.db import Database
from cryptomon.store.journal import StoreJournal
from cryptomon.store.writer import StoreWriter
from cryptomon.trading.brokers.base import Broker
from cryptomon.trading.engine import TradingEngine
from tests.unit.trading.test_futures_paper import config, perp_engine, quote


@dataclass
class Journaled:
    engine: TradingEngine
    hub: Hub
    writer: StoreWriter
    db: Database

    @property
    def broker(self) -> Broker:
        return self.engine.broker

    async def stop(self) -> None:
        await self.engine.stop()
        await self.writer.stop()
        await self.db.stop()
        await self.hub.stop(1.0)


async def store(
    url: str, hub: Hub, clock: Clock, *, batch_max_age_s: float = 3600.0
) -> tuple[Database, StoreWriter]:
    """The database at ``url`` and its writer. By default its batches are written at the stop
    (or when full), never by its age timer: on the manual clock the timer would wake on the
    test's own steps and could be cut off mid-write by the stop. A test that waits for rows
    while the engine runs gives a short ``batch_max_age_s``."""
    db = Database(DatabaseConfig(url=url))
    await db.start()
    writer = StoreWriter(
        hub=hub, db=db, config=StorageConfig(batch_max_age_s=batch_max_age_s), clock=clock
    )
    await writer.start()
    return db, writer


async def paper_perp(
    url: str,
    clock: ManualClock,
    *,
    mid: float | None = 20000.0,
    batch_max_age_s: float = 3600.0,
    **trading: Any,
) -> Journaled:
    """The paper perpetual engine (shorts allowed; ``trading`` overrides the trading config)
    journaled on ``url``, started; with ``mid`` its book is quoted there before the start."""
    hub = Hub()
    db, writer = await store(url, hub, clock, batch_max_age_s=batch_max_age_s)
    engine = perp_engine(hub, clock, config(**trading), StoreJournal(db=db))
    if mid is not None:
        quote(hub, clock, mid)
    await engine.start()
    return Journaled(engine, hub, writer, db)
