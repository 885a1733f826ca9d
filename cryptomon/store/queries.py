"""The read side the API uses. Every method returns plain data: dicts with epoch-second floats
for times, ``Decimal`` for money, lists for JSON columns. Bad arguments raise ``ValueError``
with a message naming the argument and what is expected; an unreachable database raises
:class:`~cryptomon.errors.TemporaryError` (URL password redacted).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select

from cryptomon.events import Severity
from cryptomon.kinds import NotificationEventType
from cryptomon.store.anomaly_json import driver_statement, page_body
from cryptomon.store.anomaly_queries import ROW_COLUMNS, anomaly_page, anomaly_params
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
    SignalRow,
)
from cryptomon.store.pages import (
    MAX_LIMIT,
    after_key,
    as_time,
    check_limit,
    decode_cursor,
    decode_int_cursor,
    encode_cursor,
    plain,
    plain_rows,
    time_range,
)
from cryptomon.store.reads import ReadPool
from cryptomon.store.signal_queries import SignalFilter, page_statement, signal_stats

__all__ = ["MAX_LIMIT", "Queries", "decode_cursor", "encode_cursor"]

_EVENT_TYPES = tuple(e.value for e in NotificationEventType)


class Queries(ReadPool):
    """Read-only queries over the store (``Queries(db=database)``)."""

    async def _newest(
        self,
        table: Any,
        *,
        limit: int,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        **equals: Any,
    ) -> list[dict[str, Any]]:
        """Rows of ``table`` whose columns equal every non-None ``equals`` value, with ``ts`` in
        [since, until], newest first."""
        stmt = select(table)
        for column, value in equals.items():
            if value is not None:
                stmt = stmt.where(table.c[column] == value)
        stmt = time_range(stmt, table.c.ts, since, until)
        order = (table.c.ts.desc(), table.c.id.desc())
        return await self._all(stmt.order_by(*order).limit(check_limit(limit)))

    async def _all(self, stmt: Select[Any]) -> list[dict[str, Any]]:
        result, rows = await self._fetch(stmt)
        return plain_rows(result, rows)

    async def _oldest_first(
        self, stmt: Select[Any], column: Any, since: float | datetime | None, limit: int
    ) -> list[dict[str, Any]]:
        """Rows of ``stmt`` by ``column``, oldest first: the first ``limit`` from ``since``
        when it is given, else the latest ``limit``."""
        limit = check_limit(limit)
        if since is not None:
            return await self._all(stmt.order_by(column.asc()).limit(limit))
        rows = await self._all(stmt.order_by(column.desc()).limit(limit))
        rows.reverse()
        return rows

    # ------------------------------------------------------------------ anomalies

    async def anomalies(
        self,
        *,
        exchange: str | None = None,
        symbol: str | None = None,
        kind: str | None = None,
        min_severity: str | Severity | None = None,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first (by detection time, then id); returns (page, next_cursor or None)."""
        limit = check_limit(limit)
        params = anomaly_params(
            exchange=exchange,
            symbol=symbol,
            kind=kind,
            min_severity=min_severity,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
        stmt = anomaly_page(frozenset(params))
        result, rows = await self._fetch(stmt, params)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].ts_detected, rows[-1].id) if more else None
        return plain_rows(result, rows), next_cursor

    async def anomaly_page_json(
        self,
        *,
        exchange: str | None = None,
        symbol: str | None = None,
        kind: str | None = None,
        min_severity: str | Severity | None = None,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> bytes:
        """:meth:`anomalies` as the JSON of ``{"items": page, "next_cursor": cursor}`` (the
        same bytes as orjson's): one row of one statement, the rows' stored items joined by
        the database (:mod:`cryptomon.store.anomaly_json`), read on the loop: on a SQLite
        file bounded (else on a reader thread), on PostgreSQL with psycopg's async
        connection (:mod:`cryptomon.store.loop_rows`)."""
        limit = check_limit(limit)
        params = anomaly_params(
            exchange=exchange,
            symbol=symbol,
            kind=kind,
            min_severity=min_severity,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
        params["shown"] = limit
        present = frozenset(params)

        def sql(dialect: Any) -> tuple[str, Any]:
            stmt = driver_statement(dialect, present)
            return stmt.sql, stmt.parameters(params)

        return page_body(await self._one_row(sql, first_bytes=True), limit)

    async def anomaly(self, anomaly_id: str) -> dict[str, Any] | None:
        rows = await self._all(select(*ROW_COLUMNS).where(AnomalyRow.id == anomaly_id))
        return rows[0] if rows else None

    async def anomaly_stats(
        self, *, since: float | datetime | None = None, until: float | datetime | None = None
    ) -> dict[str, Any]:
        """Counts over a detection-time range: total, by kind, by severity, by symbol."""
        out: dict[str, Any] = {"total": 0}
        async with self._session() as session:
            for name, col in (
                ("by_kind", AnomalyRow.kind),
                ("by_severity", AnomalyRow.severity),
                ("by_symbol", AnomalyRow.symbol),
            ):
                stmt = time_range(
                    select(col, func.count()).group_by(col), AnomalyRow.ts_detected, since, until
                )
                counts = {str(k): int(n) for k, n in (await session.execute(stmt)).all()}
                out[name] = counts
            out["total"] = sum(out["by_kind"].values())
        return out

    # ------------------------------------------------------------------ market data

    async def candles(
        self,
        *,
        exchange: str,
        symbol: str,
        interval: str = "1m",
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Candles oldest first: the first ``limit`` from ``since``, else the latest ``limit``."""
        limit = check_limit(limit)
        t = CandleRow.__table__
        stmt = select(t).where(
            t.c.exchange == exchange, t.c.symbol == symbol, t.c.interval == interval
        )
        stmt = time_range(stmt, t.c.open_time, since, until)
        return await self._oldest_first(stmt, t.c.open_time, since, limit)

    async def latest_book_top(self, exchange: str, symbol: str) -> dict[str, Any] | None:
        t = BookTopRow.__table__
        stmt = (
            select(t)
            .where(t.c.exchange == exchange, t.c.symbol == symbol)
            .order_by(t.c.ts.desc())
            .limit(1)
        )
        rows = await self._all(stmt)
        return rows[0] if rows else None

    # ------------------------------------------------------------------ trading

    async def orders(
        self, *, state: str | None = None, symbol: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest first."""
        t = OrderRow.__table__
        stmt = select(t)
        if state is not None:
            stmt = stmt.where(t.c.state == state)
        if symbol is not None:
            stmt = stmt.where(t.c.symbol == symbol)
        return await self._all(stmt.order_by(t.c.created_at.desc()).limit(check_limit(limit)))

    async def order(self, client_order_id: str) -> dict[str, Any] | None:
        t = OrderRow.__table__
        rows = await self._all(select(t).where(t.c.client_order_id == client_order_id))
        return rows[0] if rows else None

    async def fills(
        self, *, symbol: str | None = None, client_order_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest first. A fill the venue reported without its order's id (a ccxt trade with
        no ``order`` field) gets the id its order row learned since: the venue's id is read
        through the orders table's primary key, one lookup per returned fill, so it is right
        whichever of the two was written first and for fills stored before it was known."""
        f, o = FillRow.__table__, OrderRow.__table__
        columns = [c for c in f.c if c.name != "exchange_order_id"]
        venue_id = func.coalesce(f.c.exchange_order_id, o.c.exchange_order_id)
        stmt = select(*columns, venue_id.label("exchange_order_id")).select_from(
            f.outerjoin(o, o.c.client_order_id == f.c.client_order_id)
        )
        if symbol is not None:
            stmt = stmt.where(f.c.symbol == symbol)
        if client_order_id is not None:
            stmt = stmt.where(f.c.client_order_id == client_order_id)
        order = (f.c.ts.desc(), f.c.id.desc())
        return await self._all(stmt.order_by(*order).limit(check_limit(limit)))

    async def positions(self) -> list[dict[str, Any]]:
        t = PositionRow.__table__
        return await self._all(select(t).order_by(t.c.exchange, t.c.symbol))

    async def signals(
        self,
        *,
        exchange: str | None = None,
        symbol: str | None = None,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first."""
        return (
            await self.signal_page(
                exchange=exchange, symbol=symbol, since=since, until=until, limit=limit
            )
        )[0]

    async def signal_page(
        self,
        *,
        exchange: str | None = None,
        symbol: str | None = None,
        source: str | None = None,
        side: str | None = None,
        grade: str | None = None,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first (by time, then id); returns (page, next_cursor or None)."""
        limit = check_limit(limit)
        flt = SignalFilter(exchange, symbol, source, side, grade)
        stmt = page_statement(flt, decode_cursor(cursor) if cursor else None, limit)
        stmt = time_range(stmt, SignalRow.__table__.c.ts, since, until)
        async with self._connection() as conn:
            raw = list((await conn.execute(stmt)).mappings())
        more = len(raw) > limit
        raw = raw[:limit]
        next_cursor = encode_cursor(raw[-1]["ts"], raw[-1]["id"]) if more else None
        return [plain(r) for r in raw], next_cursor

    async def signal_stats(
        self,
        *,
        exchange: str | None = None,
        symbol: str | None = None,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
    ) -> dict[str, Any]:
        """Counts by source and grade, share traded, PnL and win rate of traded signals."""
        time_range(select(SignalRow.__table__), SignalRow.__table__.c.ts, since, until)  # checks
        flt = SignalFilter(exchange, symbol)
        async with self._session() as session:
            return await signal_stats(
                session, flt, as_time(since, "since"), as_time(until, "until")
            )

    async def equity_snapshots(
        self,
        *,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Oldest first (the latest ``limit`` when ``since`` is not given)."""
        t = EquitySnapshotRow.__table__
        stmt = time_range(select(t), t.c.ts, since, until)
        return await self._oldest_first(stmt, t.c.ts, since, limit)

    # ------------------------------------------------------------------ operations

    async def notifications(
        self, *, channel: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest first."""
        return (await self.notification_page(channel=channel, status=status, limit=limit))[0]

    async def notification_page(
        self,
        *,
        channel: str | None = None,
        status: str | None = None,
        event_type: str | None = None,
        exchange: str | None = None,
        symbol: str | None = None,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first (by time, then id); returns (page, next_cursor or None)."""
        limit = check_limit(limit)
        if event_type is not None and event_type not in _EVENT_TYPES:
            allowed = ", ".join(_EVENT_TYPES)
            raise ValueError(f"event_type must be one of {allowed}, got {event_type!r}")
        t = NotificationRow.__table__
        stmt = select(t)
        equals = {
            "channel": channel,
            "status": status,
            "event_type": event_type,
            "exchange": exchange,
            "symbol": symbol,
        }
        for column, value in equals.items():
            if value is not None:
                stmt = stmt.where(t.c[column] == value)
        stmt = time_range(stmt, t.c.ts, since, until)
        stmt = after_key(stmt, t.c.ts, t.c.id, decode_int_cursor(cursor) if cursor else None)
        stmt = stmt.order_by(t.c.ts.desc(), t.c.id.desc()).limit(limit + 1)
        result, rows = await self._fetch(stmt)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].ts, rows[-1].id) if more else None
        return plain_rows(result, rows), next_cursor

    async def feed_events(
        self,
        *,
        exchange: str | None = None,
        symbol: str | None = None,
        status: str | None = None,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first."""
        return await self._newest(
            FeedEventRow.__table__,
            limit=limit,
            since=since,
            until=until,
            exchange=exchange,
            symbol=symbol,
            status=status,
        )

    async def audit_log(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first."""
        return await self._newest(
            AuditRow.__table__, limit=limit, since=since, until=until, actor=actor, action=action
        )
