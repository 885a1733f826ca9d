"""The ``database`` and ``storage`` sections: where data goes and how the writer batches."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from cryptomon.config.base import Section


class DatabaseConfig(Section):
    """Where everything is stored (``cryptomon.store``)."""

    url: str = Field(
        default="sqlite+aiosqlite:///./cryptomon.db",
        description="sqlite+aiosqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DB",
    )
    auto_migrate: bool = Field(default=True, description="run `db upgrade head` at start")
    pool_size: int = Field(
        default=5,
        ge=1,
        description="PostgreSQL connections kept open (the API reads have as many again, "
        "one per reader thread)",
    )
    max_overflow: int = Field(default=5, ge=0, description="extra connections under load")
    pool_timeout_s: float = Field(default=10.0, gt=0, description="wait for a free connection")
    connect_timeout_s: float = Field(default=10.0, gt=0, description="connect attempt limit")
    statement_timeout_s: float = Field(
        default=10.0, gt=0, description="PostgreSQL: a write or read unanswered this long fails"
    )
    sqlite_busy_timeout_s: float = Field(
        default=10.0, gt=0, description="SQLite: wait this long for a lock held by another process"
    )
    read_pool_size: int = Field(
        default=2,
        ge=1,
        le=64,
        description="SQLite: read-only connections for the API's queries, beside the writer's",
    )
    echo: bool = Field(default=False, description="log every SQL statement")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^(sqlite\+aiosqlite|postgresql\+psycopg)://", v):
            raise ValueError(
                "sqlite+aiosqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB"
            )
        return v


class StorageConfig(Section):
    """What the store writer persists, how it batches, how long market data is kept."""

    trades: bool = Field(default=False, description="persist every public trade (heavy)")
    book_sample_s: float = Field(default=1.0, gt=0, description="book top sampling period")
    retention_days: float = Field(default=30, gt=0, description="market data kept this long")
    batch_size: int = Field(default=1000, ge=1, description="rows per write transaction")
    batch_max_age_s: float = Field(default=1.0, gt=0, description="flush a partial batch after")
    market_batch_size: int = Field(
        default=5000, ge=1, description="market rows (trades, book tops) per write transaction"
    )
    market_buffer: int = Field(default=100_000, ge=1, description="market rows kept in memory")
    candle_buffer: int = Field(
        default=10_000,
        ge=1,
        description="closed 1-minute candles kept while the database is away",
    )
    retry_max_s: float = Field(default=30.0, gt=0, description="cap of the write retry backoff")
    retention_interval_s: float = Field(
        default=3600.0, gt=0, description="how often old market data is deleted"
    )
    retention_batch: int = Field(default=10_000, ge=1, description="rows deleted per statement")
