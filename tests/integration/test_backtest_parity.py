"""Parity: a recording replayed through the daemon (``build_app``: the replay feed source, the
detectors, the signal generator, the order engine with its database journal, the paper broker)
with auto-trading on, and the backtest of the same recording, give the same orders and fills.

Both run on a ManualClock moved in the same steps of recorded time; the daemon's journal
writes to SQLite (real I/O), so after a step with trading activity the daemon is given time
until it has been quiet (no new signal, order or fill, no open order) for a while.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from cryptomon.app import build_app
from cryptomon.backtest.recording import RecordingRunner, first_timestamp
from cryptomon.clock import ManualClock
from cryptomon.config import Settings
from cryptomon.events import Fill, OrderIntent, Signal
from cryptomon.hub import Hub

EXCHANGE = "BINANCE_FUTURES"
STEP_S = 0.1
QUIET_ROUNDS = 25  # rounds of 2 ms without a trading event (SQLite commits in between)


def permissive(tmp_path: Path, files: list[str]) -> Settings:
    """Low detector thresholds and a rule trading every anomaly: the sample trades."""
    return Settings.model_validate(
        {
            "exchanges": [
                {"name": EXCHANGE.lower(), "source": "replay", "files": files, "replay_speed": "1x"}
            ],
            "anomaly_detection": {
                "price_change_percentage": 0.05,
                "volume_threshold_multiplier": 1.5,
                "min_samples": 5,
                "lookback_window_minutes": 2,
                "bucket_seconds": 5,
                "cooldown_s": 10,
            },
            "trading": {
                "auto_trading_enabled": True,
                "min_signal_strength": 0.0,
                "allow_short": True,
                "signal_rules": [
                    {
                        "name": "any",
                        "style": "momentum",
                        "min_price_change_pct": 0.0,
                        "strength": 1.0,
                    }
                ],
            },
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"},
            "api": {"enabled": False},
            "logging": {"level": "WARNING"},
            "backtest": {"replay_step_s": STEP_S},
        }
    )


def key(fill: Fill) -> tuple[Any, ...]:
    return (fill.ts, fill.symbol, fill.side, fill.amount, fill.price, fill.fee)


async def live_fills(settings: Settings, files: list[str]) -> list[Fill]:
    """The daemon on a ManualClock, moved in steps; its fills."""
    hub = Hub()
    clock = ManualClock(first_timestamp(files))
    fills: list[Fill] = []
    activity = [0]
    hub.subscribe(Fill, fills.append, name="parity.fills")
    hub.subscribe(
        (Signal, OrderIntent, Fill),
        lambda _e: activity.__setitem__(0, activity[0] + 1),
        name="parity.activity",
    )
    app = build_app(settings, clock=clock, hub=hub)
    feeds, engine = app.services.feeds, app.services.trading
    assert feeds is not None
    assert engine is not None
    await app.start()
    feed: Any = feeds.source(EXCHANGE.lower())
    try:
        for _ in range(QUIET_ROUNDS):
            await asyncio.sleep(0.002)
        base = clock.sleepers - 1  # the feed is asleep until the first step
        deadline = time.monotonic() + 120
        while not feed.done.is_set():
            assert time.monotonic() < deadline, "the live replay did not finish"
            while not feed.done.is_set() and clock.sleepers <= base:  # noqa: ASYNC110 - loop turns
                await asyncio.sleep(0)
            seen, quiet = activity[0], 0
            while quiet < QUIET_ROUNDS or engine.stats()["open_orders"]:
                await asyncio.sleep(0.002)
                quiet = quiet + 1 if activity[0] == seen else 0
                seen = activity[0]
            clock.advance(STEP_S)
    finally:
        await app.stop()
    return fills


@pytest.fixture
def files(shared_data: Path) -> list[str]:
    return sorted(str(p) for p in shared_data.glob(f"{EXCHANGE}.*"))


@pytest.mark.asyncio
async def test_live_replay_and_backtest_give_the_same_fills(
    files: list[str], tmp_path: Path
) -> None:
    """Same orders and fills (time, side, amount, price, fee) from both paths."""
    settings = permissive(tmp_path, files)
    backtest = await RecordingRunner(settings, files).run()
    live = await live_fills(settings, files)
    assert backtest.fills, "the permissive config should trade the sample"
    assert [key(f) for f in live] == [key(f) for f in backtest.fills]
