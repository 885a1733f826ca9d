"""The instrument specs cache: save and load :class:`InstrumentSpec` rows (table
``instruments``), so a restart and a replay know every market's units without the venue."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
from cryptomon.store.bulk import dialect_insert
from cryptomon.store.models import InstrumentRow
from cryptomon.store.types import epoch, utc

if TYPE_CHECKING:
    from cryptomon.store.db import Database

log = structlog.get_logger()

_CHUNK = 500  # rows per statement: far below both dialects' bound-parameter limits
_FIELDS = (
    "kind",
    "base",
    "quote",
    "settle",
    "contract_size",
    "inverse",
    "tick_size",
    "lot_size",
    "min_qty",
    "min_notional",
    "expiry",
    "updated_at",
)


def spec_row(spec: InstrumentSpec, updated_at: datetime) -> dict[str, Any]:
    """The ``instruments`` row of a spec."""
    return {
        "exchange": spec.exchange,
        "symbol": spec.symbol,
        "kind": spec.kind.value,
        "base": spec.base,
        "quote": spec.quote,
        "settle": spec.settle,
        "contract_size": spec.contract_size,
        "inverse": spec.inverse,
        "tick_size": spec.tick_size,
        "lot_size": spec.lot_size,
        "min_qty": spec.min_qty,
        "min_notional": spec.min_notional,
        "expiry": utc(spec.expiry) if spec.expiry is not None else None,
        "updated_at": updated_at,
    }


def row_spec(row: InstrumentRow) -> InstrumentSpec:
    """The spec of an ``instruments`` row."""
    return InstrumentSpec(
        exchange=row.exchange,
        symbol=row.symbol,
        kind=InstrumentKind(row.kind),
        base=row.base,
        quote=row.quote,
        settle=row.settle,
        contract_size=row.contract_size,
        inverse=row.inverse,
        tick_size=row.tick_size,
        lot_size=row.lot_size,
        min_qty=row.min_qty,
        min_notional=row.min_notional,
        expiry=epoch(row.expiry),
    )


class InstrumentRepository:
    """Upserts and reads cached specs; satisfies the registry's ``InstrumentCache``."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def save(self, specs: Sequence[InstrumentSpec]) -> int:
        """Insert or replace the specs (keyed by exchange and symbol); returns the count."""
        now = datetime.now(UTC)
        rows = [spec_row(spec, now) for spec in specs]
        async with self._sessionmaker() as session, session.begin():
            for start in range(0, len(rows), _CHUNK):
                stmt = dialect_insert(session, InstrumentRow.__table__)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["exchange", "symbol"],
                    set_={name: stmt.excluded[name] for name in _FIELDS},
                )
                await session.execute(stmt, rows[start : start + _CHUNK])
        return len(rows)

    async def load(self, exchange: str) -> list[InstrumentSpec]:
        """Every cached spec of ``exchange``."""
        query = select(InstrumentRow).where(InstrumentRow.exchange == exchange)
        async with self._sessionmaker() as session:
            rows = (await session.scalars(query)).all()
        return [row_spec(row) for row in rows]


class DatabaseInstruments:
    """The cache over a :class:`~cryptomon.store.db.Database` that is opened later (its
    sessionmaker exists once it started); a database failure leaves the cache empty for that
    call (logged), so specs still come from the venue."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(self, specs: Sequence[InstrumentSpec]) -> int:
        try:
            return await InstrumentRepository(self._db.sessionmaker).save(specs)
        except Exception as exc:  # the cache is an optimisation: never fatal
            log.warning("instrument_cache_save_failed", error=str(exc)[:300])
            return 0

    async def load(self, exchange: str) -> list[InstrumentSpec]:
        try:
            return await InstrumentRepository(self._db.sessionmaker).load(exchange)
        except Exception as exc:  # the cache is an optimisation: never fatal
            log.warning("instrument_cache_load_failed", exchange=exchange, error=str(exc)[:300])
            return []
