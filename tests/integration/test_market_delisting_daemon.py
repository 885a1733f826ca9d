"""The daemon and delisting, end to end (build_app, the instrument cache in SQLite, the
simulator through the real cryptofeed code): a symbol delisted since the last run is skipped
and the daemon starts; a symbol listed nowhere is a config error (exit 2, close matches)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cryptomon.app import build_app
from cryptomon.config import load_settings
from cryptomon.events import FeedStatus
from cryptomon.hub import Hub
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from tests.util import wait_until

SYMBOLS = ["BTC-USDT", "ETH-USDT"]


def config(tmp_path: Path, url: str, symbols: list[str]) -> dict[str, Any]:
    return {
        "exchanges": [{"name": "simulator", "url": url, "symbols": symbols, "depth": 100}],
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'daemon.db'}"},
        "api": {"enabled": False},
        "logging": {"level": "WARNING"},
    }


@pytest.mark.asyncio
async def test_the_daemon_starts_after_a_delisting_and_skips_the_symbol(tmp_path: Path) -> None:
    """Run 1 caches both specs; ETH is delisted; run 2 starts, streams BTC, marks ETH
    delisted (alerted, stale for trading) instead of failing with exit 1."""
    sim = SimExchange(MarketModel(SYMBOLS, seed=2), interval=0.05)
    await sim.start()
    try:
        settings = load_settings(data=config(tmp_path, sim.rest_url, SYMBOLS))
        first = build_app(settings)
        await first.start()
        registry = first.services.instruments
        assert registry is not None
        assert {s.symbol for s in registry.specs("simulator")} >= set(SYMBOLS)
        await first.stop()
        sim.delist("ETH-USDT")
        hub = Hub()
        statuses: list[FeedStatus] = []
        hub.subscribe(FeedStatus, statuses.append, name="test")
        second = build_app(settings, hub=hub)
        await second.start()
        try:
            feeds = second.services.feeds
            market = second.services.market
            assert feeds is not None
            assert market is not None
            feed: Any = feeds.source("simulator")
            assert feed.symbols == ["BTC-USDT"]
            assert any(s.status == "delisted" and s.symbol == "ETH-USDT" for s in statuses)
            assert market.is_stale("simulator", "ETH-USDT")
            await wait_until(lambda: market.mid("simulator", "BTC-USDT") is not None)
            assert feeds.health()["simulator"]["delisted"] == ["ETH-USDT"]
        finally:
            await second.stop()
    finally:
        await sim.stop()


@pytest.mark.asyncio
async def test_a_symbol_listed_nowhere_exits_2_naming_close_matches(tmp_path: Path) -> None:
    """ETH-USDC: neither cached nor listed by the venue: exit 2, one line naming ETH-USDT."""
    sim = SimExchange(MarketModel(SYMBOLS, seed=2), interval=0.05)
    await sim.start()
    try:
        path = tmp_path / "cfg.yaml"
        path.write_text(yaml.safe_dump(config(tmp_path, sim.rest_url, ["ETH-USDC"])))
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "cryptomon", "run", "--config", str(path)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    finally:
        await sim.stop()
    assert proc.returncode == 2, err.decode()
    text = err.decode()
    assert "ETH-USDC" in text
    assert "close matches: ETH-USDT" in text
    assert "Traceback" not in text
