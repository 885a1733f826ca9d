"""SQLite's stored time text straight to epoch seconds: the same float as SQLAlchemy's
reading (an aware UTC datetime) followed by ``.timestamp()``."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy.dialects.sqlite import pysqlite

from cryptomon.store.anomaly_json import sqlite_epoch
from cryptomon.store.types import UTCDateTime


def test_sqlite_time_text_gives_the_timestamp_of_the_datetime_read() -> None:
    """Random instants from 1970 to 2200 with microseconds, stored and read back through
    the column type on SQLite: ``sqlite_epoch`` of the text == the read datetime's
    ``timestamp()``, bit for bit."""
    dialect = pysqlite.dialect()
    col = UTCDateTime()
    store = col.dialect_impl(dialect).bind_processor(dialect)
    read = col.dialect_impl(dialect).result_processor(dialect, None)
    assert store is not None
    assert read is not None
    rnd = random.Random(16)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for _ in range(20_000):
        instant = epoch + timedelta(microseconds=rnd.randrange(0, 7_258_118_400 * 10**6))
        text = store(instant)
        assert isinstance(text, str)
        assert sqlite_epoch(text) == read(text).timestamp()
    for text in ("2023-11-14 22:13:20", "2023-11-14 22:13:20.000001", "1970-01-01 00:00:00"):
        assert sqlite_epoch(text) == read(text).timestamp()
