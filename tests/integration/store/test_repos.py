"""Idempotent writes: replaying any batch leaves exactly one row per event."""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import case, delete, event, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cryptomon.events import (
    AuditEntry,
    Candle,
    FeedStatus,
    NotificationRecord,
    OrderState,
    PositionUpdate,
    RiskEvent,
    Signal,
)
from cryptomon.store import bulk, repos
from cryptomon.store.db import Database
from cryptomon.store.models import (
    AnomalyRow,
    AuditRow,
    CandleRow,
    FeedEventRow,
    FillRow,
    NotificationRow,
    OrderRow,
    PositionRow,
    RiskEventRow,
    SignalRow,
)
from tests.stubs import T0, anomaly, fill, intent, trade, update


async def _count(db: Database, model: type) -> int:
    async with db.sessionmaker() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def _write(db: Database, fn, events) -> None:  # type: ignore[no-untyped-def]
    async with db.sessionmaker() as s, s.begin():
        await fn(s, events)


@pytest.mark.asyncio
async def test_anomalies_and_signals_are_keyed_by_event_id(db: Database) -> None:
    """The same anomaly/signal written twice is one row; its fields round-trip."""
    a = anomaly()
    sig = Signal(
        exchange="binance",
        symbol="BTC-USDT",
        ts=T0,
        ts_recv=T0,
        side="buy",
        strength=0.7,
        source="volume",
        anomaly_id=a.id,
    )
    for _ in range(2):
        await _write(db, repos.insert_anomalies, [a, a])
        await _write(db, repos.insert_signals, [sig])
    assert await _count(db, AnomalyRow) == 1
    assert await _count(db, SignalRow) == 1
    async with db.sessionmaker() as s:
        row = (await s.execute(select(AnomalyRow))).scalar_one()
    assert row.reasons == ["Z-score: 5.00"]
    assert row.severity == "high"
    assert row.severity_rank == 2
    assert row.ts_detected == datetime.fromtimestamp(T0 + 0.001, UTC)


@pytest.mark.asyncio
async def test_record_intent_commits_new_order(db: Database) -> None:
    """record_intent writes the order in state 'new' in its own committed transaction."""
    await repos.record_intent(db, intent())
    await repos.record_intent(db, intent())  # a retry is harmless
    async with db.sessionmaker() as s:
        row = (await s.execute(select(OrderRow))).scalar_one()
    assert row.state == "new"
    assert row.amount == Decimal("0.123456789012345678")
    assert row.filled == 0
    assert row.stop_loss == Decimal("63000")


@pytest.mark.asyncio
async def test_order_updates_apply_and_replay_is_harmless(db: Database) -> None:
    """Updates set state/filled/avg/exchange id; a replayed intent never resets the order."""
    await repos.record_intent(db, intent())
    batch = [
        intent(),
        update(state=OrderState.SUBMITTED, exchange_order_id="X1"),
        update(
            state=OrderState.FILLED,
            filled=Decimal("0.123456789012345678"),
            avg_price=Decimal("64999.5"),
            ts=T0 + 5,
        ),
    ]
    for _ in range(2):
        await _write(db, repos.upsert_orders, batch)
    await _write(db, repos.upsert_orders, [intent()])
    async with db.sessionmaker() as s:
        row = (await s.execute(select(OrderRow))).scalar_one()
    assert row.state == "filled"
    assert row.exchange_order_id == "X1"  # kept although the last update had none
    assert row.avg_price == Decimal("64999.5")
    assert row.filled == Decimal("0.123456789012345678")
    assert row.price == Decimal("65000.1")
    assert row.updated_at.timestamp() == T0 + 5
    assert row.created_at.timestamp() == T0


@pytest.mark.asyncio
async def test_update_for_unknown_order_creates_it(db: Database) -> None:
    """An update whose intent was never seen (reconciliation) creates the order row."""
    await _write(db, repos.upsert_orders, [update("cm-x", OrderState.CANCELED, reason="gone")])
    async with db.sessionmaker() as s:
        row = (await s.execute(select(OrderRow))).scalar_one()
    assert (row.client_order_id, row.state, row.origin, row.reason) == (
        "cm-x",
        "canceled",
        "reconcile",
        "gone",
    )


@pytest.mark.asyncio
async def test_fills_unique_per_exchange_trade_id(db: Database) -> None:
    """A fill replayed (same exchange + trade id) is stored once; another trade id is new."""
    await _write(db, repos.insert_fills, [fill("t-1"), fill("t-1")])
    await _write(db, repos.insert_fills, [fill("t-1"), fill("t-2")])
    assert await _count(db, FillRow) == 2


@pytest.mark.asyncio
async def test_positions_last_update_wins(db: Database) -> None:
    """One row per market holding the latest update."""

    def pos(amount: str, ts: float) -> PositionUpdate:
        return PositionUpdate(
            exchange="binance",
            symbol="BTC-USDT",
            ts=ts,
            ts_recv=ts,
            amount=Decimal(amount),
            avg_price=Decimal("100"),
            realized_pnl=Decimal("1.5"),
            unrealized_pnl=Decimal("-2"),
            fees=Decimal("0.01"),
        )

    await _write(db, repos.upsert_positions, [pos("1", T0), pos("2", T0 + 1)])
    await _write(db, repos.upsert_positions, [pos("-0.5", T0 + 2)])
    async with db.sessionmaker() as s:
        row = (await s.execute(select(PositionRow))).scalar_one()
    assert row.amount == Decimal("-0.5")
    assert row.unrealized_pnl == Decimal(-2)


@pytest.mark.asyncio
async def test_operations_rows_exactly_once(db: Database) -> None:
    """Notifications, audit entries, feed events and risk events survive a replayed batch once."""
    note = NotificationRecord(
        exchange="binance",
        symbol="BTC-USDT",
        ts=T0,
        ts_recv=T0,
        channel="ops",
        status="sent",
        title="Volume spike",
        attempts=1,
    )
    audit = AuditEntry(
        exchange="",
        symbol="",
        ts=T0,
        ts_recv=T0,
        actor="api:admin",
        action="kill_switch",
        payload=json.dumps({"on": True}),
    )
    bad_audit = AuditEntry(
        exchange="", symbol="", ts=T0, ts_recv=T0, actor="cli", action="x", payload="not json"
    )
    feed = FeedStatus(
        exchange="binance", symbol="", ts=T0, ts_recv=T0, channel="trades", status="disconnected"
    )
    risk = RiskEvent(
        exchange="binance",
        symbol="BTC-USDT",
        ts=T0,
        ts_recv=T0,
        kind="rejected",
        state="active",
        reason="max position",
        client_order_id="cm-1",
    )
    batch = [note, audit, bad_audit, feed, risk]
    for _ in range(2):
        async with db.sessionmaker() as s, s.begin():
            counts = await repos.write_durable(s, batch)
    assert counts == {"notifications": 1, "audit_log": 2, "feed_events": 1, "risk_events": 1}
    assert await _count(db, NotificationRow) == 1
    assert await _count(db, AuditRow) == 2
    assert await _count(db, FeedEventRow) == 1
    assert await _count(db, RiskEventRow) == 1
    async with db.sessionmaker() as s:
        payloads = {r.action: r.payload for r in (await s.execute(select(AuditRow))).scalars()}
    assert payloads == {"kill_switch": {"on": True}, "x": {"raw": "not json"}}


@pytest.mark.asyncio
async def test_exchange_candle_wins_over_aggregated_one(db: Database) -> None:
    """An exchange candle replaces a trade-aggregated row; an aggregated row never replaces it."""
    start = datetime.fromtimestamp(T0, UTC)
    agg = {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "interval": "1m",
        "open_time": start,
        "close_time": datetime.fromtimestamp(T0 + 60, UTC),
        "open": 1.0,
        "high": 2.0,
        "low": 0.5,
        "close": 1.5,
        "volume": 10.0,
        "trade_count": 3,
        "buy_volume": 6.0,
        "sell_volume": 4.0,
        "closed": False,
        "source": "trades",
    }
    exch = Candle(
        exchange="binance",
        symbol="BTC-USDT",
        ts=T0 + 60,
        ts_recv=T0 + 60,
        interval="1m",
        start=T0,
        end=T0 + 60,
        open=1.1,
        high=2.1,
        low=0.4,
        close=1.6,
        volume=11.0,
        trades=4,
    )
    async with db.sessionmaker() as s, s.begin():
        await repos.upsert_candles(s, [agg])
    async with db.sessionmaker() as s, s.begin():
        await repos.upsert_candles(s, [repos.candle_row(exch)])
    async with db.sessionmaker() as s, s.begin():
        await repos.upsert_candles(s, [{**agg, "volume": 99.0}])
    async with db.sessionmaker() as s:
        row = (await s.execute(select(CandleRow))).scalar_one()
    assert (row.source, row.volume, row.trade_count, row.closed) == ("exchange", 11.0, 4, True)


@pytest.mark.asyncio
@pytest.mark.parametrize("history_on", ["exchange", "trades", "neither"])
async def test_exchange_candle_wins_over_aggregated_one_in_the_same_batch(
    db: Database, history_on: str
) -> None:
    """The writer's market batch holds the venue's candle and, after it, the bar built from
    trades of the same minute: the exchange candle is stored, as across batches, and a
    history flag on either row sticks (the upsert's rule, applied inside one statement)."""
    start = datetime.fromtimestamp(T0, UTC)
    exch = repos.candle_row(
        Candle(
            exchange="binance",
            symbol="BTC-USDT",
            ts=T0 + 60,
            ts_recv=T0 + 60,
            interval="1m",
            start=T0,
            end=T0 + 60,
            open=1.1,
            high=2.1,
            low=0.4,
            close=1.6,
            volume=11.0,
            trades=4,
        )
    )
    agg = {
        **exch,
        "open_time": start,
        "volume": 10.0,
        "trade_count": 3,
        "buy_volume": 6.0,
        "sell_volume": 4.0,
        "source": "trades",
    }
    exch["history"] = history_on == "exchange"
    agg["history"] = history_on == "trades"
    async with db.sessionmaker() as s, s.begin():
        await repos.upsert_candles(s, [exch, agg])
    async with db.sessionmaker() as s:
        row = (await s.execute(select(CandleRow))).scalar_one()
    assert (row.source, row.volume, row.trade_count) == ("exchange", 11.0, 4)
    assert row.history is (history_on != "neither")


@pytest.mark.asyncio
async def test_update_before_intent_in_one_batch_keeps_both(db: Database) -> None:
    """An update queued ahead of its intent keeps its state; the intent supplies the rest."""
    await _write(
        db,
        repos.upsert_orders,
        [update("cm-2", OrderState.SUBMITTED, exchange_order_id="X2", price=None), intent("cm-2")],
    )
    async with db.sessionmaker() as s:
        row = (await s.execute(select(OrderRow))).scalar_one()
    assert (row.state, row.exchange_order_id, row.origin) == ("submitted", "X2", "signal")
    assert row.price == Decimal("65000.1")
    assert row.stop_loss == Decimal("63000")


@pytest.mark.asyncio
async def test_update_without_avg_price_keeps_the_known_one(db: Database) -> None:
    """A later update lacking avg_price/exchange id does not erase the stored values."""
    await repos.record_intent(db, intent())
    await _write(
        db,
        repos.upsert_orders,
        [
            update(
                state=OrderState.PARTIALLY_FILLED,
                filled=Decimal("0.1"),
                avg_price=Decimal("64000"),
                exchange_order_id="X9",
            )
        ],
    )
    await _write(
        db, repos.upsert_orders, [update(state=OrderState.CANCELED, filled=Decimal("0.1"))]
    )
    async with db.sessionmaker() as s:
        row = (await s.execute(select(OrderRow))).scalar_one()
    assert (row.state, row.avg_price, row.exchange_order_id) == ("canceled", Decimal(64000), "X9")


@pytest.mark.asyncio
async def test_anomaly_rows_are_those_the_orm_insert_writes(db: Database) -> None:
    """``insert_anomalies`` (plain executemany on SQLite, Core on PostgreSQL) stores every
    column exactly as the ORM's bulk insert of the same values does."""
    variants = [
        anomaly(),
        anomaly(
            ts=T0 + 0.000001,
            ts_recv=T0 + 2.5,
            ts_detected=0.0,  # falls back to ts_recv
            z_score=None,
            price_change_pct=-1.25,
            window_mean=None,
            window_std=0.5,
            samples=7,
            severity="critical",
            reasons=('quote "x" \\ é ✓', "Price change: -1.25%"),
        ),
        anomaly(ts=-1.0e10, ts_recv=-1.0e10, ts_detected=0.0, reasons=()),  # year 1653
    ]
    ours = [repos.anomaly_tuple(a, dialect=db.dialect, json_reasons=False) for a in variants]
    async with db.sessionmaker() as s, s.begin():
        await repos.insert_anomalies(s, variants)
        orm_rows = [
            dict(zip(repos.ANOMALY_COLUMNS, (f"orm-{i}", *row[1:]), strict=True))
            for i, row in enumerate(ours)
        ]
        await repos.insert_ignore(s, AnomalyRow, orm_rows, ["id"])
    cols = ", ".join(repos.ANOMALY_COLUMNS)
    async with db.engine.connect() as conn:
        stored = (await conn.exec_driver_sql(f"SELECT {cols} FROM anomalies")).all()
    by_id = {row[0]: tuple(row[1:]) for row in stored}
    assert len(by_id) == 2 * len(variants)
    for i, a in enumerate(variants):
        assert by_id[a.id] == by_id[f"orm-{i}"]
    reasons = by_id[variants[1].id][repos.ANOMALY_COLUMNS.index("reasons") - 1]
    if isinstance(reasons, str):  # SQLite's JSON text; PostgreSQL's driver parses it
        reasons = json.loads(reasons)
    assert reasons == list(variants[1].reasons)


@pytest.mark.asyncio
async def test_bulk_rows_across_statement_boundaries(db: Database) -> None:
    """Market rows and anomalies in batches that fill several multi-row statements and leave
    a remainder (SQLite: :data:`bulk.SQLITE_ROWS_PER_INSERT` rows per INSERT) are stored
    exactly once each, with their values; an anomaly repeated within the batch, across a
    statement boundary, is stored once."""
    n = 2 * bulk.SQLITE_ROWS_PER_INSERT + 5
    trades = [
        trade(T0 + i * 0.001, price=100.0 + i / 3, amount=0.1 * (i + 1), trade_id=f"t-{i:04d}")
        for i in range(n)
    ]
    anomalies = [anomaly(ts=T0 + i, value=float(i)) for i in range(n)]
    anomalies.insert(bulk.SQLITE_ROWS_PER_INSERT + 1, anomalies[3])  # same id twice
    statements: list[str] = []
    async with db.sessionmaker() as s, s.begin():
        conn = await s.connection()
        if db.dialect == "sqlite":
            raw = await conn.get_raw_connection()
            await raw.driver_connection.set_trace_callback(statements.append)
        await repos.insert_trades(s, trades)
        await repos.insert_anomalies(s, anomalies)
        if db.dialect == "sqlite":
            await raw.driver_connection.set_trace_callback(None)
    async with db.engine.connect() as conn:
        stored = (
            await conn.exec_driver_sql(
                "SELECT trade_id, price, amount FROM trades ORDER BY trade_id"
            )
        ).all()
        values = (await conn.exec_driver_sql("SELECT value FROM anomalies ORDER BY value")).all()
    assert [tuple(r) for r in stored] == [(t.trade_id, t.price, t.amount) for t in trades]
    assert [v for (v,) in values] == [float(i) for i in range(n)]
    if db.dialect == "sqlite":
        inserts = [q for q in statements if q.startswith("INSERT INTO trades")]
        # two full statements, the 5 rows left as 4 + 1: not one statement per row
        assert len(inserts) == 4
        assert sum(q.startswith("INSERT INTO anomalies") for q in statements) == 4  # 6 = 4 + 2


def _candle(
    i: int, *, source: str = "trades", history: bool | None = None, volume: float = 1.0
) -> dict[str, object]:
    """Candle row ``i`` (minute ``i`` of one market); ``history`` None: the key left out."""
    start = T0 - T0 % 60 + 60 * i
    row: dict[str, object] = {
        "exchange": "binance",
        "symbol": "BTC-USDT",
        "interval": "1m",
        "open_time": datetime.fromtimestamp(start, UTC),
        "close_time": datetime.fromtimestamp(start + 60, UTC),
        "open": 1.0 + i,
        "high": 2.0 + i + volume,
        "low": 0.5,
        "close": 1.5 + volume,
        "volume": volume,
        "trade_count": None if source == "exchange" and history else int(volume),
        "buy_volume": volume / 2 if source == "trades" else None,
        "sell_volume": volume / 3 if source == "trades" else None,
        "closed": i % 2 == 0,
        "source": source,
    }
    if history is not None:
        row["history"] = history
    return row


_SOURCES = ("exchange", "trades", "download")
_HISTORY = (True, False, None)


def _candle_cases() -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Stored rows and a batch over them: every (stored source, stored history) x (new
    source, new history or none) on stored minutes, every new one on fresh minutes, and keys
    twice in the batch (first and last rows differing in source and history)."""
    stored: list[dict[str, object]] = []
    batch: list[dict[str, object]] = []
    i = 0
    for old_source in ("exchange", "trades"):
        for old_history in (True, False):
            for new_source in _SOURCES:
                for new_history in _HISTORY:
                    stored.append(_candle(i, source=old_source, history=old_history))
                    batch.append(_candle(i, source=new_source, history=new_history, volume=7))
                    i += 1
    for new_source in _SOURCES:
        for new_history in _HISTORY:
            batch.append(_candle(i, source=new_source, history=new_history, volume=3))
            i += 1
    batch.insert(1, _candle(0, source="trades", history=False, volume=5))  # stored key twice
    batch.insert(2, _candle(i, source="exchange", history=True, volume=5))  # new key twice
    batch.append(_candle(i, source="trades", history=None, volume=6))
    batch.append(_candle(3, source="exchange", history=True, volume=8))
    return stored, batch


async def _upsert_row_by_row(session: AsyncSession, rows: list[dict[str, object]]) -> int:
    """The reference: the candle upsert as one SQLAlchemy Core ``INSERT ... ON CONFLICT DO
    UPDATE`` executemany (one statement per row; what ``upsert_candles`` ran on both
    databases before its multi-row statements), duplicate keys settled first
    (:func:`~cryptomon.store.bulk.latest_candles`)."""
    latest = bulk.latest_candles(rows)
    ins = bulk.dialect_insert(session, CandleRow)
    ex = ins.excluded
    wins = (CandleRow.source != "exchange") | (ex.source == "exchange")
    values = (
        *("close_time", "open", "high", "low", "close", "volume", "trade_count"),
        *("buy_volume", "sell_volume", "closed", "source"),
    )
    set_: dict[str, object] = {
        c: case((wins, ex[c]), else_=CandleRow.__table__.c[c]) for c in values
    }
    set_["history"] = CandleRow.history | ex.history
    stmt = ins.on_conflict_do_update(
        index_elements=["exchange", "symbol", "interval", "open_time"],
        set_=set_,
        where=wins | (ex.history & ~CandleRow.history),
    )
    await session.execute(stmt, list(latest.values()))
    return len(latest)


async def _upserted(
    db: Database,
    upsert: Callable[[AsyncSession, list[dict[str, object]]], Awaitable[int]],
    stored: list[dict[str, object]],
    batch: list[dict[str, object]],
) -> tuple[int, list[tuple[object, ...]]]:
    """The stored rows (raw driver values, ``id`` aside) after ``stored`` then ``batch``
    upserted into an empty table (``stored`` by the Core upsert, ``batch`` by ``upsert``)."""
    async with db.sessionmaker() as s, s.begin():
        await s.execute(delete(CandleRow))
        await _upsert_row_by_row(s, stored)
    async with db.sessionmaker() as s, s.begin():
        written = await upsert(s, batch)
    cols = ", ".join(bulk.CANDLE_COLUMNS)
    async with db.engine.connect() as conn:
        rows = await conn.exec_driver_sql(
            f"SELECT {cols} FROM candles ORDER BY exchange, symbol, interval, open_time"
        )
        return written, [tuple(r) for r in rows]


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [1, 3, 0, 1025, 1500])
async def test_candle_upserts_store_what_the_row_by_row_upsert_stores(
    db: Database, size: int
) -> None:
    """``upsert_candles`` (multi-row statements) leaves exactly the rows the Core upsert (one
    statement per row) leaves, raw values compared: new and stored minutes, every source and
    history combination, keys twice in a batch (settled by the upsert's own rule: the last row
    wins unless an earlier one is the exchange's candle and it is not), and batch sizes around
    the 1,024-row statements (0: the cases alone)."""
    stored, batch = _candle_cases()
    if size and size < len(batch):
        batch = batch[:size]
    fresh = 1000
    while size > len(batch):  # distinct new minutes, alternating sources and history
        n = len(batch)
        batch.append(_candle(fresh, source=_SOURCES[n % 3], history=_HISTORY[n % 2], volume=n))
        fresh += 1
    ours = await _upserted(db, repos.upsert_candles, stored, batch)
    reference = await _upserted(db, _upsert_row_by_row, stored, batch)
    assert ours == reference
    assert ours[0] == len({(r["open_time"]) for r in batch})
    if not size:  # the duplicated keys
        assert len(ours[1]) == len(stored) + 9 + 1
        volumes = sorted(r[bulk.CANDLE_COLUMNS.index("volume")] for r in ours[1])
        # the new key twice, the exchange's candle first: it stays, the trades bar after it
        # does not replace it; a stored key's exchange candle then a trades bar: the same
        assert volumes.count(5.0) == 1
        assert volumes.count(6.0) == 0
        assert volumes.count(8.0) == 1  # a trades row then the exchange's: the last wins


@pytest.mark.asyncio
async def test_candle_upserts_take_few_statements(db: Database) -> None:
    """A batch of candles beyond two full statements (one key twice, across them) is four
    INSERTs (1,024 + 1,024 + 4 + 1 rows), not one per row; every row stored."""
    n = 2 * bulk.SQLITE_ROWS_PER_INSERT + 5
    batch = [_candle(i, history=i % 3 == 0, volume=float(i)) for i in range(n)]
    batch.append(_candle(7, source="exchange", volume=-1.0))
    statements: list[str] = []  # every statement the database runs (SQLite: its trace)

    def sent(_c, _cur, sql, params, _ctx, executemany):  # type: ignore[no-untyped-def]
        statements.extend([sql] * (len(params) if executemany else 1))

    async with db.sessionmaker() as s, s.begin():
        conn = await s.connection()
        if db.dialect == "sqlite":
            raw = await conn.get_raw_connection()
            await raw.driver_connection.set_trace_callback(statements.append)
        else:  # PostgreSQL: the statements sent (an executemany: one per parameter set)
            event.listen(db.engine.sync_engine, "before_cursor_execute", sent)
        try:
            assert await repos.upsert_candles(s, batch) == n
        finally:
            if db.dialect == "sqlite":
                await raw.driver_connection.set_trace_callback(None)
            else:
                event.remove(db.engine.sync_engine, "before_cursor_execute", sent)
    async with db.engine.connect() as conn:
        stored = (
            await conn.exec_driver_sql("SELECT volume, source FROM candles ORDER BY open_time")
        ).all()
    expected = [(float(i), "trades") for i in range(n)]
    expected[7] = (-1.0, "exchange")
    assert [tuple(r) for r in stored] == expected
    assert sum(q.startswith("INSERT INTO candles") for q in statements) == 4


def test_sqlite_statements_flatten_full_statements_and_the_rest() -> None:
    rows = [(i, datetime(2026, 1, 1, tzinfo=UTC), -i) for i in range(7)]
    text = "2026-01-01 00:00:00.000000"
    groups = bulk.sqlite_statements(rows, (1,), 4)
    assert groups == [
        (4, [(0, text, 0, 1, text, -1, 2, text, -2, 3, text, -3)]),
        (2, [(4, text, -4, 5, text, -5)]),
        (1, [(6, text, -6)]),
    ]
    assert [size for size, _ in bulk.sqlite_statements(rows * 3, (1,), 4)] == [4, 1]
    # whatever the batch, the statement sizes come from a fixed set (bounded SQL caches)
    sizes = {
        size for n in range(1, 40) for size, _ in bulk.sqlite_statements(rows[:1] * n, (1,), 8)
    }
    assert sizes == {8, 4, 2, 1}
    assert bulk.sqlite_rows_per_insert(13, 250_000) == bulk.SQLITE_ROWS_PER_INSERT
    assert bulk.sqlite_rows_per_insert(20, 999) == 49  # SQLite before 3.32: 999 values at most
    assert bulk.sqlite_rows_per_insert(2000, 999) == 1


def test_sqlite_statements_equal_the_row_by_row_conversion() -> None:
    """The flat conversion (one slice per time column) gives, statement by statement, the
    parameters of converting each row (sqlite_params / sqlite_params_at) and then
    flattening: aware, naive, other-zone and early-year times, None, every batch size."""
    east = timezone(timedelta(hours=5, minutes=30))
    times = [
        datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 17, 30, 1, 5, tzinfo=east),
        datetime(2026, 3, 1, 12, 0, 2, 999999),  # naive: taken as UTC
        datetime(999, 12, 31, 23, 59, 59, 1, tzinfo=UTC),  # strftime's unpadded year
        datetime(1, 1, 1, tzinfo=UTC),
    ]
    one = [(f"x{i}", times[i % len(times)], float(i), None) for i in range(37)]
    two = [
        (i, times[i % len(times)], None if i % 3 else times[-i % len(times)], "s")
        for i in range(37)
    ]
    for n in range(0, 38):
        assert bulk.sqlite_statements(one[:n], (1,), 8) == bulk.statement_groups(
            bulk.sqlite_params(one[:n], 1), 8
        )
        assert bulk.sqlite_statements(two[:n], (1, 2), 4) == bulk.statement_groups(
            bulk.sqlite_params_at(two[:n], (1, 2)), 4
        )
    with pytest.raises(ValueError, match="unequal width"):
        bulk.sqlite_statements([(1, times[0]), (2, times[0], 3)], (1,), 4)


def test_sqlite_statements_store_epoch_seconds_as_their_utc_datetime() -> None:
    """The store writer's market rows keep their epoch seconds on SQLite: each is stored as
    the text of ``datetime.fromtimestamp(ts, UTC)`` (its microseconds rounded half to even,
    carried into the next second), for any float."""
    rng = random.Random(16)
    stamps = [
        1_767_225_600.0,
        1_767_225_599.9999995,  # rounds up into the next second
        1_767_225_600.0000005,
        1_767_225_600.0000015,
        0.0,
        -1.5,
        -0.0000004,
        -31_000_000_000.123456,  # year 987: strftime's unpadded year
        253_402_300_799.5,  # 9999-12-31 23:59:59.500000
        *(rng.uniform(1.6e9, 1.8e9) for _ in range(3000)),
        *(round(rng.uniform(1.6e9, 1.8e9), 6) + 0.0000005 for _ in range(1000)),
        *(rng.uniform(-6e10, 2.5e11) for _ in range(1000)),
        # around midnights (the date is made once per day): into the next day and back
        *(d * 86_400.0 + e for d in (-2, -1, 0, 1, 20_454) for e in (-0.0000004, -0.0000006)),
        *(d * 86_400.0 + e for d in (-2, -1, 0, 1, 20_454) for e in (-1.0, 59.5, 3599.5)),
    ]
    rows = [(str(i), ts, float(i)) for i, ts in enumerate(stamps)]
    expected = bulk.statement_groups(
        [(r[0], bulk.sqlite_text(datetime.fromtimestamp(r[1], UTC)), r[2]) for r in rows], 64
    )
    assert bulk.sqlite_statements(rows, (1,), 64) == expected
    mixed = [(ts, datetime.fromtimestamp(ts, UTC)) for ts in stamps[:50]]
    flat = [v for _, stmts in bulk.sqlite_statements(mixed, (0, 1), 8) for p in stmts for v in p]
    assert flat[0::2] == flat[1::2]  # a float and its datetime give the same text
