"""Retention deletes old market data in bounded batches, periodically, and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from cryptomon.clock import ManualClock
from cryptomon.config import StorageConfig
from cryptomon.events import BookTop
from cryptomon.store import repos
from cryptomon.store.db import Database
from cryptomon.store.models import AnomalyRow, BookTopRow, CandleRow, TradeRow
from cryptomon.store.retention import DAY_S, Retention
from tests.stubs import anomaly, trade
from tests.util import wait_until

NOW = 1_800_000_000.0


async def count(db: Database, model: type) -> int:
    async with db.sessionmaker() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def seed(db: Database, ts: float, n: int) -> None:
    top = BookTop(
        exchange="binance",
        symbol="BTC-USDT",
        ts=ts,
        ts_recv=ts,
        bid=1,
        bid_size=1,
        ask=2,
        ask_size=1,
        spread=1,
        spread_bps=1,
        bid_depth=1,
        ask_depth=1,
        imbalance=0,
        levels=5,
    )
    candle = {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "interval": "1m",
        "close_time": None,
        "open": 1.0,
        "high": 1.0,
        "low": 1.0,
        "close": 1.0,
        "volume": 1.0,
        "trade_count": 1,
        "buy_volume": 1.0,
        "sell_volume": 0.0,
        "closed": True,
        "source": "trades",
    }
    rows = []
    for i in range(n):
        start = ts - ts % 60 - 60 * i
        rows.append(
            {
                **candle,
                "open_time": datetime.fromtimestamp(start, UTC),
                "close_time": datetime.fromtimestamp(start + 60, UTC),
            }
        )
    async with db.sessionmaker() as s, s.begin():
        await repos.insert_trades(s, [trade(ts - i) for i in range(n)])
        await repos.insert_book_tops(s, [top] * n)
        await repos.upsert_candles(s, rows)
        await repos.insert_anomalies(s, [anomaly(ts=ts, ts_detected=ts)])


@pytest.mark.asyncio
async def test_retention_deletes_old_market_rows_in_batches(db: Database) -> None:
    """Rows older than retention_days go (in batches of 2), recent rows and anomalies stay;
    the job runs again every retention_interval_s on the injected clock."""
    clock = ManualClock(NOW)
    config = StorageConfig(retention_days=7, retention_batch=2, retention_interval_s=3600)
    await seed(db, NOW - 8 * DAY_S, 5)  # old
    await seed(db, NOW - 1 * DAY_S, 3)  # recent
    retention = Retention(db=db, config=config, clock=clock)
    await retention.start()
    try:
        await wait_until(lambda: retention.runs == 1, message="first retention run")
        assert retention.deleted == {"trades": 5, "book_tops": 5, "candles": 5}
        assert await count(db, TradeRow) == 3
        assert await count(db, BookTopRow) == 3
        assert await count(db, CandleRow) == 3
        assert await count(db, AnomalyRow) == 2
        # a day later the "recent" rows are still inside 7 days; move 7 days on: they go too
        await wait_until(lambda: clock.sleepers == 1, message="retention sleeping")
        clock.advance(7 * DAY_S)
        await wait_until(lambda: retention.runs == 2, message="second retention run")
        assert await count(db, TradeRow) == 0
        assert await count(db, CandleRow) == 0
        assert await count(db, AnomalyRow) == 2
        assert retention.stats()["deleted"]["book_tops"] == 8
    finally:
        await retention.stop()
