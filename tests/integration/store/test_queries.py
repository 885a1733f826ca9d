"""The read side: filters, keyset pagination, stats, market data, trading and operations."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cryptomon.events import (
    AuditEntry,
    BookTop,
    Candle,
    FeedStatus,
    NotificationRecord,
    OrderState,
    PositionUpdate,
    Severity,
    Signal,
)
from cryptomon.store import repos
from cryptomon.store.db import Database
from cryptomon.store.queries import Queries, encode_cursor
from cryptomon.store.types import utc
from tests.stubs import T0, anomaly, fill, intent, update

SEVERITIES = [Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL]


async def _seed_anomalies(db: Database, n: int = 25) -> list[str]:
    events = [
        anomaly(
            kind="volume" if i % 2 else "price",
            severity=SEVERITIES[i % 4],
            symbol="BTC-USDT" if i % 3 else "ETH-USDT",
            ts=T0 + i,
            # pairs share a detection time so the id breaks the tie
            ts_detected=T0 + i // 2,
        )
        for i in range(n)
    ]
    async with db.sessionmaker() as s, s.begin():
        await repos.insert_anomalies(s, events)
    return [e.id for e in events]


@pytest.mark.asyncio
async def test_anomaly_pages_cover_everything_once_newest_first(db: Database) -> None:
    """Keyset pages of 7 return all 25 anomalies once, ordered by detection time desc."""
    ids = await _seed_anomalies(db)
    q = Queries(db=db)
    seen: list[dict] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = await q.anomalies(limit=7, cursor=cursor)
        seen.extend(page)
        pages += 1
        if cursor is None:
            break
    assert pages == 4
    assert sorted(r["id"] for r in seen) == sorted(ids)
    keys = [(r["ts_detected"], r["id"]) for r in seen]
    assert keys == sorted(keys, reverse=True)
    assert isinstance(seen[0]["ts_detected"], float)
    assert isinstance(seen[0]["reasons"], list)
    assert "severity_rank" not in seen[0]


@pytest.mark.asyncio
async def test_anomaly_filters(db: Database) -> None:
    """exchange/symbol/kind/min_severity/time range filters select the matching rows only."""
    await _seed_anomalies(db)
    q = Queries(db=db)
    rows, _ = await q.anomalies(symbol="ETH-USDT", limit=100)
    assert len(rows) == 9
    assert {r["symbol"] for r in rows} == {"ETH-USDT"}
    rows, _ = await q.anomalies(kind="volume", min_severity="high", limit=100)
    assert rows
    assert all(r["kind"] == "volume" and r["severity"] in ("high", "critical") for r in rows)
    rows, _ = await q.anomalies(since=T0 + 3, until=T0 + 5, limit=100)
    assert {r["ts_detected"] for r in rows} == {T0 + 3, T0 + 4, T0 + 5}
    rows, _ = await q.anomalies(exchange="kraken")
    assert rows == []
    rows, _ = await q.anomalies(since=datetime.fromtimestamp(T0 + 12, UTC), limit=100)
    assert {r["ts_detected"] for r in rows} == {T0 + 12}


@pytest.mark.asyncio
async def test_bad_query_arguments_raise_clear_value_errors(db: Database) -> None:
    """Invalid cursor, severity, limit or range raise ValueError naming the argument."""
    q = Queries(db=db)
    with pytest.raises(ValueError, match="invalid cursor"):
        await q.anomalies(cursor="not-a-cursor!")
    with pytest.raises(ValueError, match="min_severity must be one of low, medium"):
        await q.anomalies(min_severity="extreme")
    with pytest.raises(ValueError, match="limit must be an integer from 1"):
        await q.anomalies(limit=0)
    with pytest.raises(ValueError, match=r"since .* must not be after until"):
        await q.anomalies(since=T0 + 10, until=T0)
    with pytest.raises(ValueError, match="since must be epoch seconds"):
        await q.signals(since="yesterday")  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_anomaly_stats_counts(db: Database) -> None:
    """Counts by kind, severity and symbol over a range."""
    await _seed_anomalies(db, n=8)
    stats = await Queries(db=db).anomaly_stats()
    assert stats["total"] == 8
    assert stats["by_kind"] == {"price": 4, "volume": 4}
    assert stats["by_severity"] == {"low": 2, "medium": 2, "high": 2, "critical": 2}
    assert stats["by_symbol"] == {"BTC-USDT": 5, "ETH-USDT": 3}
    ranged = await Queries(db=db).anomaly_stats(since=T0 + 3)
    assert ranged["total"] == 2


@pytest.mark.asyncio
async def test_candles_and_latest_book_top(db: Database) -> None:
    """Candles come oldest first (latest N without since); the newest book top is returned."""
    candles = [
        Candle(
            exchange="binance",
            symbol="BTC-USDT",
            ts=T0,
            ts_recv=T0,
            interval="1m",
            start=T0 + 60 * i,
            end=T0 + 60 * (i + 1),
            open=1,
            high=2,
            low=0.5,
            close=1.5,
            volume=float(i),
        )
        for i in range(5)
    ]
    tops = [
        BookTop(
            exchange="binance",
            symbol="BTC-USDT",
            ts=T0 + i,
            ts_recv=T0 + i,
            bid=100 + i,
            bid_size=1,
            ask=101 + i,
            ask_size=2,
            spread=1,
            spread_bps=99,
            bid_depth=5,
            ask_depth=6,
            imbalance=-0.09,
            levels=10,
        )
        for i in range(3)
    ]
    async with db.sessionmaker() as s, s.begin():
        await repos.upsert_candles(s, [repos.candle_row(c) for c in candles])
        await repos.insert_book_tops(s, tops)
    q = Queries(db=db)
    latest = await q.candles(exchange="binance", symbol="BTC-USDT", limit=2)
    assert [c["volume"] for c in latest] == [3.0, 4.0]
    ranged = await q.candles(exchange="binance", symbol="BTC-USDT", since=T0 + 60, limit=2)
    assert [c["open_time"] for c in ranged] == [T0 + 60, T0 + 120]
    top = await q.latest_book_top("binance", "BTC-USDT")
    assert top is not None
    assert (top["bid"], top["ts"]) == (102.0, T0 + 2)
    assert await q.latest_book_top("binance", "DOGE-USDT") is None


@pytest.mark.asyncio
async def test_trading_queries(db: Database) -> None:
    """orders/order/fills/positions/signals return the stored trading state with Decimals."""
    pos = PositionUpdate(
        exchange="binance",
        symbol="BTC-USDT",
        ts=T0,
        ts_recv=T0,
        amount=Decimal("0.05"),
        avg_price=Decimal("65000.05"),
        realized_pnl=Decimal(0),
        unrealized_pnl=Decimal("1.2"),
        fees=Decimal("0.0001"),
    )
    sig = Signal(
        exchange="binance",
        symbol="BTC-USDT",
        ts=T0,
        ts_recv=T0,
        side="buy",
        strength=0.9,
        source="volume",
    )
    async with db.sessionmaker() as s, s.begin():
        await repos.write_durable(
            s,
            [
                intent("a"),
                intent("b", ts=T0 + 10),
                update("a", OrderState.FILLED, filled=Decimal("0.05")),
                fill("t1", "a"),
                pos,
                sig,
            ],
        )
    q = Queries(db=db)
    assert [o["client_order_id"] for o in await q.orders()] == ["b", "a"]
    assert [o["client_order_id"] for o in await q.orders(state="filled")] == ["a"]
    order = await q.order("a")
    assert order is not None
    assert order["filled"] == Decimal("0.05")
    assert await q.order("zzz") is None
    fills = await q.fills(symbol="BTC-USDT")
    assert fills[0]["price"] == Decimal("65000.05")
    assert (await q.positions())[0]["amount"] == Decimal("0.05")
    assert (await q.signals(symbol="BTC-USDT"))[0]["strength"] == 0.9


@pytest.mark.asyncio
async def test_operations_queries(db: Database) -> None:
    """notifications/feed_events/audit_log/equity_snapshots filter and order newest first."""
    events = [
        NotificationRecord(
            exchange="",
            symbol="",
            ts=T0 + i,
            ts_recv=T0 + i,
            channel="ops" if i else "mail",
            status="sent" if i % 2 else "failed",
            title=f"n{i}",
        )
        for i in range(4)
    ]
    events += [
        FeedStatus(
            exchange="binance", symbol="", ts=T0, ts_recv=T0, channel="trades", status="stale"
        ),
        AuditEntry(exchange="", symbol="", ts=T0, ts_recv=T0, actor="api:ops", action="config"),
    ]
    async with db.sessionmaker() as s, s.begin():
        await repos.write_durable(s, events)
        for i in range(3):
            await repos.insert_equity_snapshot(
                s, ts=T0 + i, equity=Decimal(1000 + i), cash=Decimal(1000)
            )
    q = Queries(db=db)
    assert [n["title"] for n in await q.notifications(channel="ops")] == ["n3", "n2", "n1"]
    assert [n["title"] for n in await q.notifications(status="failed")] == ["n2", "n0"]
    assert (await q.feed_events(exchange="binance"))[0]["status"] == "stale"
    assert (await q.audit_log(actor="api:ops"))[0]["payload"] == {}
    assert [e["equity"] for e in await q.equity_snapshots(limit=2)] == [1001, 1002]


async def _seed_notifications(db: Database, n: int = 23) -> None:
    """``n`` notifications, pairs sharing a time (the id breaks the tie), channels and event
    types alternating."""
    records = [
        NotificationRecord(
            exchange="okx" if i % 3 else "",
            symbol="BTC-USDT" if i % 3 else "",
            ts=T0 + i // 2,
            ts_recv=T0 + i // 2,
            channel="ops" if i % 2 else "mail",
            status="sent" if i % 4 else "failed",
            title=f"n{i}",
            event_type="anomaly" if i % 3 else "digest",
        )
        for i in range(n)
    ]
    async with db.sessionmaker() as s, s.begin():
        await repos.write_durable(s, records)


@pytest.mark.asyncio
async def test_notification_pages_cover_everything_once_newest_first(db: Database) -> None:
    """Keyset pages of 5 return all 23 notifications once, newest first (time, then id); the
    filters hold on every page and a page after the last is not offered."""
    await _seed_notifications(db)
    q = Queries(db=db)
    seen: list[dict] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = await q.notification_page(limit=5, cursor=cursor)
        assert len(page) == 5 or cursor is None
        seen.extend(page)
        pages += 1
        if cursor is None:
            break
    assert pages == 5
    assert sorted(r["title"] for r in seen) == sorted(f"n{i}" for i in range(23))
    keys = [(r["ts"], r["id"]) for r in seen]
    assert keys == sorted(keys, reverse=True)
    assert isinstance(seen[0]["ts"], float)
    assert "event_key" not in seen[0]
    # filters and the cursor together: the second page continues the filtered list
    first, cursor = await q.notification_page(channel="ops", event_type="anomaly", limit=3)
    assert cursor is not None
    second, _ = await q.notification_page(
        channel="ops", event_type="anomaly", limit=100, cursor=cursor
    )
    titles = [r["title"] for r in first + second]
    wanted = [f"n{i}" for i in range(22, -1, -1) if i % 2 and i % 3]
    assert titles == wanted
    rows, _ = await q.notification_page(status="failed", since=T0 + 4, until=T0 + 8, limit=100)
    assert [r["title"] for r in rows] == ["n16", "n12", "n8"]
    rows, _ = await q.notification_page(exchange="okx", symbol="BTC-USDT", limit=100)
    assert len(rows) == 15
    rows, last = await q.notification_page(limit=23)
    assert len(rows) == 23
    assert last is None


@pytest.mark.asyncio
async def test_notification_page_refuses_a_cursor_it_did_not_issue(db: Database) -> None:
    """A malformed cursor, another list's cursor (a text id) and an id out of the column's
    range are ValueErrors naming the cursor, not a database error."""
    q = Queries(db=db)
    anomaly_cursor = encode_cursor(utc(T0), "a" * 32)
    huge = base64.urlsafe_b64encode(b"[1700000000000000,99999999999999999999]").decode()
    for cursor in ("not-a-cursor!", anomaly_cursor, huge.rstrip("=")):
        with pytest.raises(ValueError, match="invalid cursor"):
            await q.notification_page(cursor=cursor)
    with pytest.raises(ValueError, match="event_type must be one of"):
        await q.notification_page(event_type="anomalies")
    with pytest.raises(ValueError, match=r"since .* must not be after until"):
        await q.notification_page(since=T0 + 10, until=T0)
