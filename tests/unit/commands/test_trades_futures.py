"""``crypto-monitor trades`` shows side, leverage, margin, liquidation price and funding of
a contract position (from the positions table)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from cryptomon.commands.trades import build_report, render
from cryptomon.config import DatabaseConfig, load_settings
from cryptomon.events import PositionUpdate
from cryptomon.store import repos
from cryptomon.store.db import Database

D = Decimal


@pytest.mark.asyncio
async def test_trades_report_shows_contract_fields(tmp_path: Path) -> None:
    """A 5x short perpetual is listed with its side, leverage, margin, liquidation and funding."""
    db = Database(DatabaseConfig(url=f"sqlite+aiosqlite:///{tmp_path / 't.db'}"))
    await db.start()
    try:
        update = PositionUpdate(
            exchange="binance_futures",
            symbol="BTC-USDT-PERP",
            ts=1.7e9,
            ts_recv=1.7e9,
            amount=D("-0.1"),
            avg_price=D(20000),
            realized_pnl=D(0),
            unrealized_pnl=D(5),
            fees=D(2),
            mark_price=D(19950),
            side="short",
            settle="USDT",
            contracts=D("0.1"),
            leverage=D(5),
            margin_mode="isolated",
            initial_margin=D(400),
            liquidation_price=D(23900),
            funding=D("0.2"),
        )
        async with db.sessionmaker() as session, session.begin():
            await repos.upsert_positions(session, [update])
        report = await build_report(db, load_settings().trading, orders=0)
    finally:
        await db.stop()
    (row,) = report["positions"]
    assert row["side"] == "short"
    assert row["leverage"] == "5"
    assert row["liquidation_price"] == "23900"
    assert row["funding"] == "0.2"
    text = render(report)
    assert "Liq price" in text
    assert "23900" in text
    assert "short" in text
