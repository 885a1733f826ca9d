"""One live trader per ``data_dir``: a second daemon started on the same config (a manual
``crypto-monitor run`` beside the systemd service) stops before anything reaches the venue.
Before, its trading engine started, replayed the journal and reconciled with the venue (the
orphan step cancels orders carrying the engine's id prefix that its own replay did not know:
those the first daemon placed since), and only then did its API fail to bind the port. The
whole daemon (``build_app``) in live mode on the spot simulator, through the real ccxt code."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from cryptomon.app import build_app
from cryptomon.app.lifecycle import StartupError
from cryptomon.clock import ManualClock
from cryptomon.config import load_settings
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.venue import install

KEY, SECRET = "one-key", "one-secret"


@pytest.mark.asyncio
async def test_a_second_live_daemon_on_the_same_data_dir_sends_nothing(tmp_path: Path) -> None:
    """The first daemon starts and trades; a second one on the same config fails to start
    naming ``data_dir`` and the process that holds it, having sent no request to the venue;
    once the first has stopped, a new one starts."""
    sim = SimExchange(MarketModel(["BTC-USDT"], seed=6), clock=ManualClock(time.time()))
    endpoints = install(sim, api_key=KEY, api_secret=SECRET, balances={"USDT": Decimal(1000)})
    await sim.start(run=False)
    data = {
        "data_dir": str(tmp_path / "state"),
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'cm.db'}"},
        "exchanges": [],
        "anomaly_detection": {"enabled": False},
        "api": {"enabled": False},
        "trading": {
            "mode": "live",
            "exchange": "simulator",
            "indicators": {"enabled": False},
            "live": {
                "exchange": "binance",
                "api_key": KEY,
                "secret": SECRET,
                "url": sim.rest_url,
                "enable_rate_limit": False,
            },
        },
    }
    first = build_app(load_settings(data=data))
    await first.start()
    try:
        assert first.services.trading is not None
        assert first.services.trading.reconciled
        asked = sum(endpoints.requests.values())
        second = build_app(load_settings(data=data))
        with pytest.raises(StartupError, match="data_dir") as caught:
            await second.start()
        assert "another crypto-monitor" in str(caught.value)
        assert sum(endpoints.requests.values()) == asked  # the second sent nothing
    finally:
        assert await first.stop()
    third = build_app(load_settings(data=data))
    await third.start()
    try:
        assert third.services.trading is not None
    finally:
        assert await third.stop()
        await sim.stop()
