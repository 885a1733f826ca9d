"""Store writer throughput (DESIGN.md section 6, target: ratio >= 0.5).

Measures, in the same run, on the same 200k trades:
- rows/s persisted into PostgreSQL through the real path: ``Hub.publish`` -> the writer's
  bounded market queue -> batches (1-minute candle aggregation included) -> ``COPY`` in one
  transaction per batch; timed from the first publish until ``StoreWriter.stop()`` returns
  (everything flushed and committed);
- the baseline (the ceiling): psycopg binary ``COPY`` (the format the writer uses, and the
  fastest bulk path psycopg offers) of the same rows, built from the same events, in one
  transaction, on a plain psycopg async connection; text ``COPY`` is printed for reference;
- the SQLite figure through the writer (for reference), also with the event loop kept busy
  meanwhile (Python work in ~50 us slices, as a saturated feed keeps it, and the daemon's thread
  switch interval): sqlite3 hands the GIL back and forth once per statement it steps, so this
  figure shows what the writer's statements per row cost next to a busy daemon;
- the same for closed exchange candles (``--candles`` of them, one market-minute each:
  upserts, ``INSERT ... ON CONFLICT DO UPDATE``), SQLite next to a busy loop.

A fresh PostgreSQL database is created (from $CRYPTOMON_TEST_DATABASE_URL or
postgresql+psycopg://postgres@127.0.0.1:5432/test) and dropped at the end.
Prints a final JSON line: value = writer rows/s on PostgreSQL, baseline = COPY rows/s.
Usage: python benchmarks/bench_store.py [--rows N] [--candles C] [--repeats R] [--batch-size B]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from cryptomon.app.lifecycle import GIL_SWITCH_INTERVAL_S
from cryptomon.clock import LiveClock
from cryptomon.commands.support import run_async
from cryptomon.config import DatabaseConfig, StorageConfig
from cryptomon.events import Candle, Trade
from cryptomon.hub import Hub
from cryptomon.store.bulk import COPY_TYPES
from cryptomon.store.db import Database
from cryptomon.store.repos import TRADE_COLUMNS, trade_tuple
from cryptomon.store.writer import StoreWriter

DEFAULT_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def make_trades(n: int) -> list[Trade]:
    rng = random.Random(7)
    symbols = [f"C{i}-USDT" for i in range(20)]
    t0 = 1_700_000_000.0
    return [
        Trade(
            exchange="binance",
            symbol=symbols[i % 20],
            ts=t0 + i * 0.01,
            ts_recv=t0 + i * 0.01,
            price=100.0 + rng.random(),
            amount=rng.random(),
            side="buy" if i & 1 else "sell",
            trade_id=str(i),
        )
        for i in range(n)
    ]


def make_candles(n: int) -> list[Candle]:
    """``n`` closed 1-minute exchange candles: 20 markets, consecutive minutes."""
    rng = random.Random(11)
    t0 = 1_700_000_040.0
    return [
        Candle(
            exchange="binance",
            symbol=f"C{i % 20}-USDT",
            ts=t0 + (i // 20 + 1) * 60,
            ts_recv=t0 + (i // 20 + 1) * 60,
            interval="1m",
            start=t0 + (i // 20) * 60,
            end=t0 + (i // 20 + 1) * 60,
            open=100.0,
            high=101.0,
            low=99.0,
            close=100.0 + rng.random(),
            volume=rng.random() * 10,
            trades=i % 50,
        )
        for i in range(n)
    ]


async def busy_loop(stop: asyncio.Event) -> None:
    """Python work on the event loop in ~50 us slices until ``stop`` is set."""
    while not stop.is_set():
        sum(range(2000))
        await asyncio.sleep(0)


async def through_writer(
    url: str,
    trades: list[Trade] | list[Candle],
    batch_size: int,
    *,
    busy: bool = False,
    table: str = "trades",
) -> float:
    """rows/s from first publish until the writer has committed everything (``table``: where
    each event becomes one row); ``busy``: with :func:`busy_loop` running meanwhile, at the
    daemon's thread switch interval."""
    db = Database(DatabaseConfig(url=url))
    await db.start()
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("DELETE FROM trades")
        await conn.exec_driver_sql("DELETE FROM candles")
    hub = Hub()
    config = StorageConfig(
        trades=True,
        market_batch_size=batch_size,
        batch_max_age_s=0.5,
        market_buffer=len(trades) + 1,
    )
    writer = StoreWriter(hub=hub, db=db, config=config, clock=LiveClock())
    await writer.start()
    await hub.start()
    stop = asyncio.Event()
    switch = sys.getswitchinterval()
    if busy:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        busy_task = asyncio.create_task(busy_loop(stop))
    t0 = time.perf_counter()
    publish = hub.publish
    for i, ev in enumerate(trades):
        publish(ev)
        if i % 5000 == 4999:
            await asyncio.sleep(0)  # a feed yields to the loop between network reads
    await writer.stop()
    elapsed = time.perf_counter() - t0
    if busy:
        stop.set()
        await busy_task
        sys.setswitchinterval(switch)
    await hub.stop()
    stats = writer.stats()
    async with db.engine.connect() as conn:
        stored = (await conn.exec_driver_sql(f"SELECT count(*) FROM {table}")).scalar_one()
    await db.stop()
    if stored != len(trades) or stats["dropped"]:
        raise SystemExit(f"writer stored {stored} of {len(trades)} (dropped {stats['dropped']})")
    return len(trades) / elapsed


async def plain_copy(url: str, trades: list[Trade], *, binary: bool = True) -> float:
    """rows/s of psycopg COPY of the same rows in one transaction."""
    async with await psycopg.AsyncConnection.connect(plain(url)) as conn:
        await conn.execute("DELETE FROM trades")
        await conn.commit()
        cols = ", ".join(TRADE_COLUMNS)
        t0 = time.perf_counter()
        fmt = " (FORMAT BINARY)" if binary else ""
        async with conn.cursor() as cur, cur.copy(f"COPY trades ({cols}) FROM STDIN{fmt}") as copy:
            if binary:
                copy.set_types(list(COPY_TYPES["trades"]))
            for ev in trades:
                await copy.write_row(trade_tuple(ev))
        await conn.commit()
        elapsed = time.perf_counter() - t0
        cur2 = await conn.execute("SELECT count(*) FROM trades")
        row = await cur2.fetchone()
        if row is None or row[0] != len(trades):
            raise SystemExit(f"COPY stored {row} of {len(trades)} rows")
    return len(trades) / elapsed


async def main(args: argparse.Namespace) -> int:
    admin = os.environ.get("CRYPTOMON_TEST_DATABASE_URL", DEFAULT_ADMIN)
    name = f"bench_store_{uuid.uuid4().hex[:8]}"
    base = admin.rpartition("/")[0]
    url = f"{base}/{name}"
    with psycopg.connect(plain(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    trades = make_trades(args.rows)
    candles = make_candles(args.candles)
    schema = Database(DatabaseConfig(url=url))  # auto_migrate creates the schema
    await schema.start()
    await schema.stop()
    writer_pg: list[float] = []
    copy_pg: list[float] = []
    copy_text: list[float] = []
    writer_sqlite: list[float] = []
    busy_sqlite: list[float] = []
    busy_candles: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sqlite_url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            for r in range(args.repeats):
                copy_pg.append(await plain_copy(url, trades))
                copy_text.append(await plain_copy(url, trades, binary=False))
                writer_pg.append(await through_writer(url, trades, args.batch_size))
                writer_sqlite.append(await through_writer(sqlite_url, trades, args.batch_size))
                busy_sqlite.append(
                    await through_writer(sqlite_url, trades, args.batch_size, busy=True)
                )
                busy_candles.append(
                    await through_writer(
                        sqlite_url, candles, args.batch_size, busy=True, table="candles"
                    )
                )
                print(
                    f"run {r + 1}: writer->PostgreSQL {writer_pg[-1]:,.0f} rows/s, "
                    f"COPY {copy_pg[-1]:,.0f} rows/s (text {copy_text[-1]:,.0f}), "
                    f"writer->SQLite {writer_sqlite[-1]:,.0f} rows/s "
                    f"({busy_sqlite[-1]:,.0f} next to a busy loop; "
                    f"candles {busy_candles[-1]:,.0f})"
                )
    finally:
        with psycopg.connect(plain(admin), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    value = statistics.median(writer_pg)
    baseline = statistics.median(copy_pg)
    # each run pairs the writer with COPY under the same machine load: the median of the
    # per-run ratios is steadier than the ratio of the medians on a shared machine
    ratio = statistics.median(w / c for w, c in zip(writer_pg, copy_pg, strict=True))
    sqlite_rate = statistics.median(writer_sqlite)
    print(f"median over {args.repeats} runs of {args.rows:,} trades:")
    print(f"  writer -> PostgreSQL: {value:,.0f} rows/s")
    print(f"  psycopg COPY binary:  {baseline:,.0f} rows/s (baseline)")
    print(f"  psycopg COPY text:    {statistics.median(copy_text):,.0f} rows/s (reference)")
    print(f"  writer -> SQLite:     {sqlite_rate:,.0f} rows/s")
    busy_rate = statistics.median(busy_sqlite)
    print(f"  writer -> SQLite next to a busy loop: {busy_rate:,.0f} rows/s")
    candle_rate = statistics.median(busy_candles)
    print(
        f"  writer -> SQLite next to a busy loop, {args.candles:,} exchange candles: "
        f"{candle_rate:,.0f} rows/s"
    )
    result = {
        "bench": "store",
        "value": round(value),
        "unit": "rows/s",
        "baseline": round(baseline),
        "ratio": round(ratio, 3),
        "target": 0.5,
        "sqlite": round(sqlite_rate),
        "sqlite_busy_loop": round(busy_rate),
        "sqlite_busy_loop_candles": round(candle_rate),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--candles", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=StorageConfig().market_batch_size,
        help="market_batch_size",
    )
    raise SystemExit(run_async(main(parser.parse_args())))
