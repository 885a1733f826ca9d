"""A stored item's times (epoch seconds of the datetime written, aware or naive UTC) are the
same floats as SQLAlchemy's reading of SQLite's stored text followed by ``.timestamp()``."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy.dialects.sqlite import pysqlite

from cryptomon.store.types import UTCDateTime, epoch


def test_the_item_time_is_the_timestamp_of_the_datetime_read() -> None:
    """Random instants from 1970 to 2200 with microseconds, stored and read back through
    the column type on SQLite: ``epoch`` the instant written (aware, or naive as the
    0011 backfill reads it) == the read datetime's ``timestamp()``, bit for bit."""
    dialect = pysqlite.dialect()
    col = UTCDateTime()
    store = col.dialect_impl(dialect).bind_processor(dialect)
    read = col.dialect_impl(dialect).result_processor(dialect, None)
    assert store is not None
    assert read is not None
    rnd = random.Random(16)
    start = datetime(1970, 1, 1, tzinfo=UTC)
    for _ in range(20_000):
        instant = start + timedelta(microseconds=rnd.randrange(0, 7_258_118_400 * 10**6))
        text = store(instant)
        assert isinstance(text, str)
        assert epoch(instant) == read(text).timestamp()
        assert epoch(instant.replace(tzinfo=None)) == read(text).timestamp()
    for text in ("2023-11-14 22:13:20", "2023-11-14 22:13:20.000001", "1970-01-01 00:00:00"):
        assert epoch(datetime.fromisoformat(text)) == read(text).timestamp()
