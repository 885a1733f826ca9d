"""Signal history: a filtered keyset page of stored signals, and their statistics.

Statistics: counts by source and by grade, the share of signals that became an entry order
(``orders.signal_id``), and for those traded signals the realized PnL and win rate by source.
The PnL of a traded signal is that of the position its entry opened, until the position is
flat again (whatever closed it: a stop-loss, a take-profit, an opposite signal), fees
included; a position still open counts as not yet decided (no win, no loss).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cryptomon.kinds import SignalGrade
from cryptomon.store.models import FillRow, OrderRow, SignalRow

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class SignalFilter:
    """The filters of the signal history (None = any)."""

    exchange: str | None = None
    symbol: str | None = None
    source: str | None = None
    side: str | None = None
    grade: str | None = None

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        t = SignalRow.__table__
        if self.grade is not None:
            allowed = ", ".join(g.value for g in SignalGrade)
            if self.grade not in {g.value for g in SignalGrade}:
                raise ValueError(f"grade must be one of {allowed}, got {self.grade!r}")
        for name in ("exchange", "symbol", "source", "side", "grade"):
            value = getattr(self, name)
            if value is not None:
                stmt = stmt.where(t.c[name] == value)
        return stmt


def page_statement(flt: SignalFilter, cursor: tuple[Any, str] | None, limit: int) -> Select[Any]:
    """Newest first by (ts, id), after ``cursor`` when given; one row more than ``limit``."""
    t = SignalRow.__table__
    stmt = flt.apply(select(t))
    if cursor is not None:
        c_ts, c_id = cursor
        # the redundant ``<=`` bounds the index range (the OR alone is only a filter)
        stmt = stmt.where(t.c.ts <= c_ts, or_(t.c.ts < c_ts, and_(t.c.ts == c_ts, t.c.id < c_id)))
    return stmt.order_by(t.c.ts.desc(), t.c.id.desc()).limit(limit + 1)


async def _counts(session: AsyncSession, stmt: Select[Any]) -> dict[str, int]:
    return {str(k): int(n) for k, n in (await session.execute(stmt)).all()}


@dataclass(slots=True)
class _Leg:
    """The open position of one market and the signal that opened it."""

    amount: Decimal = ZERO  # signed
    avg: Decimal = ZERO
    owner: str | None = None


def _attribute(fills: list[Any], orders: dict[str, Any]) -> dict[str, Decimal | None]:
    """Realized PnL per opening signal id; None while its position is still open."""
    pnl: dict[str, Decimal] = defaultdict(lambda: ZERO)
    closed: set[str] = set()
    legs: dict[tuple[str, str], _Leg] = defaultdict(_Leg)
    for f in fills:
        leg = legs[(f.exchange, f.symbol)]
        order = orders.get(f.client_order_id)
        qty = f.amount if f.side == "buy" else -f.amount
        if leg.amount == 0:
            leg.owner = order.signal_id if order is not None and order.origin == "signal" else None
        if leg.owner is not None:
            pnl[leg.owner] -= f.fee
        if leg.amount == 0 or (leg.amount > 0) == (qty > 0):  # opening or adding
            total = leg.amount + qty
            leg.avg = (leg.avg * abs(leg.amount) + f.price * abs(qty)) / abs(total)
            leg.amount = total
            continue
        closing = min(abs(qty), abs(leg.amount))
        direction = 1 if leg.amount > 0 else -1
        if leg.owner is not None:
            pnl[leg.owner] += (f.price - leg.avg) * closing * direction
        leg.amount += qty
        if leg.amount == 0 or (leg.amount > 0) != (direction > 0):
            if leg.owner is not None:
                closed.add(leg.owner)
            leg.owner, leg.avg = None, f.price  # a flip opens a new, unattributed position
    return {sid: (pnl[sid] if sid in closed else None) for sid in pnl}


async def signal_stats(session: AsyncSession, flt: SignalFilter, since: Any, until: Any) -> dict:
    """Counts by source and grade, share traded, realized PnL and win rate by source."""
    t = SignalRow.__table__

    def ranged(stmt: Select[Any]) -> Select[Any]:
        stmt = flt.apply(stmt)
        if since is not None:
            stmt = stmt.where(t.c.ts >= since)
        if until is not None:
            stmt = stmt.where(t.c.ts <= until)
        return stmt

    by_source = await _counts(
        session, ranged(select(t.c.source, func.count()).group_by(t.c.source))
    )
    by_grade = await _counts(session, ranged(select(t.c.grade, func.count()).group_by(t.c.grade)))
    if "None" in by_grade:
        by_grade["ungraded"] = by_grade.pop("None")
    o = OrderRow.__table__
    traded_stmt = ranged(
        select(t.c.id, t.c.source)
        .join(o, and_(o.c.signal_id == t.c.id, o.c.origin == "signal", o.c.filled > 0))
        .distinct()
    )
    traded: dict[str, str] = {row[0]: row[1] for row in await session.execute(traded_stmt)}
    total = sum(by_source.values())
    return {
        "total": total,
        "by_source": by_source,
        "by_grade": by_grade,
        "traded": len(traded),
        "share_traded": (len(traded) / total) if total else 0.0,
        "by_source_traded": await _outcomes(session, traded),
    }


async def _outcomes(session: AsyncSession, traded: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per source: traded count, decided count, wins, win rate, realized PnL."""
    if not traded:
        return {}
    o, f = OrderRow.__table__, FillRow.__table__
    markets = select(o.c.exchange, o.c.symbol, func.min(o.c.created_at)).where(
        o.c.signal_id.in_(list(traded)), o.c.reduce_only.is_(False)
    )
    rows = (await session.execute(markets.group_by(o.c.exchange, o.c.symbol))).all()
    fills: list[Any] = []
    for exchange, symbol, first in rows:
        stmt = select(f).where(f.c.exchange == exchange, f.c.symbol == symbol, f.c.ts >= first)
        fills.extend((await session.execute(stmt.order_by(f.c.ts, f.c.id))).all())
    ids = {fl.client_order_id for fl in fills}
    orders = {
        r.client_order_id: r
        for r in (await session.execute(select(o).where(o.c.client_order_id.in_(ids)))).all()
    }
    pnl = _attribute(fills, orders)
    out: dict[str, dict[str, Any]] = {}
    for sid, source in traded.items():
        entry = out.setdefault(source, {"traded": 0, "decided": 0, "wins": 0, "realized_pnl": ZERO})
        entry["traded"] += 1
        result = pnl.get(sid)
        if result is not None:
            entry["decided"] += 1
            entry["wins"] += int(result > 0)
            entry["realized_pnl"] += result
    for entry in out.values():
        entry["win_rate"] = entry["wins"] / entry["decided"] if entry["decided"] else None
    return out
