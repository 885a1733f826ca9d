"""Idempotent writes shared by the store writer and the order engine.

Every function takes an ``AsyncSession`` (the caller owns the transaction) and a list of events
from :mod:`cryptomon.events`; replaying the same list is harmless (exactly-once rows):
anomalies and signals are keyed by the event's ``id``, orders by ``client_order_id``, fills
by ``(exchange, trade_id)``, positions and protection levels by ``(exchange, symbol)``, candles by
``(exchange, symbol, interval, open_time)``, the other durable kinds by an ``event_key``
digest of the event. Market rows without a natural key (trades, book tops) are plain bulk
inserts; on PostgreSQL they go through ``COPY``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
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
    ProtectionUpdate,
    RiskEvent,
    Severity,
    Signal,
)
from cryptomon.store.anomaly_json import anomaly_item
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
    sqlite_insert,
    trade_tuple,
    upsert_candles,
)
from cryptomon.store.models import (
    AnomalyRow,
    CandleRow,
    EquitySnapshotRow,
    FillRow,
    PositionRow,
    ProtectionLevelRow,
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
    "ANOMALY_COLUMNS",
    "BOOK_TOP_COLUMNS",
    "TRADE_COLUMNS",
    "anomaly_tuple",
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
    "stored_trade_bars",
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


async def _upsert_per_market(
    session: AsyncSession,
    table: Any,
    latest: dict[tuple[str, str], dict[str, Any]],
    columns: tuple[str, ...],
) -> int:
    """Writes the row of each (exchange, symbol) of ``latest``: inserted, or over the market's
    stored row with ``columns`` replaced; returns the number of markets written."""
    if latest:
        ins = dialect_insert(session, table)
        set_ = {c: ins.excluded[c] for c in columns}
        stmt = ins.on_conflict_do_update(index_elements=["exchange", "symbol"], set_=set_)
        await session.execute(stmt, list(latest.values()))
    return len(latest)


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
    cols = (
        "amount",
        "avg_price",
        "realized_pnl",
        "unrealized_pnl",
        "fees",
        "mark_price",
        *CONTRACT_COLUMNS,
        "updated_at",
    )
    return await _upsert_per_market(session, PositionRow, latest, cols)


async def upsert_protection_levels(
    session: AsyncSession, events: Sequence[ProtectionUpdate]
) -> int:
    """The latest trailed stop per (exchange, symbol); the last event of the batch wins."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for ev in events:
        latest[(ev.exchange, ev.symbol)] = {
            "exchange": ev.exchange,
            "symbol": ev.symbol,
            "entry_id": ev.entry_id,
            "side": ev.side,
            "stop": ev.stop,
            "best": ev.best,
            "take": ev.take,
            "trail_pct": ev.trail_pct,
            "updated_at": utc(ev.ts),
        }
    cols = ("entry_id", "side", "stop", "best", "take", "trail_pct", "updated_at")
    return await _upsert_per_market(session, ProtectionLevelRow, latest, cols)


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


ANOMALY_COLUMNS = (
    *("id", "exchange", "symbol", "kind", "severity", "severity_rank", "value", "threshold"),
    *("confidence", "z_score", "price_change_pct", "reasons", "window_mean", "window_std"),
    *("samples", "ts", "ts_detected", "item"),
)
_ANOMALY_TS = (ANOMALY_COLUMNS.index("ts"), ANOMALY_COLUMNS.index("ts_detected"))


def anomaly_tuple(ev: Anomaly, *, dialect: str, json_reasons: bool = True) -> tuple[Any, ...]:
    """An anomalies row in ``ANOMALY_COLUMNS`` order; ``reasons`` as its JSON text (what
    SQLAlchemy's JSON type writes: ``json.dumps`` of the list) or, without ``json_reasons``,
    as the list itself; ``item``: the row's page item as ``dialect``'s database will give it
    back (:func:`~cryptomon.store.anomaly_json.anomaly_item`, one orjson dump)."""
    sev = Severity(ev.severity)
    reasons = list(ev.reasons)
    values: tuple[Any, ...] = (
        *(ev.id, ev.exchange, ev.symbol, ev.kind, sev.value, sev.rank, ev.value, ev.threshold),
        *(ev.confidence, ev.z_score, ev.price_change_pct, reasons),
        *(ev.window_mean, ev.window_std, ev.samples, utc(ev.ts)),
        utc(ev.ts_detected or ev.ts_recv or ev.ts),
    )
    item = anomaly_item(dict(zip(ANOMALY_COLUMNS[:-1], values, strict=True)), dialect=dialect)
    if json_reasons:
        at = ANOMALY_COLUMNS.index("reasons")
        values = (*values[:at], json.dumps(reasons), *values[at + 1 :])
    return (*values, item)


async def insert_anomalies(session: AsyncSession, events: Sequence[Anomaly]) -> int:
    """INSERT ... ON CONFLICT (id) DO NOTHING. The store writer's most frequent durable rows:
    on SQLite multi-row INSERTs of plain tuples in the connection's thread (the times
    converted in a worker thread, like the market rows), on PostgreSQL one Core
    ``executemany``; neither goes through the ORM's per-row bulk bookkeeping. Each row
    carries its page item's JSON (``item``: anomalies are never updated)."""
    if not events:
        return 0
    conn = await session.connection()
    if conn.dialect.name == "sqlite":
        rows = [anomaly_tuple(ev, dialect="sqlite") for ev in events]
        tail = " ON CONFLICT (id) DO NOTHING"
        return await sqlite_insert(conn, "anomalies", ANOMALY_COLUMNS, rows, _ANOMALY_TS, tail=tail)
    params = [
        dict(
            zip(
                ANOMALY_COLUMNS,
                anomaly_tuple(ev, dialect=conn.dialect.name, json_reasons=False),
                strict=True,
            )
        )
        for ev in events
    ]
    stmt = dialect_insert(session, AnomalyRow).on_conflict_do_nothing(index_elements=["id"])
    await conn.execute(stmt, params)
    return len(params)


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
    ProtectionUpdate: ("protection_levels", upsert_protection_levels),
    RiskEvent: ("risk_events", insert_risk_events),
    NotificationRecord: ("notifications", insert_notifications),
    AuditEntry: ("audit_log", insert_audit),
    FeedStatus: ("feed_events", insert_feed_events),
}


async def stored_trade_bars(
    session: AsyncSession, open_time: datetime, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The stored 1-minute candles from trades (``source: trades``) that open at
    ``open_time``, of the ``(exchange, symbol)`` markets in ``keys``, by market: the values
    :func:`cryptomon.store.candles.continued` merges."""
    wanted = set(keys)
    if not wanted:
        return {}
    c = CandleRow
    result = await session.execute(
        select(
            c.exchange,
            c.symbol,
            c.open,
            c.high,
            c.low,
            c.volume,
            c.trade_count,
            c.buy_volume,
            c.sell_volume,
        ).where(
            c.interval == "1m",
            c.open_time == open_time,
            c.source == "trades",
            c.exchange.in_(sorted({e for e, _ in wanted})),
        )
    )
    return {
        (r.exchange, r.symbol): {
            "open": r.open,
            "high": r.high,
            "low": r.low,
            "volume": r.volume,
            "trade_count": r.trade_count,
            "buy_volume": r.buy_volume,
            "sell_volume": r.sell_volume,
        }
        for r in result
        if (r.exchange, r.symbol) in wanted
    }
