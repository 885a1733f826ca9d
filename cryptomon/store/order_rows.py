"""Idempotent order rows: an intent is written before it is sent (``record_intent``), and a
batch of intents and venue updates is folded to one upsert per client order id
(``upsert_orders``). Re-exported by :mod:`cryptomon.store.repos`."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from cryptomon.events import OrderIntent, OrderState, OrderUpdate
from cryptomon.store.bulk import dialect_insert
from cryptomon.store.models import OrderRow
from cryptomon.store.types import utc

if TYPE_CHECKING:
    from cryptomon.store.db import Database


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


_UPDATED_FIELDS = ("state", "filled", "avg_price", "reason", "updated_at", "exchange_order_id")


async def upsert_orders(session: AsyncSession, events: Sequence[OrderIntent | OrderUpdate]) -> int:
    """Intents create the row in state ``new`` (no-op if it exists); updates, applied in order,
    set state, filled, avg_price, reason and exchange_order_id (creating the row when the
    intent is unknown). A missing exchange id, price or average price never erases a known one.
    """
    rows, updated = _fold_order_events(events)
    if not rows:
        return 0
    fresh = [r for cid, r in rows.items() if cid not in updated]
    changed = [r for cid, r in rows.items() if cid in updated]
    if fresh:
        stmt = dialect_insert(session, OrderRow).on_conflict_do_nothing(
            index_elements=["client_order_id"]
        )
        await session.execute(stmt, fresh)
    if changed:
        ins = dialect_insert(session, OrderRow)
        ex = ins.excluded
        stmt = ins.on_conflict_do_update(
            index_elements=["client_order_id"],
            set_={
                "state": ex.state,
                "filled": ex.filled,
                "reason": ex.reason,
                "updated_at": ex.updated_at,
                "avg_price": func.coalesce(ex.avg_price, OrderRow.avg_price),
                "exchange_order_id": func.coalesce(
                    ex.exchange_order_id, OrderRow.exchange_order_id
                ),
                "price": func.coalesce(ex.price, OrderRow.price),
            },
        )
        await session.execute(stmt, changed)
    return len(rows)


def _fold_order_events(
    events: Sequence[OrderIntent | OrderUpdate],
) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """One row per client order id from a batch of intents and updates, applied in order;
    the ids that an update touched (they need an upsert that keeps what is known)."""
    rows: dict[str, dict[str, Any]] = {}
    updated: set[str] = set()
    for ev in events:
        cid = ev.client_order_id
        if isinstance(ev, OrderIntent):
            row = _intent_row(ev)
            if cid in updated:  # an update came first in this batch: keep what it set
                row.update(
                    {k: v for k, v in rows[cid].items() if k in _UPDATED_FIELDS and v is not None}
                )
            rows[cid] = row
            continue
        row = rows.get(cid) or _update_base(ev)
        rows[cid] = row
        row.update(
            state=OrderState(ev.state).value,
            filled=ev.filled,
            reason=ev.reason,
            updated_at=utc(ev.ts),
        )
        for key, value in (
            ("exchange_order_id", ev.exchange_order_id),
            ("price", ev.price),
            ("avg_price", ev.avg_price),
        ):
            if value is not None:
                row[key] = value
        row.setdefault("avg_price", None)
        updated.add(cid)
    return rows, updated


async def record_intent(db: Database, intent: OrderIntent) -> None:
    """Write one order intent in its own committed transaction (before the order is sent)."""
    async with db.sessionmaker() as session, session.begin():
        await upsert_orders(session, [intent])
