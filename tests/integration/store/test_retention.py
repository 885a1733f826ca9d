"""Retention deletes old market data in bounded batches, periodically, and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from cryptomon.backtest.importer import import_file
from cryptomon.clock import ManualClock
from cryptomon.config import StorageConfig
from cryptomon.events import BookTop, Candle
from cryptomon.store import repos
from cryptomon.store.db import Database
from cryptomon.store.history import save_trades, trade_span
from cryptomon.store.models import AnomalyRow, BookTopRow, CandleRow, TradeRow
from cryptomon.store.retention import DAY_S, Retention, expired
from cryptomon.store.types import utc
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


# --------------------------------------------------------------------------- kept history

FREQTRADE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "freqtrade-testdata"


async def by_source(db: Database) -> dict[tuple[str, str], int]:
    """Row counts per (table, kind): trades by ``source``, candles by ``history``."""
    async with db.sessionmaker() as s:
        trades = await s.execute(select(TradeRow.source, func.count()).group_by(TradeRow.source))
        candles = await s.execute(
            select(CandleRow.history, func.count()).group_by(CandleRow.history)
        )
        out = {("trades", str(k)): int(n) for k, n in trades.all()}
        out.update({("candles", "history" if k else "live"): int(n) for k, n in candles.all()})
        return out


@pytest.mark.asyncio
async def test_retention_keeps_imported_history_and_deletes_old_live_rows(db: Database) -> None:
    """QA's case: the shared freqtrade trades file imported through ``download --from-file``'s
    code (12,477 trades, their 2,469 one-minute candles), years older than the cutoff, plus old
    and recent live rows: retention deletes the old live rows only, in batches."""
    path = str(FREQTRADE / "XRP_ETH-trades.json.gz")
    doc = await import_file(db, path, exchange="binance", symbol="XRP-ETH")
    assert (doc["trades"], doc["candles"]) == (12477, 2469)
    assert doc["last"] < NOW - 30 * DAY_S  # all of it far older than the cutoff
    await seed(db, NOW - 8 * DAY_S, 5)  # old live rows
    await seed(db, NOW - 1 * DAY_S, 3)  # recent live rows
    config = StorageConfig(retention_days=7, retention_batch=1000, retention_interval_s=3600)
    retention = Retention(db=db, config=config, clock=ManualClock(NOW))

    assert await retention.run_once() == {"trades": 5, "book_tops": 5, "candles": 5}
    assert await by_source(db) == {
        ("trades", "import"): 12477,
        ("trades", "feed"): 3,
        ("candles", "history"): 2469,
        ("candles", "live"): 3,
    }
    assert await count(db, BookTopRow) == 3
    assert await retention.run_once() == {"trades": 0, "book_tops": 0, "candles": 0}


def live_candle(minute: float, *, source: str, history: bool, close: float) -> dict[str, Any]:
    return {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "interval": "1m",
        "open_time": datetime.fromtimestamp(minute, UTC),
        "close_time": datetime.fromtimestamp(minute + 60, UTC),
        "open": close,
        "high": close,
        "low": close,
        "close": close,
        "volume": 1.0,
        "trade_count": None,
        "buy_volume": None,
        "sell_volume": None,
        "closed": True,
        "source": source,
        "history": history,
    }


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("first", "second", "kept"),
    [
        # (source, history) of the stored row, of the upserted row; (close, source, history)
        (("exchange", True), ("exchange", False), (2.0, "exchange", True)),  # history stays
        (("trades", True), ("trades", False), (2.0, "trades", True)),
        (("exchange", False), ("exchange", True), (2.0, "exchange", True)),  # live -> history
        (("trades", False), ("exchange", True), (2.0, "exchange", True)),
        # an imported trades-aggregated minute does not replace the venue's candle, but the
        # minute is history from now on
        (("exchange", False), ("trades", True), (1.0, "exchange", True)),
        (("exchange", True), ("trades", False), (1.0, "exchange", True)),
        (("exchange", False), ("exchange", False), (2.0, "exchange", False)),
        (("exchange", False), ("trades", False), (1.0, "exchange", False)),
    ],
)
async def test_upsert_keeps_history_whichever_row_wins(
    db: Database,
    first: tuple[str, bool],
    second: tuple[str, bool],
    kept: tuple[float, str, bool],
) -> None:
    """``history = old OR new``; the values follow the exchange-wins rule."""
    minute = NOW - NOW % 60
    for close, (source, history) in ((1.0, first), (2.0, second)):
        async with db.sessionmaker() as s, s.begin():
            row = live_candle(minute, source=source, history=history, close=close)
            await repos.upsert_candles(s, [row])
    async with db.sessionmaker() as s:
        rows = (await s.execute(select(CandleRow.close, CandleRow.source, CandleRow.history))).all()
    assert [tuple(r) for r in rows] == [kept]


@pytest.mark.asyncio
async def test_live_rows_written_by_the_store_are_not_history(db: Database) -> None:
    """The live writers' rows (trades by COPY / multi-row INSERT without a source, candles
    without history) get the defaults retention deletes: ``feed`` and ``false``."""
    await seed(db, NOW, 2)
    async with db.sessionmaker() as s, s.begin():
        await repos.upsert_candles(
            s,
            [repos.candle_row(candle_event(NOW))],  # an exchange candle from the feed
        )
    assert await by_source(db) == {("trades", "feed"): 2, ("candles", "live"): 3}


def candle_event(ts: float) -> Candle:
    start = ts - ts % 60 + 3600
    return Candle(
        exchange="binance",
        symbol="BTC-USDT",
        interval="1m",
        start=start,
        end=start + 60,
        open=1,
        high=1,
        low=1,
        close=1,
        volume=1,
        trades=1,
        closed=True,
        ts=start,
        ts_recv=start,
    )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("model", "index"),
    [(TradeRow, "ix_trades_feed_ts"), (CandleRow, "ix_candles_live_open_time")],
)
async def test_retention_query_walks_the_partial_index_of_live_rows(
    db: Database, model: type, index: str
) -> None:
    """Retention's batch query (as run, with its LIMIT) can use the partial index: its
    live-row condition implies the index's predicate on both databases. (On PostgreSQL
    sequential scans are disabled for the EXPLAIN: on a tiny table the planner would rightly
    prefer one; the point is that the index is usable, which a mismatched predicate is not.)"""
    table: Any = model.__table__
    stmt = expired(table, utc(NOW)).limit(100)
    async with db.engine.connect() as conn:
        sql = str(stmt.compile(conn.engine, compile_kwargs={"literal_binds": True}))
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            plan = [str(r) for r in (await conn.execute(text(f"EXPLAIN {sql}"))).scalars()]
        else:
            rows = await conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))
            plan = [str(r[-1]) for r in rows]
    assert any(index in line for line in plan), plan


@pytest.mark.asyncio
async def test_a_downloaded_trade_stored_live_becomes_history(db: Database) -> None:
    """A download of trades the daemon already stored live: the live rows of the downloaded
    ids become ``download`` (kept), the others stay ``feed``; a download resumes after the
    newest history trade, not after the newest live one."""
    t0 = NOW - 30 * DAY_S
    async with db.sessionmaker() as s, s.begin():
        await repos.insert_trades(s, [trade(t0 + i, trade_id=f"t{i}") for i in range(3)])
    assert await trade_span(db, exchange="binance", symbol="BTC-USDT", history=True) is None
    rows = [
        {
            "exchange": "binance",
            "symbol": "BTC-USDT",
            "ts": utc(t0 + i),
            "price": 1.0,
            "amount": 1.0,
            "side": "buy",
            "trade_id": f"t{i}",
            "source": "download",
        }
        for i in (1, 2, 3)
    ]
    assert await save_trades(db, rows) == 1
    async with db.sessionmaker() as s:
        stored = [tuple(r) for r in await s.execute(select(TradeRow.trade_id, TradeRow.source))]
    assert sorted(stored) == [
        ("t0", "feed"),
        ("t1", "download"),
        ("t2", "download"),
        ("t3", "download"),
    ]
    assert await trade_span(db, exchange="binance", symbol="BTC-USDT", history=True) == t0 + 3
    config = StorageConfig(retention_days=7, retention_batch=10, retention_interval_s=3600)
    retention = Retention(db=db, config=config, clock=ManualClock(NOW))
    assert (await retention.run_once())["trades"] == 1
