"""Integration fixtures: a started, migrated Database on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """schemathesis names each API operation's test item ``test[GET /health]`` but gives them
    all the function's node id; pytest-xdist hands items out by node id, so under it one
    operation ran and the other 36 silently did not. Each item's node id takes the
    operation as its parameter, as a parametrized test's does."""
    for item in items:
        label = getattr(item, "operation_label", None)
        if not label or item.nodeid.endswith("]"):
            continue
        ident = getattr(item, "_id", None)  # pytest 9: a structured node id
        if ident is not None and hasattr(ident, "with_params"):
            item._id = ident.with_params(label)
        else:  # pytest 8: a string
            item._nodeid = f"{item.nodeid}[{label}]"
