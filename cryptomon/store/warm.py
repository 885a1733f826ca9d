"""The recent market data a restart warms the detectors with, one query per kind.

Stored live trades or stored 1-minute candles of the configured markets, newest first up to a
cap. Read by ``cryptomon.app.warmstart`` at start; the rows come back as the events the detector
engine reads (never published on the hub). Both reads walk an index that starts with the
market (``ix_trades_market_time``, the candles' unique key), and the newest rows are kept
when the cap cuts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Executable, select

from cryptomon.events import Candle, Trade
from cryptomon.store.models import CandleRow, TradeRow
from cryptomon.store.types import epoch, utc

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from cryptomon.store.db import Database

T = TypeVar("T")
Market = tuple[str, str]  # (exchange, symbol)
CANDLE_INTERVAL = "1m"


def _markets(markets: Sequence[Market]) -> tuple[list[str], list[str], set[Market]]:
    return sorted({m[0] for m in markets}), sorted({m[1] for m in markets}), set(markets)


def candles_statement(
    markets: Sequence[Market], since: float, until: float, limit: int
) -> Executable:
    """1-minute candles of ``markets`` opened in [since, until), newest first, at most
    ``limit`` (the exchange x symbol product; the caller keeps its markets)."""
    exchanges, symbols, _ = _markets(markets)
    c = CandleRow
    return (
        select(
            c.exchange,
            c.symbol,
            c.open_time,
            c.close_time,
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
    markets: Sequence[Market], since: float, until: float, limit: int
) -> Executable:
    """Live unflagged trades of ``markets`` in [since, until), newest first, at most ``limit``."""
    exchanges, symbols, _ = _markets(markets)
    t = TradeRow
    return (
        select(t.exchange, t.symbol, t.ts, t.price, t.amount, t.side, t.trade_id, t.notional)
        .where(t.exchange.in_(exchanges), t.symbol.in_(symbols))
        .where(t.source == "feed", t.flag.is_(None), t.ts >= utc(since), t.ts < utc(until))
        .order_by(t.ts.desc(), t.id.desc())
        .limit(limit)
    )


def candles_from(rows: Sequence[Any], markets: Sequence[Market]) -> list[Candle]:
    """Rows of :func:`candles_statement` as ``Candle`` events of ``markets``, oldest first."""
    keep = set(markets)
    out = []
    for r in reversed(rows):
        if (r[0], r[1]) not in keep:
            continue
        start, end = float(epoch(r[2]) or 0.0), float(epoch(r[3]) or 0.0)
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
    for r in reversed(rows):
        if (r[0], r[1]) not in keep:
            continue
        ts = float(epoch(r[2]) or 0.0)
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
    return out


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
    stmt = candles_statement(markets, since, until, limit)
    candles, n = await read_rows(db, stmt, lambda rows: candles_from(rows, markets))
    return candles, n >= limit


async def recent_trades(
    db: Database, markets: Sequence[Market], since: float, until: float, limit: int
) -> tuple[list[Trade], bool]:
    """(the trades, oldest first; whether ``limit`` cut older ones)."""
    if not markets:
        return [], False
    stmt = trades_statement(markets, since, until, limit)
    trades, n = await read_rows(db, stmt, lambda rows: trades_from(rows, markets))
    return trades, n >= limit
