"""Idempotent writes shared by the store writer and the order engine.

Every function takes an ``AsyncSession`` (the caller owns the transaction) and a list of events
from :mod:`cryptomon.events`; replaying the same list is harmless (exactly-once rows):
anomalies and signals are keyed by the event's ``id``, orders by ``client_order_id``, fills
by ``(exchange, trade_id)``, positions by ``(exchange, symbol)``, candles by
``(exchange, symbol, interval, open_time)``, the other durable kinds by an ``event_key``
digest of the event. Market rows without a natural key (trades, book tops) are plain bulk
inserts; on PostgreSQL they go through ``COPY``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from cryptomon.events import (
    Anomaly,
    AuditEntry,
    BookTop,
    Candle,
    Event,
    FeedStatus,
    Fill,
    NotificationRecord,
    OrderIntent,
    OrderState,
    OrderUpdate,
    PositionUpdate,
    RiskEvent,
    Severity,
    Signal,
    Trade,
)
from cryptomon.store.models import (
    AnomalyRow,
    AuditRow,
    BookTopRow,
    CandleRow,
    EquitySnapshotRow,
    FeedEventRow,
    FillRow,
    NotificationRow,
    OrderRow,
    PositionRow,
    RiskEventRow,
    SignalRow,
    TradeRow,
)
from cryptomon.store.types import utc

if TYPE_CHECKING:
    from cryptomon.store.db import Database

TRADE_COLUMNS = ("exchange", "symbol", "ts", "price", "amount", "side", "trade_id")
BOOK_TOP_COLUMNS = (
    "exchange",
    "symbol",
    "ts",
    "bid",
    "bid_size",
    "ask",
    "ask_size",
    "spread",
    "spread_bps",
    "bid_depth",
    "ask_depth",
    "imbalance",
    "levels",
)


def _insert(session: AsyncSession, table: Any) -> Any:
    """The dialect's INSERT (both have on_conflict_do_nothing / on_conflict_do_update)."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


def event_key(event: Event) -> str:
    """A stable 40-hex digest of an event's fields (for kinds without an id)."""
    return hashlib.blake2b(repr(event).encode(), digest_size=20).hexdigest()


# --------------------------------------------------------------------------- orders


def _intent_row(ev: OrderIntent) -> dict[str, Any]:
    now = utc(ev.ts)
    return {
        "client_order_id": ev.client_order_id,
        "exchange_order_id": None,
        "exchange": ev.exchange,
        "symbol": ev.symbol,
        "state": OrderState.NEW.value,
        "side": ev.side,
        "type": ev.type,
        "amount": ev.amount,
        "price": ev.price,
        "stop_price": ev.stop_price,
        "stop_loss": ev.stop_loss,
        "take_profit": ev.take_profit,
        "filled": Decimal(0),
        "avg_price": None,
        "reduce_only": ev.reduce_only,
        "origin": ev.origin,
        "signal_id": ev.signal_id,
        "anomaly_id": ev.anomaly_id,
        "reason": "",
        "created_at": now,
        "updated_at": now,
    }


def _update_base(ev: OrderUpdate) -> dict[str, Any]:
    """Row for an update whose intent we never saw (e.g. found by reconciliation)."""
    row = {
        "client_order_id": ev.client_order_id,
        "exchange": ev.exchange,
        "symbol": ev.symbol,
        "side": ev.side,
        "type": ev.type,
        "amount": ev.amount,
        "price": ev.price,
        "stop_price": None,
        "stop_loss": None,
        "take_profit": None,
        "reduce_only": False,
        "origin": "reconcile",
        "signal_id": None,
        "anomaly_id": None,
        "created_at": utc(ev.ts),
        "exchange_order_id": None,
    }
    return row


async def upsert_orders(session: AsyncSession, events: Sequence[OrderIntent | OrderUpdate]) -> int:
    """Intents create the row in state ``new`` (no-op if it exists); updates set state, filled,
    avg_price, reason and exchange_order_id (creating the row when the intent is unknown)."""
    rows: dict[str, dict[str, Any]] = {}
    updated: set[str] = set()
    for ev in events:
        cid = ev.client_order_id
        if isinstance(ev, OrderIntent):
            intent = _intent_row(ev)
            if cid in rows:  # the update came first in this batch: keep its mutable fields
                for k, v in intent.items():
                    if k not in updated_fields or k not in rows[cid]:
                        rows[cid][k] = v
            else:
                rows[cid] = intent
            continue
        row = rows.get(cid) or _update_base(ev)
        rows[cid] = row
        row.update(
            state=OrderState(ev.state).value,
            filled=ev.filled,
            avg_price=ev.avg_price,
            reason=ev.reason,
            updated_at=utc(ev.ts),
        )
        if ev.exchange_order_id is not None:
            row["exchange_order_id"] = ev.exchange_order_id
        if ev.price is not None:
            row["price"] = ev.price
        updated.add(cid)
    if not rows:
        return 0
    fresh = [r for cid, r in rows.items() if cid not in updated]
    changed = [r for cid, r in rows.items() if cid in updated]
    if fresh:
        stmt = _insert(session, OrderRow).on_conflict_do_nothing(index_elements=["client_order_id"])
        await session.execute(stmt, fresh)
    if changed:
        ins = _insert(session, OrderRow)
        ex = ins.excluded
        stmt = ins.on_conflict_do_update(
            index_elements=["client_order_id"],
            set_={
                "state": ex.state,
                "filled": ex.filled,
                "avg_price": ex.avg_price,
                "reason": ex.reason,
                "updated_at": ex.updated_at,
                "exchange_order_id": func.coalesce(
                    ex.exchange_order_id, OrderRow.exchange_order_id
                ),
                "price": func.coalesce(ex.price, OrderRow.price),
            },
        )
        await session.execute(stmt, changed)
    return len(rows)


updated_fields = frozenset(
    {"state", "filled", "avg_price", "reason", "updated_at", "exchange_order_id", "price"}
)


async def record_intent(db: Database, intent: OrderIntent) -> None:
    """Write one order intent in its own committed transaction (before the order is sent)."""
    async with db.sessionmaker() as session, session.begin():
        await upsert_orders(session, [intent])


# --------------------------------------------------------------------------- trading


async def insert_fills(session: AsyncSession, events: Sequence[Fill]) -> int:
    rows = [
        {
            "exchange": ev.exchange,
            "symbol": ev.symbol,
            "trade_id": ev.trade_id,
            "client_order_id": ev.client_order_id,
            "exchange_order_id": ev.exchange_order_id,
            "side": ev.side,
            "amount": ev.amount,
            "price": ev.price,
            "fee": ev.fee,
            "fee_currency": ev.fee_currency,
            "liquidity": ev.liquidity,
            "ts": utc(ev.ts),
        }
        for ev in events
    ]
    if rows:
        stmt = _insert(session, FillRow).on_conflict_do_nothing(
            index_elements=["exchange", "trade_id"]
        )
        await session.execute(stmt, rows)
    return len(rows)


async def upsert_positions(session: AsyncSession, events: Sequence[PositionUpdate]) -> int:
    """The latest state per (exchange, symbol); the last event of the batch wins."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for ev in events:
        latest[(ev.exchange, ev.symbol)] = {
            "exchange": ev.exchange,
            "symbol": ev.symbol,
            "amount": ev.amount,
            "avg_price": ev.avg_price,
            "realized_pnl": ev.realized_pnl,
            "unrealized_pnl": ev.unrealized_pnl,
            "fees": ev.fees,
            "mark_price": ev.mark_price,
            "updated_at": utc(ev.ts),
        }
    if latest:
        ins = _insert(session, PositionRow)
        cols = ("amount", "avg_price", "realized_pnl", "unrealized_pnl", "fees", "mark_price")
        set_ = {c: ins.excluded[c] for c in (*cols, "updated_at")}
        stmt = ins.on_conflict_do_update(index_elements=["exchange", "symbol"], set_=set_)
        await session.execute(stmt, list(latest.values()))
    return len(latest)


async def insert_signals(session: AsyncSession, events: Sequence[Signal]) -> int:
    rows = [
        {
            "id": ev.id,
            "exchange": ev.exchange,
            "symbol": ev.symbol,
            "ts": utc(ev.ts),
            "side": ev.side,
            "strength": ev.strength,
            "source": ev.source,
            "reason": ev.reason,
            "price": ev.price,
            "anomaly_id": ev.anomaly_id,
        }
        for ev in events
    ]
    return await _insert_ignore(session, SignalRow, rows, ["id"])


async def insert_risk_events(session: AsyncSession, events: Sequence[RiskEvent]) -> int:
    rows = [
        {
            "event_key": event_key(ev),
            "exchange": ev.exchange,
            "symbol": ev.symbol,
            "ts": utc(ev.ts),
            "kind": ev.kind,
            "state": ev.state,
            "reason": ev.reason,
            "client_order_id": ev.client_order_id,
            "check": ev.check,
        }
        for ev in events
    ]
    return await _insert_ignore(session, RiskEventRow, rows, ["event_key"])


async def insert_equity_snapshot(
    session: AsyncSession,
    *,
    ts: float,
    equity: Decimal,
    cash: Decimal,
    unrealized_pnl: Decimal = Decimal(0),
    realized_pnl: Decimal = Decimal(0),
    exposure: Decimal = Decimal(0),
) -> None:
    row = {
        "ts": utc(ts),
        "equity": equity,
        "cash": cash,
        "unrealized_pnl": unrealized_pnl,
        "realized_pnl": realized_pnl,
        "exposure": exposure,
    }
    await session.execute(_insert(session, EquitySnapshotRow), [row])


# --------------------------------------------------------------------------- detection


async def insert_anomalies(session: AsyncSession, events: Sequence[Anomaly]) -> int:
    rows = [
        {
            "id": ev.id,
            "exchange": ev.exchange,
            "symbol": ev.symbol,
            "kind": ev.kind,
            "severity": Severity(ev.severity).value,
            "severity_rank": Severity(ev.severity).rank,
            "value": ev.value,
            "threshold": ev.threshold,
            "confidence": ev.confidence,
            "z_score": ev.z_score,
            "price_change_pct": ev.price_change_pct,
            "reasons": list(ev.reasons),
            "window_mean": ev.window_mean,
            "window_std": ev.window_std,
            "samples": ev.samples,
            "ts": utc(ev.ts),
            "ts_detected": utc(ev.ts_detected or ev.ts_recv or ev.ts),
        }
        for ev in events
    ]
    return await _insert_ignore(session, AnomalyRow, rows, ["id"])


# --------------------------------------------------------------------------- operations


async def insert_notifications(session: AsyncSession, events: Sequence[NotificationRecord]) -> int:
    rows = [
        {
            "event_key": event_key(ev),
            "ts": utc(ev.ts),
            "exchange": ev.exchange,
            "symbol": ev.symbol,
            "channel": ev.channel,
            "status": ev.status,
            "title": ev.title,
            "body": ev.body,
            "attempts": ev.attempts,
            "error": ev.error,
            "priority": ev.priority,
            "event_type": ev.event_type,
            "ref_id": ev.ref_id,
        }
        for ev in events
    ]
    return await _insert_ignore(session, NotificationRow, rows, ["event_key"])


def _payload(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return {"raw": text}


async def insert_audit(session: AsyncSession, events: Sequence[AuditEntry]) -> int:
    rows = [
        {
            "event_key": event_key(ev),
            "ts": utc(ev.ts),
            "actor": ev.actor,
            "action": ev.action,
            "exchange": ev.exchange,
            "symbol": ev.symbol,
            "payload": _payload(ev.payload),
        }
        for ev in events
    ]
    return await _insert_ignore(session, AuditRow, rows, ["event_key"])


async def insert_feed_events(session: AsyncSession, events: Sequence[FeedStatus]) -> int:
    rows = [
        {
            "event_key": event_key(ev),
            "ts": utc(ev.ts),
            "exchange": ev.exchange,
            "symbol": ev.symbol,
            "channel": ev.channel,
            "status": ev.status,
            "detail": ev.detail,
        }
        for ev in events
    ]
    return await _insert_ignore(session, FeedEventRow, rows, ["event_key"])


async def _insert_ignore(
    session: AsyncSession, table: Any, rows: list[dict[str, Any]], key: list[str]
) -> int:
    if rows:
        stmt = _insert(session, table).on_conflict_do_nothing(index_elements=key)
        await session.execute(stmt, rows)
    return len(rows)


# --------------------------------------------------------------------------- market data


def candle_row(ev: Candle) -> dict[str, Any]:
    """A candle row from an exchange ``Candle`` event."""
    return {
        "exchange": ev.exchange,
        "symbol": ev.symbol,
        "interval": ev.interval,
        "open_time": utc(ev.start),
        "close_time": utc(ev.end),
        "open": ev.open,
        "high": ev.high,
        "low": ev.low,
        "close": ev.close,
        "volume": ev.volume,
        "trade_count": ev.trades,
        "buy_volume": None,
        "sell_volume": None,
        "closed": ev.closed,
        "source": "exchange",
    }


async def upsert_candles(session: AsyncSession, rows: Iterable[dict[str, Any]]) -> int:
    """Upsert candle rows (``CandleRow`` columns). A row from the exchange (``source:
    exchange``) always wins; a row aggregated from trades never replaces an exchange row."""
    latest: dict[tuple[str, str, str, datetime], dict[str, Any]] = {}
    for r in rows:
        latest[(r["exchange"], r["symbol"], r["interval"], r["open_time"])] = r
    if not latest:
        return 0
    ins = _insert(session, CandleRow)
    ex = ins.excluded
    cols = (
        "close_time",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "trade_count",
        "buy_volume",
        "sell_volume",
        "closed",
        "source",
    )
    stmt = ins.on_conflict_do_update(
        index_elements=["exchange", "symbol", "interval", "open_time"],
        set_={c: ex[c] for c in cols},
        where=(CandleRow.source != "exchange") | (ex.source == "exchange"),
    )
    await session.execute(stmt, list(latest.values()))
    return len(latest)


def trade_tuple(ev: Trade) -> tuple[Any, ...]:
    return (ev.exchange, ev.symbol, utc(ev.ts), ev.price, ev.amount, ev.side, ev.trade_id)


def book_top_tuple(ev: BookTop) -> tuple[Any, ...]:
    return (
        ev.exchange,
        ev.symbol,
        utc(ev.ts),
        ev.bid,
        ev.bid_size,
        ev.ask,
        ev.ask_size,
        ev.spread,
        ev.spread_bps,
        ev.bid_depth,
        ev.ask_depth,
        ev.imbalance,
        ev.levels,
    )


async def copy_rows(
    session: AsyncSession, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> int:
    """Bulk-insert tuples: PostgreSQL ``COPY ... FROM STDIN`` on the session's own connection
    (same transaction); SQLite ``executemany``."""
    if not rows:
        return 0
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        pg: Any = raw.driver_connection
        cols = ", ".join(columns)
        async with pg.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            for row in rows:
                await copy.write_row(row)
        return len(rows)
    model = {"trades": TradeRow, "book_tops": BookTopRow}[table]
    await session.execute(
        model.__table__.insert(),  # type: ignore[attr-defined]
        [dict(zip(columns, r, strict=True)) for r in rows],
    )
    return len(rows)


async def insert_trades(session: AsyncSession, events: Sequence[Trade]) -> int:
    return await copy_rows(session, "trades", TRADE_COLUMNS, [trade_tuple(e) for e in events])


async def insert_book_tops(session: AsyncSession, events: Sequence[BookTop]) -> int:
    return await copy_rows(
        session, "book_tops", BOOK_TOP_COLUMNS, [book_top_tuple(e) for e in events]
    )


# --------------------------------------------------------------------------- dispatch


async def write_durable(session: AsyncSession, events: Sequence[Event]) -> dict[str, int]:
    """Write a mixed batch of durable events; returns rows handed to each table."""
    orders: list[OrderIntent | OrderUpdate] = []
    by_type: dict[type, list[Any]] = {}
    for ev in events:
        if isinstance(ev, OrderIntent | OrderUpdate):
            orders.append(ev)
        else:
            by_type.setdefault(type(ev), []).append(ev)
    out: dict[str, int] = {}
    if orders:
        out["orders"] = await upsert_orders(session, orders)
    for cls, items in by_type.items():
        writer = _DURABLE_WRITERS.get(cls)
        if writer is not None:
            table, fn = writer
            out[table] = out.get(table, 0) + await fn(session, items)
    return out


_DURABLE_WRITERS: dict[type, tuple[str, Any]] = {
    Anomaly: ("anomalies", insert_anomalies),
    Signal: ("signals", insert_signals),
    Fill: ("fills", insert_fills),
    PositionUpdate: ("positions", upsert_positions),
    RiskEvent: ("risk_events", insert_risk_events),
    NotificationRecord: ("notifications", insert_notifications),
    AuditEntry: ("audit_log", insert_audit),
    FeedStatus: ("feed_events", insert_feed_events),
}
