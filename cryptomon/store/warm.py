"""The recent market data a restart warms the detectors with, one query per kind.

Stored live trades (each market's newest, up to its share of a cap) or stored 1-minute
candles of the configured markets (newest first, up to a cap). Read by
``cryptomon.app.warmstart`` at start; the rows come back as the events the detector engine
reads (never published on the hub). Both reads walk an index that starts with the market
(``ix_trades_market_time``, the candles' unique key).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import DateTime, Executable, String, select, type_coerce, union_all

from cryptomon.events import Candle, Trade
from cryptomon.store.models import CandleRow, TradeRow
from cryptomon.store.types import utc

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from cryptomon.store.db import Database

T = TypeVar("T")
Market = tuple[str, str]  # (exchange, symbol)
CANDLE_INTERVAL = "1m"
MARKETS_PER_STATEMENT = 200


def _raw_time(col: Any, dialect: str) -> Any:
    """``col`` as the driver returns it, past the UTC type's per-row conversion (the text
    SQLite stores, a datetime from psycopg): :func:`_epoch` reads it several times faster."""
    return type_coerce(col, String() if dialect == "sqlite" else DateTime(timezone=True))


def _epoch(value: Any) -> float:
    """Epoch seconds of a raw time column (SQLite's text is UTC without an offset)."""
    dt = datetime.fromisoformat(value) if isinstance(value, str) else value
    return (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).timestamp()


def _markets(markets: Sequence[Market]) -> tuple[list[str], list[str], set[Market]]:
    return sorted({m[0] for m in markets}), sorted({m[1] for m in markets}), set(markets)


def candles_statement(
    markets: Sequence[Market], since: float, until: float, limit: int, dialect: str
) -> Executable:
    """1-minute candles of ``markets`` opened in [since, until), newest first, at most
    ``limit`` (the exchange x symbol product; the caller keeps its markets)."""
    exchanges, symbols, _ = _markets(markets)
    c = CandleRow
    return (
        select(
            c.exchange,
            c.symbol,
            _raw_time(c.open_time, dialect),
            _raw_time(c.close_time, dialect),
            c.open,
            c.high,
            c.low,
            c.close,
            c.volume,
            c.trade_count,
        )
        .where(c.exchange.in_(exchanges), c.symbol.in_(symbols))
        .where(c.interval == CANDLE_INTERVAL, c.open_time >= utc(since), c.open_time < utc(until))
        .order_by(c.open_time.desc())
        .limit(limit)
    )


def trades_statement(
    markets: Sequence[Market], since: float, until: float, per_market: int, dialect: str
) -> Executable:
    """Live unflagged trades of each of ``markets`` in [since, until), its newest
    ``per_market``: one statement, a ``UNION ALL`` of one part per market that walks
    ``ix_trades_market_time`` backwards and stops at its limit, so the cost follows the rows
    returned, not the rows stored (one ``IN`` over every market sorts the whole range)."""
    t = TradeRow
    parts = [
        select(
            *(t.exchange, t.symbol, _raw_time(t.ts, dialect).label("ts"), t.price, t.amount),
            *(t.side, t.trade_id, t.notional),
        )
        .where(t.exchange == exchange, t.symbol == symbol)
        .where(t.source == "feed", t.flag.is_(None), t.ts >= utc(since), t.ts < utc(until))
        .order_by(t.ts.desc(), t.id.desc())
        .limit(per_market)
        .subquery()
        for exchange, symbol in markets
    ]
    return union_all(*(select(part) for part in parts))


def candles_from(rows: Sequence[Any], markets: Sequence[Market]) -> list[Candle]:
    """Rows of :func:`candles_statement` as ``Candle`` events of ``markets``, oldest first."""
    keep = set(markets)
    out = []
    for r in reversed(rows):
        if (r[0], r[1]) not in keep:
            continue
        start, end = _epoch(r[2]), _epoch(r[3])
        out.append(
            Candle(
                exchange=r[0],
                symbol=r[1],
                ts=end,
                ts_recv=end,
                interval=CANDLE_INTERVAL,
                start=start,
                end=end,
                open=r[4],
                high=r[5],
                low=r[6],
                close=r[7],
                volume=r[8],
                trades=r[9],
            )
        )
    return out


def trades_from(rows: Sequence[Any], markets: Sequence[Market]) -> list[Trade]:
    """Rows of :func:`trades_statement` as ``Trade`` events of ``markets``, oldest first."""
    keep = set(markets)
    out = []
    for r in rows:
        if (r[0], r[1]) not in keep:
            continue
        ts = _epoch(r[2])
        out.append(
            Trade(
                exchange=r[0],
                symbol=r[1],
                ts=ts,
                ts_recv=ts,
                price=r[3],
                amount=r[4],
                side=r[5],
                trade_id=r[6],
                notional=r[7],
            )
        )
    out.sort(key=lambda t: t.ts)  # stable: a market's trades of one time keep their order
    return out


def _trades_of(markets: Sequence[Market], rows: Sequence[Any]) -> list[Trade]:
    return trades_from(rows, markets)


async def read_rows(
    db: Database, statement: Executable, convert: Callable[[Sequence[Any]], list[T]]
) -> tuple[list[T], int]:
    """(``convert(rows)``, how many rows) of ``statement``: on a reader thread where the
    database has them (a SQLite file, PostgreSQL; the conversion there too, off the event
    loop), else on the async read pool (SQLite in memory)."""
    if db.threaded_reads:

        def work(conn: Connection) -> tuple[list[T], int]:
            rows = conn.execute(statement).all()
            return convert(rows), len(rows)

        return await db.read(work)
    async with db.reader.connect() as conn:
        rows = (await conn.execute(statement)).all()
    return convert(rows), len(rows)


async def recent_candles(
    db: Database, markets: Sequence[Market], since: float, until: float, limit: int
) -> tuple[list[Candle], bool]:
    """(the candles, oldest first; whether ``limit`` cut older ones)."""
    if not markets:
        return [], False
    stmt = candles_statement(markets, since, until, limit, db.dialect)
    candles, n = await read_rows(db, stmt, lambda rows: candles_from(rows, markets))
    return candles, n >= limit


async def recent_trades(
    db: Database, markets: Sequence[Market], since: float, until: float, limit: int
) -> tuple[list[Trade], list[Market]]:
    """(the trades, oldest first; the markets whose older trades ``limit`` cut). ``limit``
    is shared out between the markets; at most ``MARKETS_PER_STATEMENT`` markets go into one
    statement (SQLite's limit of compound parts is 500)."""
    if not markets:
        return [], []
    per_market = max(limit // len(markets), 1)
    trades: list[Trade] = []
    cut: list[Market] = []
    for i in range(0, len(markets), MARKETS_PER_STATEMENT):
        group = markets[i : i + MARKETS_PER_STATEMENT]
        stmt = trades_statement(group, since, until, per_market, db.dialect)
        part, _ = await read_rows(db, stmt, functools.partial(_trades_of, group))
        counts = Counter((t.exchange, t.symbol) for t in part)
        cut += [market for market, n in counts.items() if n >= per_market]
        trades += part
    if len(markets) > MARKETS_PER_STATEMENT:
        trades.sort(key=lambda t: t.ts)
    return trades, cut
