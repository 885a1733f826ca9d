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


@pytest.mark.asyncio
async def test_trades_stats_include_the_stored_funding_payments(tmp_path: Path) -> None:
    """A 0.5 BTC USDT-perp long 20000 -> 21000 (no fees) that paid 1 USDT of funding while
    open: the report's realized and net PnL are 500 - 1 = 499 and the equity 10499, as the
    daemon booked them. Before, the report replayed the fills only: 500 and 10500."""
    from cryptomon.events import Fill
    from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
    from cryptomon.store.instruments import InstrumentRepository
    from cryptomon.store.journal import StoreJournal
    from cryptomon.trading.brokers.base import FundingPayment
    from cryptomon.trading.journal import StoredFunding

    ex, sym = "binance_futures", "BTC-USDT-PERP"
    spec = InstrumentSpec(
        exchange=ex,
        symbol=sym,
        kind=InstrumentKind.PERPETUAL,
        base="BTC",
        quote="USDT",
        settle="USDT",
    )

    def fill(n: int, side: str, price: str) -> Fill:
        return Fill(
            exchange=ex,
            symbol=sym,
            ts=1.7e9 + n * 3600,
            ts_recv=1.7e9 + n * 3600,
            trade_id=f"t{n}",
            client_order_id=f"c{n}",
            side=side,  # type: ignore[arg-type]
            amount=D("0.5"),
            price=D(price),
            fee=D(0),
            fee_currency="USDT",
        )

    db = Database(DatabaseConfig(url=f"sqlite+aiosqlite:///{tmp_path / 't.db'}"))
    await db.start()
    try:
        await InstrumentRepository(db.sessionmaker).save([spec])
        async with db.sessionmaker() as session, session.begin():
            await repos.insert_fills(session, [fill(0, "buy", "20000"), fill(10, "sell", "21000")])
        payment = FundingPayment(
            payment_id="f1",
            exchange=ex,
            symbol=sym,
            ts=1.7e9 + 5 * 3600,
            amount=D(-1),
            currency="USDT",
            rate=D("0.0001"),
        )
        await StoreJournal(db=db).record_funding(StoredFunding(payment, D(20000)))
        report = await build_report(db, load_settings().trading, orders=0)
    finally:
        await db.stop()
    stats = report["stats"]
    assert stats["trades"] == 1
    assert stats["realized_pnl"] == "499"
    assert stats["net_pnl"] == "499"
    assert stats["equity"] == "10499"


def test_trades_text_names_the_settle_currency_of_a_coin_margined_position() -> None:
    """The text table of an inverse position says its PnL, margin and funding are in BTC (the
    JSON has ``settle``); before, "Unrealized 0.01" stood beside USD statistics unlabelled."""
    row = {
        "exchange": "binance_delivery",
        "symbol": "BTC-USD-PERP",
        "amount": "10",
        "avg_price": "20000",
        "mark_price": "25000",
        "unrealized_pnl": "0.01",
        "realized_pnl": "0",
        "fees": "0",
        "side": "long",
        "settle": "BTC",
        "contracts": "10",
        "leverage": "5",
        "margin_mode": "isolated",
        "initial_margin": "0.01",
        "liquidation_price": "16722.4",
        "funding": "0",
    }
    report = {"positions": [row], "stats": {"quote_currency": "USD"}, "orders": []}
    header, _rule, line = render(report).splitlines()[1:4]
    assert "Settle" in header
    at = header.index("Settle")
    assert line[at : at + 4] == "BTC "
