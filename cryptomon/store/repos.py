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

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from cryptomon.events import (
    Anomaly,
    AuditEntry,
    Event,
    FeedStatus,
    Fill,
    NotificationRecord,
    OrderIntent,
    OrderUpdate,
    PositionUpdate,
    RiskEvent,
    Severity,
    Signal,
)
from cryptomon.store.bulk import (
    BOOK_TOP_COLUMNS,
    TRADE_COLUMNS,
    book_top_tuple,
    candle_row,
    copy_rows,
    dialect_insert,
    insert_book_tops,
    insert_ignore,
    insert_trades,
    trade_tuple,
    upsert_candles,
)
from cryptomon.store.models import (
    AnomalyRow,
    EquitySnapshotRow,
    FillRow,
    PositionRow,
    SignalRow,
)
from cryptomon.store.ops import (
    event_key,
    insert_audit,
    insert_feed_events,
    insert_notifications,
    insert_risk_events,
)
from cryptomon.store.order_rows import record_intent, upsert_orders
from cryptomon.store.types import utc

__all__ = [
    "BOOK_TOP_COLUMNS",
    "TRADE_COLUMNS",
    "book_top_tuple",
    "candle_row",
    "copy_rows",
    "event_key",
    "insert_anomalies",
    "insert_audit",
    "insert_book_tops",
    "insert_equity_snapshot",
    "insert_feed_events",
    "insert_fills",
    "insert_notifications",
    "insert_risk_events",
    "insert_signals",
    "insert_trades",
    "record_intent",
    "trade_tuple",
    "upsert_candles",
    "upsert_orders",
    "upsert_positions",
    "write_durable",
]

if TYPE_CHECKING:
    pass


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
        stmt = dialect_insert(session, FillRow).on_conflict_do_nothing(
            index_elements=["exchange", "trade_id"]
        )
        await session.execute(stmt, rows)
    return len(rows)


CONTRACT_COLUMNS = (
    "side",
    "settle",
    "contracts",
    "base_amount",
    "leverage",
    "margin_mode",
    "initial_margin",
    "maintenance_margin",
    "liquidation_price",
    "funding",
)


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
            **{name: getattr(ev, name) for name in CONTRACT_COLUMNS},
        }
        if ev.side is None:  # spot: no contract fields
            latest[(ev.exchange, ev.symbol)]["funding"] = None
    if latest:
        ins = dialect_insert(session, PositionRow)
        cols = (
            "amount",
            "avg_price",
            "realized_pnl",
            "unrealized_pnl",
            "fees",
            "mark_price",
            *CONTRACT_COLUMNS,
        )
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
            "grade": None if ev.grade is None else str(ev.grade),
        }
        for ev in events
    ]
    return await insert_ignore(session, SignalRow, rows, ["id"])


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
    await session.execute(dialect_insert(session, EquitySnapshotRow), [row])


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
    return await insert_ignore(session, AnomalyRow, rows, ["id"])


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
