"""Column types behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from cryptomon.store import repos
from cryptomon.store.db import Database
from cryptomon.store.models import EquitySnapshotRow
from cryptomon.store.types import canonical


@pytest.mark.asyncio
async def test_money_and_time_round_trip_exactly(db: Database) -> None:
    """18-decimal amounts come back exact; timestamps come back tz-aware UTC to the microsecond."""
    amount = Decimal("123456789012345678.123456789012345678")
    ts = 1_700_000_000.123456
    async with db.sessionmaker() as s, s.begin():
        await repos.insert_equity_snapshot(
            s, ts=ts, equity=amount, cash=Decimal("0.000000000000000001"), exposure=Decimal("-5")
        )
    async with db.sessionmaker() as s:
        row = (await s.execute(select(EquitySnapshotRow))).scalar_one()
    assert row.equity == amount
    assert row.cash == Decimal("1E-18")
    assert row.exposure == Decimal(-5)
    assert str(row.exposure) == "-5"  # no padding zeros on either dialect
    assert row.ts.tzinfo is not None
    assert row.ts.utcoffset() == timedelta(0)
    assert row.ts == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)


@pytest.mark.asyncio
async def test_time_filters_compare_instants_not_local_text(db: Database) -> None:
    """A non-UTC aware datetime bound selects by instant (converted to UTC on both dialects)."""
    async with db.sessionmaker() as s, s.begin():
        await repos.insert_equity_snapshot(
            s, ts=1_700_000_000.0, equity=Decimal(1), cash=Decimal(1)
        )
    plus2 = timezone(timedelta(hours=2))
    just_after = datetime(2023, 11, 15, 0, 13, 21, tzinfo=plus2)  # 22:13:21 UTC
    async with db.sessionmaker() as s:
        before = (
            await s.execute(select(EquitySnapshotRow).where(EquitySnapshotRow.ts < just_after))
        ).all()
    assert len(before) == 1


def test_canonical_decimal_drops_padding_without_exponent() -> None:
    """NUMERIC padding is removed; integers keep plain notation."""
    assert str(canonical(Decimal("65000.100000000000000000"))) == "65000.1"
    assert str(canonical(Decimal("100.000000000000000000"))) == "100"
    assert str(canonical(Decimal("0E-18"))) == "0"
