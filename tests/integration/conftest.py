"""Integration fixtures: a started, migrated Database on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from cryptomon.config import DatabaseConfig
from cryptomon.store.db import Database


@pytest_asyncio.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated database (runs once on SQLite, once on PostgreSQL)."""
    database = Database(DatabaseConfig(url=db_url))
    await database.start()
    try:
        yield database
    finally:
        await database.stop()
