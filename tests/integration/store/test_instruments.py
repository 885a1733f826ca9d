"""The instruments cache: specs saved and loaded exactly, upserted, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
from cryptomon.market.venues import specs_from_recording
from cryptomon.store.db import Database
from cryptomon.store.instruments import InstrumentRepository


@pytest.mark.asyncio
async def test_recorded_specs_round_trip_exactly(db: Database, shared_data: Path) -> None:
    """Every OKX spec of the recording (spot, swaps, dated futures) loads back equal."""
    specs = specs_from_recording(shared_data / "OKX.0")
    repo = InstrumentRepository(db.sessionmaker)
    assert await repo.save(specs) == len(specs)
    loaded = {spec.symbol: spec for spec in await repo.load("okx")}
    assert loaded == {spec.symbol: spec for spec in specs}
    assert loaded["BTC-USD-22K27"].expiry == 1653638400.0  # 2022-05-27 08:00 UTC
    assert await repo.load("binance") == []


@pytest.mark.asyncio
async def test_save_replaces_a_changed_spec(db: Database) -> None:
    """Saving a market again replaces its row (a venue changed the tick), no duplicate."""
    spec = InstrumentSpec(
        exchange="gateio_futures",
        symbol="BTC-USDT-PERP",
        kind=InstrumentKind.PERPETUAL,
        base="BTC",
        quote="USDT",
        settle="USDT",
        contract_size=Decimal("0.0001"),
        tick_size=Decimal("0.1"),
        lot_size=Decimal(1),
        min_qty=Decimal(1),
    )
    repo = InstrumentRepository(db.sessionmaker)
    await repo.save([spec])
    changed = replace(spec, tick_size=Decimal("0.5"), min_notional=Decimal("1.5"))
    await repo.save([changed])
    assert await repo.load("gateio_futures") == [changed]
