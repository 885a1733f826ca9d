"""Parity: a recording replayed through the daemon (``build_app``: the replay feed source, the
detectors, the signal generator, the order engine with its database journal, the paper broker)
with auto-trading on, and the backtest of the same recording, give the same orders and fills.

Both run on a ManualClock moved in the same steps of recorded time; the daemon's journal
writes to SQLite (real I/O), so after a step with trading activity the daemon is given time
until it has been quiet (no new signal, order or fill, no open order) for a while.

A second case trades the same signals of CTK-USDT-PERP at 50x with a maintenance rate of
1.9 % (liquidation 0.1 % from the entry) and a 0.02 % stop: a recorded trade gapping through
both liquidates a long in both paths alike, and the sell signal that follows opens a short
in both (the live path took it for a close of the liquidated long and dropped it) which its
own stop closes (the backtest closed it with the long's stale stop exit).

A third case trades an inverse perpetual of the HUOBI_SWAP recording at 50x: a manual long
entered at the same recorded step in both paths (after that step's messages) is liquidated by
the paper venue when a recorded trade reaches its estimate; the forced close is a fill of both
paths alike, and the backtest's round trip ends by liquidation.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cryptomon.app import build_app
from cryptomon.backtest.recording import RecordingRunner, first_timestamp
from cryptomon.backtest.result import BacktestResult
from cryptomon.backtest.stats import result_document
from cryptomon.clock import ManualClock
from cryptomon.config import Settings
from cryptomon.events import Fill, OrderIntent, Signal
from cryptomon.hub import Hub

EXCHANGE = "BINANCE_FUTURES"
STEP_S = 0.1
QUIET_ROUNDS = 25  # rounds of 2 ms without a trading event (SQLite commits in between)


def permissive(tmp_path: Path, files: list[str], **trading: Any) -> Settings:
    """Low detector thresholds and a rule trading every anomaly: the sample trades
    (``trading``: more trading keys)."""
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
                **trading,
            },
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"},
            "api": {"enabled": False},
            "logging": {"level": "WARNING"},
            "backtest": {"replay_step_s": STEP_S},
        }
    )


def key(fill: Fill) -> tuple[Any, ...]:
    return (fill.ts, fill.symbol, fill.side, fill.amount, fill.price, fill.fee)


@dataclass(frozen=True)
class Entry:
    """A manual market order placed after the messages of the first step at or past ``at``."""

    exchange: str
    symbol: str
    side: str
    amount: str
    at: float

    def due(self, now: float, placed: list[dict[str, Any]]) -> bool:
        return not placed and now >= self.at

    async def place(self, engine: Any, placed: list[dict[str, Any]]) -> None:
        placed.append(
            await engine.place_manual_order(
                actor="parity",
                exchange=self.exchange,
                symbol=self.symbol,
                side=self.side,
                amount=self.amount,
            )
        )


async def backtest_with(
    settings: Settings, files: list[str], entry: Entry, placed: list[dict[str, Any]]
) -> BacktestResult:
    """The backtest of ``files`` with ``entry`` placed once the step's messages are in (the
    runner settles the pipeline after each step's messages; the entry goes first)."""
    runner = RecordingRunner(settings, files)
    pipe = runner.pipe
    settle = pipe.settle

    async def settle_with_entry() -> None:
        if entry.due(pipe.clock.time(), placed):
            await entry.place(pipe.engine, placed)
        await settle()

    pipe.settle = settle_with_entry  # type: ignore[method-assign]
    return await runner.run()


async def live_fills(
    settings: Settings,
    files: list[str],
    exchange: str = EXCHANGE,
    entry: Entry | None = None,
    placed: list[dict[str, Any]] | None = None,
) -> list[Fill]:
    """The daemon on a ManualClock, moved in steps; its fills (``entry`` placed after the
    messages of its step, as :func:`backtest_with` does)."""
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
    feed: Any = feeds.source(exchange.lower())
    try:
        for _ in range(QUIET_ROUNDS):
            await asyncio.sleep(0.002)
        base = clock.sleepers - 1  # the feed is asleep until the first step
        deadline = time.monotonic() + 120
        while not feed.done.is_set():
            assert time.monotonic() < deadline, "the live replay did not finish"
            while not feed.done.is_set() and clock.sleepers <= base:  # noqa: ASYNC110 - loop turns
                await asyncio.sleep(0)
            if entry is not None and placed is not None and entry.due(clock.time(), placed):
                await entry.place(engine, placed)
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


@pytest.mark.asyncio
async def test_a_signal_entry_liquidated_is_the_same_in_both_paths(
    files: list[str], tmp_path: Path
) -> None:
    """CTK-USDT-PERP long 988 at 1.012 (a volume signal), liquidated at 1.012 x 0.999 when
    the recorded trade at 1.010 passes its stop (1.011) and its estimate: the same fills,
    the forced close among them, and the trip loses its margin and entry fee; then a short
    of 989 at 1.01 (the sell signal) closed by its own stop at 1.011."""
    settings = permissive(
        tmp_path,
        files,
        leverage=50.0,
        max_leverage=50.0,
        maintenance_margin_rate=0.019,
        stop_loss_percentage=0.02,
        symbols=["CTK-USDT-PERP"],
    )
    backtest = await RecordingRunner(settings, files).run()
    live = await live_fills(settings, files)
    assert [key(f) for f in live] == [key(f) for f in backtest.fills]
    liquidated = [t for t in backtest.trades if t.exit_reason == "liquidation"]
    assert [(t.symbol, t.side, t.amount) for t in liquidated] == [
        ("CTK-USDT-PERP", "long", Decimal(988))
    ]
    [trip] = liquidated
    entry = Decimal("1.012")
    assert (trip.entry_price, trip.exit_price) == (entry, entry * Decimal("0.999"))
    margin, entry_fee = 988 * entry / 50, 988 * entry * Decimal("0.001")
    assert trip.pnl == trip.net == -(margin + entry_fee)  # -20.996976 USDT
    short = [t for t in backtest.trades if t.side == "short"]
    assert [(t.amount, t.exit_reason, t.exit_price) for t in short] == [
        (Decimal(989), "stop_loss", Decimal("1.011"))
    ]


INVERSE = "HUOBI_SWAP"
SHIB = "SHIB-USD-PERP"  # inverse: 10 USD a contract, settled in SHIB


def liquidating(tmp_path: Path, files: list[str]) -> Settings:
    """50x on the inverse perpetual with a maintenance rate of 1.99 %: the estimate of a long
    is 0.01 % under its entry (entry / 1.0001), which the recorded trades reach."""
    return Settings.model_validate(
        {
            "exchanges": [
                {"name": INVERSE.lower(), "source": "replay", "files": files, "replay_speed": "1x"}
            ],
            "anomaly_detection": {"enabled": False},
            "trading": {
                "auto_trading_enabled": True,
                "allow_short": True,
                "leverage": 50.0,
                "max_leverage": 50.0,
                "maintenance_margin_rate": 0.0199,
                "signal_rules": [],
                "paper": {"balances": {"SHIB": 100_000_000.0}},
            },
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"},
            "api": {"enabled": False},
            "logging": {"level": "WARNING"},
            "backtest": {"replay_step_s": STEP_S},
        }
    )


@pytest.fixture
def inverse_files(shared_data: Path) -> list[str]:
    return sorted(str(p) for p in shared_data.glob(f"{INVERSE}.*"))


@pytest.mark.asyncio
async def test_a_liquidation_on_a_recording_is_the_same_in_both_paths(
    inverse_files: list[str], tmp_path: Path
) -> None:
    """10 SHIB-USD-PERP contracts long at 50x from the first book after 6 s of recording:
    entered at the ask 0.00002782, liquidated at 0.00002782 / 1.0001 when the recorded trade at
    0.00002781 comes; the fee of the liquidation is the initial margin less the loss, so the
    round trip loses its whole margin and the entry fee (hand computation below)."""
    files = inverse_files
    settings = liquidating(tmp_path, files)
    entry = Entry(INVERSE.lower(), SHIB, "buy", "10", first_timestamp(files) + 6.0)
    placed_bt: list[dict[str, Any]] = []
    backtest = await backtest_with(settings, files, entry, placed_bt)
    placed_live: list[dict[str, Any]] = []
    live = await live_fills(settings, files, INVERSE, entry, placed_live)
    assert [p["state"] for p in placed_bt + placed_live] == ["filled", "filled"]
    assert [key(f) for f in live] == [key(f) for f in backtest.fills]

    D = Decimal
    entry_price, contracts, usd = D("0.00002782"), D(10), D(100)  # 10 contracts of 10 USD
    liq = entry_price / (1 + (D(1) / 50 - D("0.0199")))
    loss = usd / entry_price - usd / liq  # coin PnL of an inverse long (negative)
    margin = usd / entry_price / 50
    taker = D("0.001")
    opened, closed = backtest.fills
    assert (opened.side, opened.amount, opened.price) == ("buy", contracts, entry_price)
    assert opened.fee == usd / entry_price * taker
    assert (closed.side, closed.amount, closed.price) == ("sell", contracts, liq)
    assert closed.fee == margin + loss  # what is left of the margin
    assert closed.fee_currency == opened.fee_currency == "SHIB"
    [trip] = backtest.trades
    assert (trip.symbol, trip.exit_reason, trip.inverse) == (SHIB, "liquidation", True)
    assert trip.fees == opened.fee + closed.fee
    coin = loss - trip.fees  # == -(margin + entry fee)
    assert trip.pnl == coin == -(margin + opened.fee)

    # the report in the paper balance's USDT: the coin PnL and fees at the fill prices
    quote_fees = opened.fee * entry_price + closed.fee * liq
    quote_pnl = loss * liq - quote_fees  # the realized coin PnL at the closing fill's price
    doc = result_document(backtest)
    summary, by_source = doc["summary"], doc["by_source"]
    assert summary["quote"] == "USDT"
    assert summary["pnl"] == pytest.approx(float(trip.net)) == pytest.approx(float(quote_pnl))
    assert summary["pnl"] == pytest.approx(-2.0998, abs=1e-4)
    assert summary["fees"] == pytest.approx(float(quote_fees)) == pytest.approx(2.0898, abs=1e-4)
    assert by_source == {
        "manual": {"trades": 1, "win_rate": 0.0, "pnl": summary["pnl"], "fees": summary["fees"]}
    }
    assert summary["final_equity"] == pytest.approx(10_000 + summary["pnl"])
    [row] = doc["trades"]
    assert (row["exit_reason"], row["settle_pnl"]) == ("liquidation", str(trip.pnl))
