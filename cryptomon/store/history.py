"""Historical market data for backtests: downloaded or imported candles and trades, and the
backtest runs themselves (``backtest_runs``).

Candles go through :func:`cryptomon.store.bulk.upsert_candles` (a second import of the same
minutes replaces them; an exchange row always wins) with ``history`` set, trades carry a
``source`` column (``feed`` for live ones, ``download`` / ``import`` for history) and are
written once per (exchange, symbol, trade id). Retention keeps both (``store/retention.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update

from cryptomon.store.bulk import upsert_candles
from cryptomon.store.db import Database
from cryptomon.store.models import BacktestRunRow, CandleRow, TradeRow
from cryptomon.store.types import epoch, utc

CHUNK = 5000
IN_CHUNK = 500  # trade ids per IN list (SQLite's older builds allow 999 parameters)


def candle_rows(
    *,
    exchange: str,
    symbol: str,
    interval: str,
    step_s: float,
    rows: Sequence[Sequence[float]],
    source: str,
) -> list[dict[str, Any]]:
    """``(open_time_s, o, h, l, c, v)`` tuples -> ``CandleRow`` dicts (``history``: kept by
    retention)."""
    return [
        {
            "exchange": exchange,
            "symbol": symbol,
            "interval": interval,
            "open_time": utc(float(r[0])),
            "close_time": utc(float(r[0]) + step_s),
            "open": float(r[1]),
            "high": float(r[2]),
            "low": float(r[3]),
            "close": float(r[4]),
            "volume": float(r[5]),
            "trade_count": None,
            "buy_volume": None,
            "sell_volume": None,
            "closed": True,
            "source": source,
            "history": True,
        }
        for r in rows
    ]


async def save_candles(db: Database, rows: list[dict[str, Any]]) -> int:
    """Upsert candle rows in chunks; the number written."""
    written = 0
    for i in range(0, len(rows), CHUNK):
        async with db.sessionmaker() as session, session.begin():
            written += await upsert_candles(session, rows[i : i + CHUNK])
    return written


async def save_trades(db: Database, rows: list[dict[str, Any]]) -> int:
    """Insert trade rows (``TradeRow`` columns, one market, one history ``source``) whose
    trade id is not stored yet; a live (``feed``) trade of the same id becomes history (its
    ``source`` set to the rows'), so retention keeps it. The number inserted."""
    if not rows:
        return 0
    first = rows[0]
    market = (
        TradeRow.exchange == first["exchange"],
        TradeRow.symbol == first["symbol"],
        TradeRow.ts >= min(r["ts"] for r in rows),
        TradeRow.ts <= max(r["ts"] for r in rows),
    )
    async with db.sessionmaker() as session, session.begin():
        stored = await session.execute(select(TradeRow.trade_id, TradeRow.source).where(*market))
        known: dict[str | None, str] = {row[0]: row[1] for row in stored}
        fresh = [r for r in rows if r["trade_id"] not in known]
        live = [r["trade_id"] for r in rows if known.get(r["trade_id"]) == "feed"]
        for i in range(0, len(live), IN_CHUNK):
            await session.execute(
                update(TradeRow)
                .where(
                    *market,
                    TradeRow.source == "feed",
                    TradeRow.trade_id.in_(live[i : i + IN_CHUNK]),
                )
                .values(source=first["source"])
            )
        for i in range(0, len(fresh), CHUNK):
            await session.execute(insert(TradeRow), fresh[i : i + CHUNK])
    return len(fresh)


async def candle_times(
    db: Database,
    *,
    exchange: str,
    symbol: str,
    interval: str,
    start: float,
    end: float,
    history: bool = False,
) -> list[float]:
    """Open times (epoch s) of the stored candles of a market in ``[start, end)``; with
    ``history`` only those of history (a live candle there is not downloaded history yet:
    retention would delete it)."""
    conds = [_candle_market(exchange, symbol, interval), _candle_range(start, end)]
    if history:
        conds.append(CandleRow.history.is_(True))
    async with db.sessionmaker() as session:
        times = await session.scalars(
            select(CandleRow.open_time).where(*conds).order_by(CandleRow.open_time)
        )
        return [float(epoch(t) or 0.0) for t in times]


async def trade_span(
    db: Database, *, exchange: str, symbol: str, history: bool = False
) -> float | None:
    """The newest stored trade time of a market (epoch s), or None; with ``history`` of its
    downloaded or imported trades only (not ``feed``)."""
    conds = [TradeRow.exchange == exchange, TradeRow.symbol == symbol]
    if history:
        conds.append(TradeRow.source != "feed")
    async with db.sessionmaker() as session:
        newest = await session.scalar(select(func.max(TradeRow.ts)).where(*conds))
    return epoch(newest)


async def trade_bounds(
    db: Database, *, exchange: str, symbol: str, start: float, end: float
) -> tuple[float, float] | None:
    """(oldest, newest) time (epoch s) of the downloaded or imported trades of a market in
    ``[start, end)``, or None."""
    conds = [
        TradeRow.exchange == exchange,
        TradeRow.symbol == symbol,
        TradeRow.source != "feed",
        TradeRow.ts >= utc(start),
        TradeRow.ts < utc(end),
    ]
    async with db.sessionmaker() as session:
        row = (
            await session.execute(
                select(func.min(TradeRow.ts), func.max(TradeRow.ts)).where(*conds)
            )
        ).one()
    oldest, newest = epoch(row[0]), epoch(row[1])
    return None if oldest is None or newest is None else (oldest, newest)


def _candle_market(exchange: str, symbol: str, interval: str) -> Any:
    return and_(
        CandleRow.exchange == exchange,
        CandleRow.symbol == symbol,
        CandleRow.interval == interval,
    )


def _candle_range(start: float | None, end: float | None) -> Any:
    conds: list[Any] = [CandleRow.closed.is_(True)]
    if start is not None:
        conds.append(CandleRow.open_time >= utc(start))
    if end is not None:
        conds.append(CandleRow.open_time < utc(end))
    return and_(*conds)


async def load_candles(
    db: Database,
    *,
    exchange: str,
    symbol: str,
    interval: str,
    start: float | None,
    end: float | None,
) -> list[tuple[float, float, float, float, float, float]]:
    """Closed candles of a market, oldest first, as ``(open_time_s, o, h, l, c, v)``."""
    async with db.sessionmaker() as session:
        rows = await session.execute(
            select(
                CandleRow.open_time,
                CandleRow.open,
                CandleRow.high,
                CandleRow.low,
                CandleRow.close,
                CandleRow.volume,
            )
            .where(_candle_market(exchange, symbol, interval), _candle_range(start, end))
            .order_by(CandleRow.open_time)
        )
        return [(float(epoch(r[0]) or 0.0), r[1], r[2], r[3], r[4], r[5]) for r in rows]


async def load_trades(
    db: Database, *, exchange: str, symbol: str, start: float | None, end: float | None
) -> list[tuple[float, float, float, str, str]]:
    """Stored trades of a market, oldest first, as ``(ts_s, price, amount, side, trade_id)``."""
    conds: list[Any] = [TradeRow.exchange == exchange, TradeRow.symbol == symbol]
    if start is not None:
        conds.append(TradeRow.ts >= utc(start))
    if end is not None:
        conds.append(TradeRow.ts < utc(end))
    async with db.sessionmaker() as session:
        rows = await session.execute(
            select(TradeRow.ts, TradeRow.price, TradeRow.amount, TradeRow.side, TradeRow.trade_id)
            .where(*conds)
            .order_by(TradeRow.ts, TradeRow.id)
        )
        return [(float(epoch(r[0]) or 0.0), r[1], r[2], r[3], str(r[4])) for r in rows]


async def trade_markets(db: Database) -> list[tuple[str, str]]:
    """(exchange, symbol) pairs with stored trades."""
    async with db.sessionmaker() as session:
        rows = await session.execute(
            select(TradeRow.exchange, TradeRow.symbol)
            .distinct()
            .order_by(TradeRow.exchange, TradeRow.symbol)
        )
        return [(r[0], r[1]) for r in rows]


async def stored_markets(db: Database, interval: str) -> list[tuple[str, str]]:
    """(exchange, symbol) pairs with stored candles of ``interval``."""
    async with db.sessionmaker() as session:
        rows = await session.execute(
            select(CandleRow.exchange, CandleRow.symbol)
            .where(CandleRow.interval == interval)
            .distinct()
            .order_by(CandleRow.exchange, CandleRow.symbol)
        )
        return [(r[0], r[1]) for r in rows]


# --------------------------------------------------------------------------- backtest runs


async def save_run(db: Database, run: dict[str, Any]) -> int:
    """Store one run (``BacktestRunRow`` columns except ``id``); its new id."""
    async with db.sessionmaker() as session, session.begin():
        row = BacktestRunRow(**run)
        session.add(row)
        await session.flush()
        return int(row.id)


async def save_sweep(db: Database, runs: Sequence[dict[str, Any]], *, metric: str) -> list[int]:
    """Store a sweep's variants, ``runs`` ranked best first, one transaction each (a writer on
    SQLite waits for one variant, not the whole sweep); their ids. The best variant's id names
    the sweep: it is stored first and its ``sweep_id`` set to its own id before it commits, so
    no listing ever sees a variant without its sweep."""
    ids: list[int] = []
    for rank, run in enumerate(runs, 1):
        async with db.sessionmaker() as session, session.begin():
            sweep = ids[0] if ids else None
            row = BacktestRunRow(**run, sweep_id=sweep, sweep_rank=rank, sweep_metric=metric)
            session.add(row)
            await session.flush()
            if sweep is None:
                row.sweep_id = row.id
            ids.append(int(row.id))
    return ids


class BacktestRuns:
    """The API's read side of ``backtest_runs``: newest first, one run, its report."""

    def __init__(self, *, db: Database) -> None:
        self.db = db

    async def list_runs(
        self,
        *,
        limit: int = 50,
        before: int | None = None,
        sweep: int | None = None,
        after_rank: int | None = None,
        variants: bool = True,
    ) -> list[dict[str, Any]]:
        """Newest first, without the heavy columns (trades, report: only whether it exists);
        with ``sweep`` that sweep's variants best first (from ``after_rank`` on); without
        ``variants`` a sweep is listed by its best variant alone."""
        row = BacktestRunRow
        query = select(*_LISTED).limit(limit)
        if sweep is not None:
            query = query.where(row.sweep_id == sweep).order_by(row.sweep_rank, row.id)
            if after_rank is not None:
                query = query.where(row.sweep_rank > after_rank)
        else:
            query = query.order_by(row.id.desc())
        if before is not None:
            query = query.where(row.id < before)
        if not variants:
            query = query.where(or_(row.sweep_id.is_(None), row.sweep_rank == 1))
        async with self.db.sessionmaker() as session:
            rows = (await session.execute(query)).all()
        return [_summary_dict(tuple(r)) for r in rows]

    async def get_run(self, run_id: int) -> dict[str, Any] | None:
        async with self.db.sessionmaker() as session:
            row = await session.get(BacktestRunRow, run_id)
            if row is None:
                return None
            values = tuple(getattr(row, name) for name in _COLUMNS)
            out = _summary_dict((*values, row.report_html is not None, row.params))
            out.update(params=row.params, breakdown=row.breakdown, trades=row.trades)
            return out

    async def report(self, run_id: int) -> str | None:
        async with self.db.sessionmaker() as session:
            html: str | None = await session.scalar(
                select(BacktestRunRow.report_html).where(BacktestRunRow.id == run_id)
            )
            return html

    async def delete_run(self, run_id: int) -> None:
        async with self.db.sessionmaker() as session, session.begin():
            await session.execute(delete(BacktestRunRow).where(BacktestRunRow.id == run_id))


def _iso(dt: datetime) -> str:
    return dt.isoformat()


_COLUMNS = (
    "id",
    "created_at",
    "source",
    "symbols",
    "start",
    "end",
    "summary",
    "digest",
    "sweep_id",
    "sweep_rank",
    "sweep_metric",
)
_LISTED = (
    *(getattr(BacktestRunRow, name) for name in _COLUMNS),
    BacktestRunRow.report_html.is_not(None),
    BacktestRunRow.params,
)
SUMMARY_FIELDS = (*_COLUMNS, "has_report", "params")


def _summary_dict(values: Sequence[Any]) -> dict[str, Any]:
    """One listed run from its column values, in the order of ``SUMMARY_FIELDS``; of its
    params only the overrides (a sweep variant's, or ``--set``'s: ``{}`` for none)."""
    out = dict(zip(SUMMARY_FIELDS, values, strict=True))
    for name in ("created_at", "start", "end"):
        out[name] = _iso(out[name])
    out["symbols"] = list(out["symbols"])
    out["summary"] = dict(out["summary"])
    out["has_report"] = bool(out["has_report"])
    params = out.pop("params") or {}
    out["overrides"] = dict(params.get("overrides") or {})
    return out
