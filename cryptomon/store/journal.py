"""The trading engine's journal on the real database (SQLite or PostgreSQL).

Implements ``cryptomon.trading.journal.Journal``: intents are committed before they are sent,
startup reads the stored orders and fills back, equity snapshots and the last risk state;
``FundingJournal``: the funding payments applied to contract positions; ``TrailJournal``: the
latest trailed stop of each market; and ``EquityJournal``: the first equity snapshot of the day.
"""

from __future__ import annotations

from collections.abc import Collection
from decimal import Decimal
from typing import Any, Literal, cast

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError

from cryptomon.events import Fill, OrderIntent, OrderState, ProtectionUpdate, RiskEvent, Side
from cryptomon.store import repos
from cryptomon.store.db import Database
from cryptomon.store.models import (
    EquitySnapshotRow,
    FillRow,
    FundingPaymentRow,
    OrderRow,
    ProtectionLevelRow,
    RiskEventRow,
)
from cryptomon.store.types import epoch, utc
from cryptomon.trading.brokers.base import FundingPayment
from cryptomon.trading.journal import FLATTEN_CHECK, StoredFunding, StoredOrder

Liquidity = Literal["maker", "taker"]


class StoreJournal:
    """The real database (SQLite or PostgreSQL).

    ``open_orders`` also returns terminal orders whose persisted fills do not add up to their
    recorded filled amount (the process died before the writer flushed the fills), flagged
    ``missing_fills``, so reconciliation fetches their fills from the venue again.
    """

    def __init__(self, *, db: Database) -> None:
        self.db = db

    async def record_intent(self, intent: OrderIntent) -> None:
        await repos.record_intent(self.db, intent)

    async def record_equity(self, **values: Any) -> None:
        async with self.db.sessionmaker() as session, session.begin():
            await repos.insert_equity_snapshot(session, **values)

    async def first_equity_since(self, ts: float) -> Decimal | None:
        """The equity of the oldest stored snapshot at or after ``ts`` (None: none); walks
        ``ix_equity_snapshots_ts``."""
        stmt = (
            select(EquitySnapshotRow.equity)
            .where(EquitySnapshotRow.ts >= utc(ts))
            .order_by(EquitySnapshotRow.ts, EquitySnapshotRow.id)
            .limit(1)
        )
        async with self.db.sessionmaker() as session:
            return (await session.execute(stmt)).scalar_one_or_none()

    async def last_risk_state(self) -> str | None:
        """The risk state of the newest stored RiskEvent (a kill switch survives restarts)."""
        stmt = (
            select(RiskEventRow.state)
            .order_by(RiskEventRow.ts.desc(), RiskEventRow.id.desc())
            .limit(1)
        )
        async with self.db.sessionmaker() as session:
            return (await session.execute(stmt)).scalar_one_or_none()

    async def record_risk_event(self, event: RiskEvent) -> None:
        """Store ``event`` at once; the writer's later copy is ignored (same event key)."""
        async with self.db.sessionmaker() as session, session.begin():
            await repos.insert_risk_events(session, [event])

    async def halt_flatten(self) -> bool:
        """Whether a ``kill_switch`` event asking to flatten was stored since the newest event
        whose state is not ``halted`` (the current halt's switches)."""
        newest = (RiskEventRow.ts.desc(), RiskEventRow.id.desc())
        before = (
            select(RiskEventRow.ts, RiskEventRow.id)
            .where(RiskEventRow.state != "halted")
            .order_by(*newest)
            .limit(1)
        )
        asked = select(RiskEventRow.id).where(
            RiskEventRow.kind == "kill_switch", RiskEventRow.check == FLATTEN_CHECK
        )
        async with self.db.sessionmaker() as session:
            last = (await session.execute(before)).first()
            if last is not None:
                ts, row_id = last
                asked = asked.where(
                    or_(
                        RiskEventRow.ts > ts,
                        and_(RiskEventRow.ts == ts, RiskEventRow.id > row_id),
                    )
                )
            found = (await session.execute(asked.limit(1))).first()
        return found is not None

    async def open_orders(self) -> list[StoredOrder]:
        filled = (
            select(FillRow.client_order_id, func.sum(FillRow.amount).label("amt"))
            .group_by(FillRow.client_order_id)
            .subquery()
        )
        stmt = select(OrderRow, filled.c.amt).outerjoin(
            filled, filled.c.client_order_id == OrderRow.client_order_id
        )
        out: list[StoredOrder] = []
        async with self.db.sessionmaker() as session:
            rows = (await session.execute(stmt)).all()
        for row, amt in rows:
            state = OrderState(row.state)
            have = Decimal(str(amt)) if amt is not None else Decimal(0)
            if state.is_terminal and row.filled <= have:
                continue
            intent = _row_intent(row)
            out.append(
                StoredOrder(
                    intent=intent,
                    state=state,
                    exchange_order_id=row.exchange_order_id,
                    missing_fills=state.is_terminal,
                )
            )
        return out

    async def stored_intents(self, client_order_ids: Collection[str]) -> dict[str, OrderIntent]:
        """The intents of ``client_order_ids`` as stored (by primary key, any state)."""
        ids = list(client_order_ids)
        if not ids:
            return {}
        stmt = select(OrderRow).where(OrderRow.client_order_id.in_(ids))
        async with self.db.sessionmaker() as session:
            rows = (await session.scalars(stmt)).all()
        return {row.client_order_id: _row_intent(row) for row in rows}

    async def stored_trails(self) -> dict[tuple[str, str], ProtectionUpdate]:
        """The latest trailed stop of each market (``protection_levels``)."""
        async with self.db.sessionmaker() as session:
            rows = (await session.scalars(select(ProtectionLevelRow))).all()
        out: dict[tuple[str, str], ProtectionUpdate] = {}
        for row in rows:
            ts = epoch(row.updated_at) or 0.0
            out[(row.exchange, row.symbol)] = ProtectionUpdate(
                exchange=row.exchange,
                symbol=row.symbol,
                ts=ts,
                ts_recv=ts,
                entry_id=row.entry_id,
                side="long" if row.side == "long" else "short",
                stop=row.stop,
                best=row.best,
                take=row.take,
                trail_pct=row.trail_pct,
            )
        return out

    async def fills(self) -> list[Fill]:
        async with self.db.sessionmaker() as session:
            rows = (await session.scalars(select(FillRow).order_by(FillRow.ts, FillRow.id))).all()
        out = []
        for row in rows:
            ts = epoch(row.ts) or 0.0
            out.append(
                Fill(
                    exchange=row.exchange,
                    symbol=row.symbol,
                    ts=ts,
                    ts_recv=ts,
                    trade_id=row.trade_id,
                    client_order_id=row.client_order_id,
                    side=cast(Side, row.side),  # written from a Side
                    amount=row.amount,
                    price=row.price,
                    fee=row.fee,
                    fee_currency=row.fee_currency,
                    liquidity=cast(Liquidity, row.liquidity),
                    exchange_order_id=row.exchange_order_id,
                )
            )
        return out

    async def record_funding(self, funding: StoredFunding) -> None:
        """Commit one applied funding payment (a payment already stored is left alone)."""
        pay = funding.payment
        row = FundingPaymentRow(
            exchange=pay.exchange,
            symbol=pay.symbol,
            payment_id=pay.payment_id,
            amount=pay.amount,
            currency=pay.currency,
            rate=pay.rate,
            price=funding.price,
            ts=utc(pay.ts),
        )
        try:
            async with self.db.sessionmaker() as session, session.begin():
                session.add(row)
        except IntegrityError:
            pass  # recorded before (a retried sync)

    async def funding_payments(self) -> list[StoredFunding]:
        stmt = select(FundingPaymentRow).order_by(FundingPaymentRow.ts, FundingPaymentRow.id)
        async with self.db.sessionmaker() as session:
            rows = (await session.scalars(stmt)).all()
        return [
            StoredFunding(
                payment=FundingPayment(
                    payment_id=row.payment_id,
                    exchange=row.exchange,
                    symbol=row.symbol,
                    ts=epoch(row.ts) or 0.0,
                    amount=row.amount,
                    currency=row.currency,
                    rate=row.rate,
                ),
                price=row.price,
            )
            for row in rows
        ]


def _row_intent(row: Any) -> OrderIntent:
    """The intent an :class:`OrderRow` was written from (its time: when it was created; its
    string columns hold the intent's literals, written from them)."""
    ts = epoch(row.created_at) or 0.0
    return OrderIntent(
        exchange=row.exchange,
        symbol=row.symbol,
        ts=ts,
        ts_recv=ts,
        client_order_id=row.client_order_id,
        side=row.side,
        type=row.type,
        amount=row.amount,
        price=row.price,
        stop_price=row.stop_price,
        stop_loss=row.stop_loss,
        take_profit=row.take_profit,
        reduce_only=bool(row.reduce_only),
        origin=row.origin,
        signal_id=row.signal_id,
        anomaly_id=row.anomaly_id,
    )
