"""The read side the API uses. Every method returns plain data: dicts with epoch-second floats
for times, ``Decimal`` for money, lists for JSON columns. Bad arguments raise ``ValueError``
with a message naming the argument and what is expected; an unreachable database raises
:class:`~cryptomon.errors.TemporaryError` (URL password redacted).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from sqlalchemy import Integer, Select, and_, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from cryptomon.errors import TemporaryError
from cryptomon.events import Severity
from cryptomon.log import redact_url
from cryptomon.store.db import is_transient
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
from cryptomon.store.signal_queries import SignalFilter, page_statement, signal_stats
from cryptomon.store.types import utc

if TYPE_CHECKING:
    from cryptomon.store.db import Database

MAX_LIMIT = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HIDDEN = frozenset({"event_key", "severity_rank"})
_S = TypeVar("_S", bound=Select)


def _limit(limit: int, name: str = "limit") -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"{name} must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    return limit


def _time(value: float | datetime | None, name: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return utc(float(value))
    raise ValueError(f"{name} must be epoch seconds or a datetime, got {value!r}")


def _plain(mapping: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if key in _HIDDEN:
            continue
        out[key] = value.timestamp() if isinstance(value, datetime) else value
    return out


def _holds_datetimes(rows: list[Any], i: int) -> bool:
    """Whether column ``i`` holds datetimes: its first non-NULL value says (one type per
    column), so this usually looks at one row."""
    for row in rows:
        value = row[i]
        if value is not None:
            return isinstance(value, datetime)
    return False


def _plain_rows(result: Any, rows: list[Any] | None = None) -> list[dict[str, Any]]:
    """``_plain`` of every row of ``result`` (or of ``rows`` taken from it), planned once per
    result: the kept columns are zipped with each row's values and only the columns that hold
    datetimes are converted."""
    if rows is None:
        rows = result.all()
    if not rows:
        return []
    keys = list(result.keys())
    keep = [i for i, k in enumerate(keys) if k not in _HIDDEN]
    names = [keys[i] for i in keep]
    times = [keys[i] for i in keep if _holds_datetimes(rows, i)]
    pick = itemgetter(*keep) if len(keep) > 1 else (lambda r: (r[keep[0]],))
    out = [dict(zip(names, pick(r), strict=True)) for r in rows]
    for key in times:
        for d in out:
            value = d[key]
            if value is not None:
                d[key] = value.timestamp()
    return out


def encode_cursor(ts: datetime, key: str) -> str:
    micros = (ts - _EPOCH) // timedelta(microseconds=1)
    raw = json.dumps([micros, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of :func:`encode_cursor`; ValueError for anything it did not produce."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        micros, key = orjson.loads(raw)
        if not isinstance(micros, int) or not isinstance(key, str):
            raise TypeError
        return _EPOCH + timedelta(microseconds=micros), key
    except (ValueError, TypeError, binascii.Error, OverflowError):
        raise ValueError(
            f"invalid cursor {cursor[:40]!r}: pass the next_cursor value of a previous page"
        ) from None


def _range(stmt: _S, col: Any, since: Any, until: Any) -> _S:
    lo, hi = _time(since, "since"), _time(until, "until")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"since ({since}) must not be after until ({until})")
    if lo is not None:
        stmt = stmt.where(col >= lo)
    if hi is not None:
        stmt = stmt.where(col <= hi)
    return stmt


@functools.cache
def _anomaly_page(present: frozenset[str]) -> Select[Any]:
    """The page statement for one combination of filters (bound parameters named like the
    keys of ``present``), built once: the list route's requests differ in values, rarely in
    shape."""
    t = AnomalyRow.__table__
    stmt = select(t)
    for name in ("exchange", "symbol", "kind"):
        if name in present:
            stmt = stmt.where(t.c[name] == bindparam(name))
    if "rank" in present:
        stmt = stmt.where(t.c.severity_rank >= bindparam("rank"))
    if "since" in present:
        stmt = stmt.where(t.c.ts_detected >= bindparam("since", type_=t.c.ts_detected.type))
    if "until" in present:
        stmt = stmt.where(t.c.ts_detected <= bindparam("until", type_=t.c.ts_detected.type))
    if "c_ts" in present:
        c_ts = bindparam("c_ts", type_=t.c.ts_detected.type)
        c_id = bindparam("c_id", type_=t.c.id.type)
        stmt = stmt.where(or_(t.c.ts_detected < c_ts, and_(t.c.ts_detected == c_ts, t.c.id < c_id)))
    order = (t.c.ts_detected.desc(), t.c.id.desc())
    return stmt.order_by(*order).limit(bindparam("limit", type_=Integer()))


class Queries:
    """Read-only queries over the store (``Queries(db=database)``)."""

    def __init__(self, *, db: Database) -> None:
        self.db = db

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        """A read session on the read pool (for the statistics helpers that take a session)."""
        async with self._connection() as conn, AsyncSession(bind=conn) as session:
            yield session

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        """A read connection from the database's read pool (Core: no ORM session per request);
        an unreachable or unanswering database becomes a ``TemporaryError``."""
        try:
            async with asyncio.timeout(self.db.answer_timeout_s), self.db.reader.connect() as conn:
                yield conn
        except Exception as exc:
            if is_transient(exc):
                first = str(getattr(exc, "orig", None) or exc).splitlines()[:1]
                raise TemporaryError(
                    f"database {self.db.safe_url} unavailable: {redact_url(''.join(first))}"
                ) from None
            raise

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
        stmt = _range(stmt, table.c.ts, since, until)
        order = (table.c.ts.desc(), table.c.id.desc())
        return await self._all(stmt.order_by(*order).limit(_limit(limit)))

    async def _fetch(
        self, stmt: Select[Any], params: dict[str, Any] | None = None
    ) -> tuple[Any, list[Any]]:
        """(result, rows) of one statement: on a SQLite file in one reader thread, else on
        the async read pool; an unreachable database becomes a ``TemporaryError``."""
        if not self.db.threaded_reads:
            async with self._connection() as conn:
                result = await conn.execute(stmt, params)
                return result, result.all()

        def work(conn: Any) -> tuple[Any, list[Any]]:
            result = conn.execute(stmt, params)
            return result, result.all()

        try:
            return await self.db.read(work)
        except Exception as exc:
            if is_transient(exc):
                first = str(getattr(exc, "orig", None) or exc).splitlines()[:1]
                raise TemporaryError(
                    f"database {self.db.safe_url} unavailable: {redact_url(''.join(first))}"
                ) from None
            raise

    async def _all(self, stmt: Select[Any]) -> list[dict[str, Any]]:
        result, rows = await self._fetch(stmt)
        return _plain_rows(result, rows)

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
        limit = _limit(limit)
        params: dict[str, Any] = {"limit": limit + 1}
        if exchange is not None:
            params["exchange"] = exchange
        if symbol is not None:
            params["symbol"] = symbol
        if kind is not None:
            params["kind"] = kind
        if min_severity is not None:
            try:
                params["rank"] = Severity(str(min_severity).lower()).rank
            except ValueError:
                allowed = ", ".join(s.value for s in Severity)
                raise ValueError(
                    f"min_severity must be one of {allowed}, got {min_severity!r}"
                ) from None
        lo, hi = _time(since, "since"), _time(until, "until")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"since ({since}) must not be after until ({until})")
        if lo is not None:
            params["since"] = lo
        if hi is not None:
            params["until"] = hi
        if cursor:
            params["c_ts"], params["c_id"] = decode_cursor(cursor)
        stmt = _anomaly_page(frozenset(params))
        result, rows = await self._fetch(stmt, params)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].ts_detected, rows[-1].id) if more else None
        return _plain_rows(result, rows), next_cursor

    async def anomaly(self, anomaly_id: str) -> dict[str, Any] | None:
        rows = await self._all(select(AnomalyRow.__table__).where(AnomalyRow.id == anomaly_id))
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
                stmt = _range(
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
        limit = _limit(limit)
        t = CandleRow.__table__
        stmt = select(t).where(
            t.c.exchange == exchange, t.c.symbol == symbol, t.c.interval == interval
        )
        stmt = _range(stmt, t.c.open_time, since, until)
        if since is not None:
            return await self._all(stmt.order_by(t.c.open_time.asc()).limit(limit))
        rows = await self._all(stmt.order_by(t.c.open_time.desc()).limit(limit))
        rows.reverse()
        return rows

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
        return await self._all(stmt.order_by(t.c.created_at.desc()).limit(_limit(limit)))

    async def order(self, client_order_id: str) -> dict[str, Any] | None:
        t = OrderRow.__table__
        rows = await self._all(select(t).where(t.c.client_order_id == client_order_id))
        return rows[0] if rows else None

    async def fills(
        self, *, symbol: str | None = None, client_order_id: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest first."""
        return await self._newest(
            FillRow.__table__, limit=limit, symbol=symbol, client_order_id=client_order_id
        )

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
        limit = _limit(limit)
        flt = SignalFilter(exchange, symbol, source, side, grade)
        stmt = page_statement(flt, decode_cursor(cursor) if cursor else None, limit)
        stmt = _range(stmt, SignalRow.__table__.c.ts, since, until)
        async with self._connection() as conn:
            raw = list((await conn.execute(stmt)).mappings())
        more = len(raw) > limit
        raw = raw[:limit]
        next_cursor = encode_cursor(raw[-1]["ts"], raw[-1]["id"]) if more else None
        return [_plain(r) for r in raw], next_cursor

    async def signal_stats(
        self,
        *,
        exchange: str | None = None,
        symbol: str | None = None,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
    ) -> dict[str, Any]:
        """Counts by source and grade, share traded, PnL and win rate of traded signals."""
        _range(select(SignalRow.__table__), SignalRow.__table__.c.ts, since, until)  # checks
        flt = SignalFilter(exchange, symbol)
        async with self._session() as session:
            return await signal_stats(session, flt, _time(since, "since"), _time(until, "until"))

    async def equity_snapshots(
        self,
        *,
        since: float | datetime | None = None,
        until: float | datetime | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Oldest first (the latest ``limit`` when ``since`` is not given)."""
        t = EquitySnapshotRow.__table__
        stmt = _range(select(t), t.c.ts, since, until)
        if since is not None:
            return await self._all(stmt.order_by(t.c.ts.asc()).limit(_limit(limit)))
        rows = await self._all(stmt.order_by(t.c.ts.desc()).limit(_limit(limit)))
        rows.reverse()
        return rows

    # ------------------------------------------------------------------ operations

    async def notifications(
        self, *, channel: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Newest first."""
        return await self._newest(
            NotificationRow.__table__, limit=limit, channel=channel, status=status
        )

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
