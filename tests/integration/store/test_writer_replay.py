"""The store writer's rows for the real recordings replayed through the feed code: exactly
the rows a naive reference builds from the published events (every trade, flagged ones with
their flag; the first book top of each market and then the first one ``book_sample_s`` or
more after the last kept; closed exchange candles and the 1-minute candles of the trades),
whatever the writer's batching, on SQLite (with its stored text) and on PostgreSQL."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from cryptomon.clock import LiveClock
from cryptomon.config import ExchangeConfig, StorageConfig
from cryptomon.events import BookTop, Candle, Event, FlaggedTrade, Trade
from cryptomon.feeds.replay import ReplayFeed, replay_feed_class
from cryptomon.feeds.specs import recording_specs
from cryptomon.hub import Hub
from cryptomon.market.inputs import MarketInputs
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.venues import RecordingError
from cryptomon.store.candles import CandleAggregator
from cryptomon.store.db import Database
from cryptomon.store.models import BookTopRow, CandleRow, TradeRow
from cryptomon.store.repos import candle_row
from cryptomon.store.writer import StoreWriter

EXCHANGES = ("BINANCE", "BINANCE_FUTURES", "BITFINEX", "GATEIO", "KRAKEN", "OKX")
TOP_FIELDS = (
    *("bid", "bid_size", "ask", "ask_size", "spread", "spread_bps"),
    *("bid_depth", "ask_depth", "imbalance", "levels"),
)
CANDLE_FIELDS = (
    *("exchange", "symbol", "interval", "open_time", "close_time", "open", "high", "low"),
    *("close", "volume", "trade_count", "buy_volume", "sell_volume", "closed", "source"),
)


def recordings(data: Path) -> dict[str, list[str]]:
    return {n: sorted(str(p) for p in data.glob(f"{n}.*")) for n in EXCHANGES}


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def expected_trades(events: list[Event]) -> list[tuple[Any, ...]]:
    rows = []
    for ev in events:
        if isinstance(ev, Trade | FlaggedTrade):
            t, flag = (ev.trade, ev.flag) if isinstance(ev, FlaggedTrade) else (ev, None)
            head = (t.exchange, t.symbol, utc(t.ts), t.price, t.amount, t.side)
            rows.append((*head, t.trade_id, t.notional, flag))
    return sorted(rows, key=repr)


def expected_tops(events: list[Event], every_s: float) -> list[tuple[Any, ...]]:
    last: dict[tuple[str, str], float] = {}
    rows = []
    for ev in events:
        if isinstance(ev, BookTop):
            key = (ev.exchange, ev.symbol)
            if key not in last or ev.ts - last[key] >= every_s:
                last[key] = ev.ts
                values = tuple(getattr(ev, f) for f in TOP_FIELDS)
                rows.append((ev.exchange, ev.symbol, utc(ev.ts), *values))
    return sorted(rows, key=repr)


def expected_candles(events: list[Event]) -> dict[tuple[Any, ...], list[tuple[Any, ...]]]:
    """The candle rows by key: a closed exchange candle, the bar of the trades, or both
    where a minute has both (the exchange's candle first: it is the one to be stored, in
    whatever batches the two rows come)."""
    aggs: dict[str, CandleAggregator] = {}  # one per recording, as the writers
    rows: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    found = [candle_row(ev) for ev in events if isinstance(ev, Candle) and ev.closed]
    for ev in events:
        if isinstance(ev, Trade):
            aggs.setdefault(ev.exchange, CandleAggregator()).add(ev)
    for agg in aggs.values():
        found += agg.take(include_open=True)
    for r in found:
        key = (r["exchange"], r["symbol"], r["interval"], r["open_time"])
        rows.setdefault(key, []).append(tuple(r[f] for f in CANDLE_FIELDS))
    return rows


async def stored(db: Database, *columns: Any) -> list[tuple[Any, ...]]:
    async with db.sessionmaker() as s:
        rows = (await s.execute(select(*columns))).all()
    return sorted((tuple(r) for r in rows), key=repr)


@pytest.mark.asyncio
@pytest.mark.parametrize("batch", [97, 5000])
async def test_replayed_recordings_store_the_reference_rows(
    db: Database, shared_data: Path, batch: int
) -> None:
    files = recordings(shared_data)
    events: list[Event] = []
    config = StorageConfig(trades=True, market_batch_size=batch)
    for name in EXCHANGES:  # one writer per recording: their times are years apart
        hub = Hub()
        hub.subscribe((Trade, FlaggedTrade, BookTop, Candle), events.append, name="test.events")
        writer = StoreWriter(hub=hub, db=db, config=config, clock=LiveClock())
        await writer.start()
        await hub.start()
        cfg = ExchangeConfig(name=name.lower(), source="replay", files=files[name])
        registry = InstrumentRegistry()  # the recording's units, as a daemon knows them
        with contextlib.suppress(RecordingError):  # BITFINEX: no instrument format
            registry.add(recording_specs(cfg))
        feed = ReplayFeed(
            cfg,
            feed_class=replay_feed_class(name),
            hub=hub,
            clock=LiveClock(),
            market=MarketInputs(registry=registry),
        )
        await feed.start()
        await feed.done.wait()
        await feed.stop()
        assert feed.error is None
        await writer.stop()
        await hub.stop()
        stats = writer.stats()
        assert (stats["dropped"], stats["late_trades"], writer.rejected) == (0, 0, 0)

    trades = expected_trades(events)
    assert any(t[-1] for t in trades)  # flagged trades (BITFINEX's history) ...
    assert any(t[-1] is None for t in trades)  # ... and the others
    t = TradeRow
    got_trades = await stored(
        db, t.exchange, t.symbol, t.ts, t.price, t.amount, t.side, t.trade_id, t.notional, t.flag
    )
    assert got_trades == trades

    tops = expected_tops(events, config.book_sample_s)
    assert len(tops) > 100
    b = BookTopRow
    assert await stored(db, b.exchange, b.symbol, b.ts, *(getattr(b, f) for f in TOP_FIELDS)) == (
        tops
    )

    candles = expected_candles(events)
    assert any(len(v) == 1 for v in candles.values())
    c = CandleRow
    got_candles = await stored(db, *(getattr(c, f) for f in CANDLE_FIELDS))
    assert sorted(r[:4] for r in got_candles) == sorted(candles)
    assert any(len(v) == 2 for v in candles.values())  # minutes with both rows
    for r in got_candles:
        assert r == candles[r[:4]][0], f"{r} {candles[r[:4]]}"

    if db.dialect == "sqlite":  # the stored text: SQLAlchemy's naive UTC format
        async with db.sessionmaker() as s:
            for table in ("trades", "book_tops"):
                texts = sorted((await s.execute(text(f"SELECT ts FROM {table}"))).scalars())
                rows = trades if table == "trades" else tops
                want = sorted(f"{r[2]:%Y-%m-%d %H:%M:%S.%f}" for r in rows)
                assert texts == want
