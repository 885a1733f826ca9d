"""StoreWriter: batching by size and age, sampling, candles, flush on stop, stats."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from cryptomon.clock import ManualClock
from cryptomon.config import StorageConfig
from cryptomon.events import BookTop, Candle, OrderState
from cryptomon.hub import Hub
from cryptomon.store.db import Database
from cryptomon.store.models import (
    AnomalyRow,
    BookTopRow,
    CandleRow,
    FillRow,
    OrderRow,
    TradeRow,
)
from cryptomon.store.writer import DURABLE_BURST, StoreWriter
from tests.stubs import T0, anomaly, fill, intent, trade, update
from tests.util import wait_until

M = T0 - T0 % 60


async def count(db: Database, model: type) -> int:
    async with db.sessionmaker() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


class Rig:
    def __init__(self, db: Database, **storage: Any) -> None:
        self.db = db
        self.hub = Hub()
        self.clock = ManualClock(T0)
        self.writer = StoreWriter(
            hub=self.hub, db=db, config=StorageConfig(**storage), clock=self.clock
        )


@pytest_asyncio.fixture
async def rig_factory(db: Database) -> AsyncIterator[Any]:
    rigs: list[Rig] = []

    async def make(**storage: Any) -> Rig:
        rig = Rig(db, **storage)
        await rig.writer.start()
        await rig.hub.start()
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        if rig.writer._subs:
            await rig.writer.stop()


@pytest.mark.asyncio
async def test_stop_flushes_everything_buffered(db: Database, rig_factory: Any) -> None:
    """Nothing is written before the age/size limits; stop() writes every buffered row."""
    rig = await rig_factory(trades=True, batch_size=10_000, batch_max_age_s=3600)
    for i in range(50):
        rig.hub.publish(anomaly(ts_detected=T0 + i))
        rig.hub.publish(trade(M + i))
    await rig.hub.join()
    assert await count(db, AnomalyRow) == 0
    assert await count(db, TradeRow) == 0
    await rig.writer.stop()
    assert await count(db, AnomalyRow) == 50
    assert await count(db, TradeRow) == 50
    async with db.sessionmaker() as s:
        first = (await s.execute(select(TradeRow).order_by(TradeRow.ts).limit(1))).scalar_one()
    assert (first.exchange, first.symbol, first.price, first.amount, first.side) == (
        "binance",
        "BTC-USDT",
        100.0,
        1.0,
        "buy",
    )
    assert first.ts.timestamp() == M
    assert first.trade_id is not None
    assert await count(db, CandleRow) == 1  # the open minute is written on stop
    stats = rig.writer.stats()
    assert stats["rows"]["anomalies"] == 50
    assert stats["backlog"] == {"durable": 0, "market": 0, "queued": 0}


@pytest.mark.asyncio
async def test_batches_by_size_then_by_age(db: Database, rig_factory: Any) -> None:
    """Full batches are written at once (two pending ones in one transaction, a backlog's
    burst); the partial rest after batch_max_age_s."""
    rig = await rig_factory(batch_size=10, batch_max_age_s=5)
    for i in range(25):
        rig.hub.publish(anomaly(ts_detected=T0 + i))
    await rig.hub.join()
    await wait_until(lambda: rig.writer.stats()["rows"].get("anomalies", 0) == 20)
    assert await count(db, AnomalyRow) == 20
    assert rig.writer.stats()["batches"] == 1
    rig.clock.advance(5)
    await wait_until(lambda: rig.writer.stats()["rows"].get("anomalies", 0) == 25)
    assert await count(db, AnomalyRow) == 25
    assert rig.writer.stats()["batches"] == 2


@pytest.mark.asyncio
async def test_durable_backlog_written_in_bursts_of_whole_batches(
    db: Database, rig_factory: Any
) -> None:
    """A durable backlog goes DURABLE_BURST batches per transaction; nothing is lost."""
    rig = await rig_factory(batch_size=10, batch_max_age_s=3600)
    n = 10 * DURABLE_BURST * 2 + 10 * 3 + 4  # two full bursts, three batches, a partial rest
    for i in range(n):
        rig.hub.publish(anomaly(ts_detected=T0 + i))
    await rig.hub.join()
    await wait_until(lambda: rig.writer.stats()["rows"].get("anomalies", 0) == n - 4)
    assert rig.writer.stats()["batches"] == 3
    await rig.writer.stop()
    assert await count(db, AnomalyRow) == n
    assert rig.writer.stats()["batches"] == 4


@pytest.mark.asyncio
async def test_book_tops_sampled_per_market(db: Database, rig_factory: Any) -> None:
    """One book top per book_sample_s per market is kept."""
    rig = await rig_factory(book_sample_s=1.0)
    for sym in ("BTC-USDT", "ETH-USDT"):
        for i in range(12):  # every 0.25 s for 3 s
            ts = T0 + i * 0.25
            rig.hub.publish(
                BookTop(
                    exchange="binance",
                    symbol=sym,
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
            )
    await rig.writer.stop()
    assert await count(db, BookTopRow) == 6


@pytest.mark.asyncio
async def test_candles_from_trades_without_trade_rows(db: Database, rig_factory: Any) -> None:
    """With storage.trades off, trades still become candles but no trade rows."""
    rig = await rig_factory()
    for minute in range(3):
        for k in range(4):
            rig.hub.publish(trade(M + 60 * minute + k, price=100 + minute + k, amount=0.5))
    await rig.writer.stop()
    assert await count(db, TradeRow) == 0
    async with db.sessionmaker() as s:
        rows = (await s.execute(select(CandleRow).order_by(CandleRow.open_time))).scalars().all()
    assert [(r.open, r.high, r.close, r.volume, r.trade_count) for r in rows] == [
        (100, 103, 103, 2.0, 4),
        (101, 104, 104, 2.0, 4),
        (102, 105, 105, 2.0, 4),
    ]
    assert [r.closed for r in rows] == [True, True, False]


@pytest.mark.asyncio
async def test_trades_without_rows_never_wait_in_the_market_buffer(
    db: Database, rig_factory: Any
) -> None:
    """With storage.trades off every trade is folded into its candle as it is published:
    a tiny market buffer drops none of them and they never take a slot in it."""
    rig = await rig_factory(market_buffer=5)
    for minute in range(3):
        for k in range(40):
            rig.hub.publish(trade(M + 60 * minute + k, price=100 + minute, amount=0.25))
    assert rig.writer.stats()["backlog"]["queued"] == 0
    await rig.writer.stop()
    async with db.sessionmaker() as s:
        rows = (await s.execute(select(CandleRow).order_by(CandleRow.open_time))).scalars().all()
    assert [(r.trade_count, r.volume) for r in rows] == [(40, 10.0)] * 3
    assert rig.writer.stats()["dropped"] == 0


@pytest.mark.asyncio
async def test_only_closed_exchange_candles_are_stored(db: Database, rig_factory: Any) -> None:
    """Exchange candles are upserted when closed; in-progress ones are ignored."""
    rig = await rig_factory()
    for closed, start in ((True, M), (False, M + 60)):
        rig.hub.publish(
            Candle(
                exchange="binance",
                symbol="BTC-USDT",
                ts=start,
                ts_recv=start,
                interval="1m",
                start=start,
                end=start + 60,
                open=1,
                high=2,
                low=0.5,
                close=1.5,
                volume=3,
                closed=closed,
            )
        )
    await rig.writer.stop()
    async with db.sessionmaker() as s:
        rows = (await s.execute(select(CandleRow))).scalars().all()
    assert [(r.open_time.timestamp(), r.source) for r in rows] == [(M, "exchange")]


@pytest.mark.asyncio
async def test_order_lifecycle_through_the_hub(db: Database, rig_factory: Any) -> None:
    """Intent, updates and fills published on the hub end as one order in its last state."""
    rig = await rig_factory()
    for ev in (
        intent("o1"),
        update("o1", OrderState.SUBMITTED, exchange_order_id="E1"),
        fill("f1", "o1"),
        update("o1", OrderState.FILLED, filled=Decimal("0.05"), avg_price=Decimal("65000.05")),
        fill("f1", "o1"),  # a duplicate report of the same execution
    ):
        rig.hub.publish(ev)
    await rig.writer.stop()
    async with db.sessionmaker() as s:
        order = (await s.execute(select(OrderRow))).scalar_one()
    assert (order.state, order.exchange_order_id, order.filled) == ("filled", "E1", Decimal("0.05"))
    assert await count(db, FillRow) == 1


@pytest.mark.asyncio
async def test_row_the_database_refuses_is_rejected_alone(db: Database, rig_factory: Any) -> None:
    """A malformed event (NOT NULL column empty) is logged and counted; the rest of its batch
    is stored and the writer is not stuck retrying it."""
    rig = await rig_factory(batch_size=10, batch_max_age_s=3600)
    good = [anomaly(ts_detected=T0 + i) for i in range(9)]
    bad = anomaly(kind=None)
    for ev in [*good[:4], bad, *good[4:]]:
        rig.hub.publish(ev)
    await rig.hub.join()
    await wait_until(lambda: rig.writer.stats()["rejected"] == 1, message="one rejected row")
    assert await count(db, AnomalyRow) == 9
    assert rig.writer.stats()["retries"] == 0
    assert "IntegrityError" in (rig.writer.stats()["last_error"] or "")


@pytest.mark.asyncio
async def test_flagged_trades_are_stored_with_their_flag_never_in_candles(
    db: Database, rig_factory: Any
) -> None:
    """History and bad prints are stored flagged (with the notional), not aggregated."""
    from cryptomon.events import FlaggedTrade

    rig = await rig_factory(trades=True)
    live = trade(M + 1, price=100.0, notional=100.0)
    rig.hub.publish(live)
    for flag, price in (("historical", 99.0), ("bad_print", 1e308)):
        bad = trade(M + 2, price=price)
        rig.hub.publish(
            FlaggedTrade(
                exchange=bad.exchange,
                symbol=bad.symbol,
                ts=bad.ts,
                ts_recv=bad.ts,
                trade=bad,
                flag=flag,
            )
        )
    await rig.writer.stop()
    async with db.sessionmaker() as s:
        rows = (await s.execute(select(TradeRow).order_by(TradeRow.ts))).scalars().all()
        candle = (await s.execute(select(CandleRow))).scalars().one()
    assert sorted((r.price, r.flag, r.notional) for r in rows) == [
        (99.0, "historical", None),
        (100.0, None, 100.0),
        (1e308, "bad_print", None),
    ]
    assert (candle.high, candle.trade_count) == (100.0, 1)
    assert rig.writer.stats()["flagged_trades"] == 2


@pytest.mark.asyncio
@pytest.mark.parametrize("keep_trades", [False, True])
async def test_a_restart_within_a_minute_continues_the_minutes_stored_candle(
    db: Database, rig_factory: Any, keep_trades: bool
) -> None:
    """The daemon restarted in the middle of a minute (T0 is 20 s into minute M): the minute's
    candle from trades holds the trades of the run before the restart and of the new run
    (the earlier run's open, the extremes of both, the later close, summed volumes and
    counts), instead of the new run's alone replacing it; a minute after the restart's is
    the new run's own, and an exchange's candle still wins."""
    first = await rig_factory(trades=keep_trades)
    first.hub.publish(trade(M + 1, price=100.0, amount=1.0))
    first.hub.publish(trade(M + 5, price=90.0, amount=2.0, side="sell"))
    await first.writer.stop()
    second = await rig_factory(trades=keep_trades)
    second.hub.publish(trade(M + 30, price=120.0, amount=0.5))
    second.hub.publish(trade(M + 40, price=110.0, amount=0.25, side="sell"))
    await second.hub.join()
    await second.writer.flush()  # the open minute written once, then again on stop
    second.hub.publish(trade(M + 50, price=105.0, amount=0.25))
    second.hub.publish(trade(M + 61, price=107.0, amount=3.0))  # the next minute: its own
    await second.writer.stop()
    async with db.sessionmaker() as s:
        rows = (await s.execute(select(CandleRow).order_by(CandleRow.open_time))).scalars().all()
    assert [
        (r.open, r.high, r.low, r.close, r.volume, r.trade_count, r.buy_volume, r.sell_volume)
        for r in rows
    ] == [
        (100.0, 120.0, 90.0, 105.0, 4.0, 5, 1.75, 2.25),
        (107.0, 107.0, 107.0, 107.0, 3.0, 1, 3.0, 0.0),
    ]
    # a third run in the same minute continues the merged row, not the first run's part
    third = await rig_factory(trades=keep_trades)
    third.hub.publish(trade(M + 55, price=80.0, amount=1.0))
    await third.writer.stop()
    async with db.sessionmaker() as s:
        row = (
            await s.execute(select(CandleRow).order_by(CandleRow.open_time).limit(1))
        ).scalar_one()
    assert (row.open, row.low, row.close, row.volume, row.trade_count) == (
        100.0,
        80.0,
        80.0,
        5.0,
        6,
    )


@pytest.mark.asyncio
async def test_late_trades_of_the_minute_before_the_restart_continue_its_row_old_ones_replace(
    db: Database, rig_factory: Any
) -> None:
    """A run started in minute M (T0) that receives trades of minute M - 1 (late, or again
    from the bus) continues M - 1's stored row too; a minute further back (a replay of old
    data written twice) is replaced as before, so writing the same old trades again leaves
    the same row."""
    first = await rig_factory()
    first.hub.publish(trade(M - 50, price=100.0, amount=1.0))  # minute M - 1
    first.hub.publish(trade(M - 3600, price=50.0, amount=1.0, symbol="ETH-USDT"))  # an hour ago
    await first.writer.stop()
    second = await rig_factory()
    second.hub.publish(trade(M - 10, price=101.0, amount=2.0))
    second.hub.publish(trade(M - 3590, price=50.0, amount=1.0, symbol="ETH-USDT"))
    await second.writer.stop()
    async with db.sessionmaker() as s:
        rows = (await s.execute(select(CandleRow).order_by(CandleRow.open_time))).scalars().all()
    assert [(r.open, r.close, r.volume, r.trade_count) for r in rows] == [
        (50.0, 50.0, 1.0, 1),
        (100.0, 101.0, 3.0, 2),
    ]
