"""``crypto-monitor trades``: positions and statistics from the database, as tables or JSON;
bad arguments and an unreachable database give clear messages and exit codes."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from cryptomon.cli import main
from cryptomon.config import DatabaseConfig
from cryptomon.events import Fill, OrderIntent, OrderState, OrderUpdate, PositionUpdate
from cryptomon.store.db import Database
from cryptomon.store.repos import insert_fills, record_intent, upsert_orders, upsert_positions
from tests import stubs

D = Decimal


def _fill(tid: str, coid: str, side: str, amount: str, price: str, fee: str) -> Fill:
    return stubs.fill(
        tid,
        coid,
        ts=1_700_000_000.0 + len(tid),
        ts_recv=0.0,
        side=side,
        amount=D(amount),
        price=D(price),
        fee=D(fee),
        fee_currency="USDT",
    )


async def _populate(url: str) -> None:
    db = Database(DatabaseConfig(url=url))
    await db.start()
    intent = OrderIntent(
        exchange="binance",
        symbol="BTC-USDT",
        ts=1_700_000_000.0,
        ts_recv=0.0,
        client_order_id="cms-entry",
        side="buy",
        type="market",
        amount=D(2),
    )
    await record_intent(db, intent)
    async with db.sessionmaker() as s, s.begin():
        await upsert_orders(
            s,
            [
                OrderUpdate(
                    exchange="binance",
                    symbol="BTC-USDT",
                    ts=1_700_000_001.0,
                    ts_recv=0.0,
                    client_order_id="cms-entry",
                    state=OrderState.FILLED,
                    side="buy",
                    type="market",
                    amount=D(2),
                    filled=D(2),
                    avg_price=D(100),
                )
            ],
        )
        await insert_fills(
            s,
            [
                _fill("a", "cms-entry", "buy", "2", "100", "0.2"),
                _fill("bb", "cms-exit", "sell", "1", "110", "0.11"),  # a winning partial close
            ],
        )
        await upsert_positions(
            s,
            [
                PositionUpdate(
                    exchange="binance",
                    symbol="BTC-USDT",
                    ts=1_700_000_002.0,
                    ts_recv=0.0,
                    amount=D(1),
                    avg_price=D(100),
                    realized_pnl=D(10),
                    unrealized_pnl=D(5),
                    fees=D("0.31"),
                    mark_price=D(105),
                )
            ],
        )
    await db.stop()


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cm.db'}"
    asyncio.run(_populate(url))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"database": {"url": url}, "logging": {"level": "ERROR"}}))
    return path


def test_trades_prints_positions_stats_and_orders(
    config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The table shows the open position, the statistics and the recent order."""
    assert main(["trades", "--config", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert "Positions" in out
    assert "BTC-USDT" in out
    assert "Statistics (paper, USDT)" in out
    assert "cms-entry" in out
    assert "filled" in out


def test_trades_json_has_the_numbers(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json: cash and PnL recomputed from the fills; position from the positions table."""
    assert main(["trades", "--config", str(config_file), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [pos] = doc["positions"]
    assert pos["amount"] == "1"
    assert pos["mark_price"] == "105"
    stats = doc["stats"]
    # cash: 10000 - 200 - 0.2 + 110 - 0.11; equity adds 1 BTC at the 105 mark
    assert D(stats["cash"]) == D("9909.69")
    assert D(stats["equity"]) == D("10014.69")
    assert D(stats["realized_pnl"]) == D(10)
    assert D(stats["fees"]) == D("0.31")
    assert stats["trades"] == 0  # the position is still open: no closed round trip yet
    assert doc["orders"][0]["client_order_id"] == "cms-entry"


def test_trades_bad_arguments_and_unreachable_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--orders out of range exits 2; an unreachable database exits 1 with one clear line."""
    assert main(["trades", "--orders", "-1"]) == 2
    assert "--orders must be 0..10000" in capsys.readouterr().err
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "database": {
                    "url": "postgresql+psycopg://nobody@127.0.0.1:1/none",
                    "connect_timeout_s": 1,
                },
                "logging": {"level": "CRITICAL"},
            }
        )
    )
    assert main(["trades", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "crypto-monitor trades:" in err
    assert "unreachable" in err
    assert "Traceback" not in err


def test_trades_of_a_live_config_needs_no_venue_keys(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report reads the database only: a live config run from a shell without the
    venue's keys (they live in the service's environment or files) is reported, not
    refused as an invalid configuration; ``run`` still refuses it."""
    for name in ("API_KEY", "SECRET", "PASSWORD"):
        monkeypatch.delenv(f"CRYPTOMON_TRADING__LIVE__{name}", raising=False)
    doc = yaml.safe_load(config_file.read_text())
    doc["trading"] = {"mode": "live", "live": {"exchange": "binance"}}
    config_file.write_text(yaml.safe_dump(doc))
    assert main(["trades", "--config", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert "Statistics (live, USDT)" in out
    assert "cms-entry" in out
    assert main(["check-config", "--config", str(config_file)]) == 2
    assert "live.api_key" in capsys.readouterr().err
