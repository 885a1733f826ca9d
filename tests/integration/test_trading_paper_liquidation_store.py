"""A paper liquidation is journaled like a venue's order and survives a restart: a 5x long on
the real store (SQLite file and PostgreSQL) is liquidated when the mark falls through its
estimate; the venue's order is stored with origin ``liquidation``, state ``filled`` and its
reason, its fill beside it; a new engine on the same database starts flat, with the cash the
broker holds, and reconciles clean (no position mismatch)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from cryptomon.clock import ManualClock
from cryptomon.store.journal import StoreJournal
from cryptomon.store.models import OrderRow
from cryptomon.trading.risk import RiskState
from tests.integration.test_trading_futures_paper_restart import daemon
from tests.unit.trading.test_futures_paper import EX, PERP
from tests.unit.trading.test_paper_liquidation import mark
from tests.util import wait_until

D = Decimal


@pytest.mark.asyncio
async def test_a_paper_liquidation_is_stored_and_survives_a_restart(db_url: str) -> None:
    clock = ManualClock(start=1_700_000_000.0)
    first = await daemon(db_url, clock)
    await first.engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="buy", amount="0.5"
    )
    mark(first.hub, clock, 20000.0)
    mark(first.hub, clock, 15000.0)
    pos = first.engine.portfolio.positions[(EX, PERP)]
    await wait_until(lambda: pos.amount == 0, timeout=5, message="liquidated")
    clock.advance(1)  # the store writer flushes its batches on the clock
    journal = StoreJournal(db=first.db)

    async def stored() -> list[OrderRow]:
        async with first.db.sessionmaker() as session:
            rows = await session.execute(select(OrderRow).where(OrderRow.origin == "liquidation"))
            return [r for r in rows.scalars() if r.state == "filled"]

    await wait_until(stored, timeout=10, message="liquidation order stored")
    await wait_until(lambda: _fills(journal, 2), timeout=10, message="fills stored")
    (row,) = await stored()
    assert row.reason.startswith("liquidation: mark 15000")
    assert row.filled == D("0.5")
    assert row.avg_price == D("20000.5") * D("0.805")
    cash = first.engine.portfolio.cash
    balance = D(10_000) - D("0.5") * D("20000.5") * (D("0.001") + D("0.2"))
    assert cash == balance
    await first.stop()

    second = await daemon(db_url, clock)
    try:
        engine = second.engine
        assert engine.portfolio.open_positions() == []
        assert engine.portfolio.cash == balance
        assert (await second.broker.fetch_balances())["USDT"] == balance
        assert await second.broker.fetch_positions() == {}
        assert engine.risk_state == RiskState.ACTIVE
    finally:
        await second.stop()


async def _fills(journal: StoreJournal, n: int) -> bool:
    return len(await journal.fills()) == n
