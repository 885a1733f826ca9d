"""Feeds inside the daemon: a replay feed from config through build_app; startup errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
import yaml

from cryptomon.app import build_app
from cryptomon.cli import main
from cryptomon.clock import LiveClock
from cryptomon.config import ExchangeConfig, load_settings
from cryptomon.errors import ConfigError
from cryptomon.feeds.manager import FeedManager, build_sources
from cryptomon.hub import Hub
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """In-process CLI runs configure logging onto pytest's captured streams: undo that after."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


def binance_files(shared_data: Path) -> list[str]:
    return sorted(str(p) for p in shared_data.glob("BINANCE.*"))


@pytest.mark.asyncio
async def test_replay_source_in_config_drives_the_daemon(shared_data: Path, tmp_path: Path) -> None:
    """source: replay in config: build_app wires FeedManager and MarketState; data flows."""
    files = binance_files(shared_data)
    settings = load_settings(
        data={
            "exchanges": [{"name": "binance", "source": "replay", "files": files}],
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"},
            "api": {"enabled": False},
        }
    )
    app = build_app(settings)
    feeds, market = app.services.feeds, app.services.market
    assert feeds is not None
    assert market is not None
    await app.start()
    try:
        await feeds.wait_replays()
        health = feeds.health()["binance"]
        assert health["source"] == "replay"
        assert health["channels"]["orderbook"]["messages"] == 176
        assert ("binance", "NKN-USDT") in market.markets()
        assert market.top("binance", "NKN-USDT") is not None
    finally:
        assert await app.stop()


@pytest.mark.asyncio
async def test_unknown_symbol_fails_startup_with_close_matches() -> None:
    """A symbol the exchange does not list stops the feed's start with a suggestion."""
    sim = SimExchange(MarketModel(["BTC-USDT", "ETH-USDT"]))
    await sim.start(run=False)
    hub, clock = Hub(), LiveClock()
    cfg = ExchangeConfig(name="simulator", url=sim.rest_url, symbols=["BTC-USTD"])
    manager = FeedManager(build_sources([cfg], hub=hub, clock=clock), hub=hub, clock=clock)
    try:
        with pytest.raises(ConfigError) as info:
            await manager.start()
        text = str(info.value)
        assert "BTC-USTD" in text
        assert "close matches: BTC-USDT" in text
    finally:
        await manager.stop()
        await sim.stop()


def test_unknown_exchange_in_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """crypto-monitor run with an unknown exchange exits 2 naming it and the valid names."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "exchanges": [{"name": "binanse", "symbols": ["BTC-USDT"]}],
                "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"},
                "api": {"enabled": False},
            }
        )
    )
    assert main(["run", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "exchanges[binanse].name" in err
    assert "did you mean binance" in err


def test_replay_command_json_counts(
    shared_data: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """crypto-monitor replay --json through the full daemon prints cryptofeed's playback counts."""
    files = sorted(str(p) for p in shared_data.glob("KRAKEN.*"))
    assert main(["replay", "--exchange", "KRAKEN", *files, "--json", "--log-level", "WARNING"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    assert summary["exchange"] == "kraken"
    assert summary["messages"] == 4430
    assert summary["events"] == {"trades": 10, "l2_book": 4279, "ticker": 18}
    assert isinstance(summary["anomalies"], int)
    assert summary["seconds"] > 0
