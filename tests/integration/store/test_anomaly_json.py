"""The anomaly list's JSON page made from the driver's rows (``Queries.anomaly_page_json``)
is byte for byte orjson's serialization of ``Queries.anomalies``' page, on SQLite and
PostgreSQL; PostgreSQL reads beyond ``pool_size`` wait instead of connecting."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from sqlalchemy import event

from cryptomon.events import Severity
from cryptomon.store.db import Database
from cryptomon.store.queries import Queries, encode_cursor
from cryptomon.store.repos import insert_anomalies
from cryptomon.store.types import utc
from tests import stubs

T0 = 1_700_000_000.0
SEVERITIES = list(Severity)


def varied(i: int) -> Any:
    """The i-th of 40 anomalies: markets, kinds, severities and the optional columns vary;
    some share a detection time (the cursor's id tie-break)."""
    return stubs.anomaly(
        id=f"{i:032x}",
        exchange=("binance", "okx", "bybit")[i % 3],
        symbol=("BTC-USDT", "ETH-USDT")[i % 2],
        kind=("volume", "price", "whale", "book")[i % 4],
        severity=SEVERITIES[(i * 7) % 4],
        value=i * 1.1,
        ts=T0 + i + 0.123456,
        ts_detected=T0 + i // 2 + 0.000321,
        z_score=None if i % 5 == 0 else 3.25,
        price_change_pct=-0.5 if i % 3 == 0 else None,
        window_mean=None if i % 7 == 0 else 1.5,
        reasons=tuple(f"reason {k}" for k in range(i % 3)),
    )


FILTERS: list[dict[str, Any]] = [
    {},
    {"exchange": "okx"},
    {"exchange": "okx", "symbol": "BTC-USDT"},
    {"symbol": "ETH-USDT"},
    {"kind": "whale"},
    {"min_severity": "high"},
    {"kind": "volume", "min_severity": "medium"},
    {"exchange": "bybit", "symbol": "BTC-USDT", "kind": "book"},
    {"since": T0 + 5},
    {"since": T0 + 3, "until": T0 + 12.5},
    {"cursor": encode_cursor(utc(T0 + 10.000321), f"{21:032x}")},
    {"min_severity": "low", "cursor": encode_cursor(utc(T0 + 15.000321), f"{30:032x}")},
]


@pytest.mark.asyncio
async def test_json_page_is_the_serialized_page_byte_for_byte(db: Database) -> None:
    """Every filter shape, with and without a next page: the same bytes as orjson's dump of
    ``anomalies()``' rows and cursor (times as epoch floats, NULLs, JSON lists)."""
    async with db.sessionmaker() as session, session.begin():
        await insert_anomalies(session, [varied(i) for i in range(40)])
    queries = Queries(db=db)
    pages = 0
    for filters in FILTERS:
        for limit in (1, 3, 50):
            rows, cursor = await queries.anomalies(limit=limit, **filters)
            expected = orjson.dumps({"items": rows, "next_cursor": cursor})
            assert await queries.anomaly_page_json(limit=limit, **filters) == expected
            pages += cursor is not None
    assert pages > len(FILTERS)  # the comparison covered pages with a next cursor


@pytest.mark.asyncio
async def test_json_page_refuses_bad_arguments_like_the_rows(db: Database) -> None:
    """A malformed cursor, severity or range is the same ValueError."""
    queries = Queries(db=db)
    for bad in ({"cursor": "garbage!"}, {"min_severity": "worst"}, {"since": 5, "until": 1}):
        with pytest.raises(ValueError) as rows_error:
            await queries.anomalies(**bad)
        with pytest.raises(ValueError) as json_error:
            await queries.anomaly_page_json(**bad)
        assert str(json_error.value) == str(rows_error.value)


@pytest.mark.asyncio
async def test_postgresql_reads_beyond_the_pool_wait_instead_of_connecting(pg_url: str) -> None:
    """40 concurrent reads with ``pool_size: 2`` all answer over the pool's 2 connections:
    none opens (and then closes) an overflow connection."""
    from cryptomon.config import DatabaseConfig

    db = Database(DatabaseConfig(url=pg_url, pool_size=2, max_overflow=10))
    await db.start()
    try:
        async with db.sessionmaker() as session, session.begin():
            await insert_anomalies(session, [varied(i) for i in range(10)])
        queries = Queries(db=db)
        await asyncio.gather(*(queries.anomaly_page_json(limit=5) for _ in range(2)))
        connects: list[object] = []
        event.listen(db.engine.sync_engine.pool, "connect", lambda *_: connects.append(1))
        pages = await asyncio.gather(
            *(queries.anomaly_page_json(limit=5) for _ in range(20)),
            *(queries.anomalies(limit=5) for _ in range(20)),
        )
        assert all(orjson.loads(p)["items"] for p in pages[:20])  # type: ignore[arg-type]
        assert all(rows for rows, _ in pages[20:])  # type: ignore[misc]
        assert connects == []
    finally:
        await db.stop()
