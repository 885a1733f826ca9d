"""Contract position columns (revision 0008): side, contracts, leverage, margins,
liquidation estimate and funding round-trip; a spot position leaves them empty."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from cryptomon.events import PositionUpdate
from cryptomon.store import repos
from cryptomon.store.db import Database
from cryptomon.store.models import PositionRow
from tests.stubs import T0

D = Decimal


def update(symbol: str, **contract: object) -> PositionUpdate:
    return PositionUpdate(
        exchange="binance_futures",
        symbol=symbol,
        ts=T0,
        ts_recv=T0,
        amount=D("-0.1"),
        avg_price=D(20000),
        realized_pnl=D(0),
        unrealized_pnl=D(5),
        fees=D(2),
        mark_price=D(19950),
        **contract,  # type: ignore[arg-type]
    )


@pytest.mark.asyncio
async def test_contract_fields_round_trip_and_spot_leaves_them_null(db: Database) -> None:
    """A short perpetual stores its contract fields; a spot row has them NULL."""
    perp = update(
        "BTC-USDT-PERP",
        side="short",
        settle="USDT",
        contracts=D("0.1"),
        base_amount=D("0.1"),
        leverage=D(5),
        margin_mode="isolated",
        initial_margin=D(400),
        maintenance_margin=D("9.975"),
        liquidation_price=D(23900),
        funding=D("0.2"),
    )
    async with db.sessionmaker() as s, s.begin():
        await repos.upsert_positions(s, [perp, update("BTC-USDT")])
    async with db.sessionmaker() as s:
        rows = {r.symbol: r for r in (await s.execute(select(PositionRow))).scalars()}
    row = rows["BTC-USDT-PERP"]
    assert row.side == "short"
    assert row.leverage == D(5)
    assert row.margin_mode == "isolated"
    assert row.liquidation_price == D(23900)
    assert row.funding == D("0.2")
    assert row.initial_margin == D(400)
    spot = rows["BTC-USDT"]
    assert spot.side is None
    assert spot.leverage is None
    assert spot.funding is None
