"""Parity: a recording replayed through the daemon (``build_app``: the replay feed source, the
detectors, the signal generator, the order engine with its database journal, the paper broker)
with auto-trading on, and the backtest of the same recording, give the same orders and fills.

Both run on a ManualClock moved in the same steps of recorded time; the daemon's journal
writes to SQLite (real I/O), so after a step with trading activity the daemon is given time
until it has been quiet (no new signal, order or fill, no open order) for a while. Both
publish a step's book tops in that step, so an emulated stop (watching the book tops) fires
at the same step in both.

A second case trades the same signals of CTK-USDT-PERP and AKRO-USDT-PERP at 50x with a
maintenance rate of 1.9 % (liquidation 0.1 % from the entry) and a 0.02 % stop: a recorded
trade gapping through both liquidates a CTK long in both paths alike, and the sell signal that
follows opens a short in both (the live path took it for a close of the liquidated long and
dropped it) which its own stop closes (the backtest closed it with the long's stale stop
exit); an AKRO long whose stop is at the bid it filled beside is stopped out by the first
book top after its fill in both (the backtest published that top a step late, after its
clock had moved on, and exited 0.1 s later).

A third case trades an inverse perpetual of the HUOBI_SWAP recording at 50x: a manual long
entered at the same recorded step in both paths (after that step's messages) is liquidated by
the paper venue when a recorded trade reaches its estimate; the forced close is a fill of both
paths alike, and the backtest's round trip ends by liquidation.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
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
from cryptomon.events import BookTop, Fill, OrderIntent, Signal
from cryptomon.hub import Hub

EXCHANGE = "BINANCE_FUTURES"
STEP_S = 0.1
CTK, AKRO = "CTK-USDT-PERP", "AKRO-USDT-PERP"
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


def order_key(intent: OrderIntent) -> tuple[Any, ...]:
    """An order as both paths must send it (client order ids aside: a forced close's is
    random)."""
    return (
        intent.ts,
        intent.symbol,
        intent.origin,
        intent.side,
        intent.type,
        intent.amount,
        intent.price,
        intent.reduce_only,
    )


@dataclass
class Seen:
    """What one path published: its orders, its fills, and its book tops (clock time when
    published, symbol, receipt time, bid, ask)."""

    clock: ManualClock
    orders: list[OrderIntent] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    tops: list[tuple[float, str, float, float, float]] = field(default_factory=list)

    def follow(self, hub: Hub) -> None:
        hub.subscribe(OrderIntent, self.orders.append, name="parity.orders")
        hub.subscribe(Fill, self.fills.append, name="parity.fills")
        hub.subscribe(BookTop, self._top, name="parity.tops")

    def _top(self, top: BookTop) -> None:
        self.tops.append((self.clock.time(), top.symbol, top.ts_recv, top.bid, top.ask))

    def assert_same(self, other: Seen) -> None:
        """Same orders and fills (time, side, amount, price, fee)."""
        assert [order_key(o) for o in self.orders] == [order_key(o) for o in other.orders]
        assert [key(f) for f in self.fills] == [key(f) for f in other.fills]


async def backtest(settings: Settings, files: list[str]) -> tuple[BacktestResult, Seen]:
    """The backtest of ``files`` and what its pipeline published."""
    runner = RecordingRunner(settings, files)
    seen = Seen(runner.pipe.clock)
    seen.follow(runner.pipe.hub)
    return await runner.run(), seen


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
) -> tuple[BacktestResult, Seen]:
    """The backtest of ``files`` with ``entry`` placed once the step's messages are in (the
    runner settles the pipeline after each step's messages; the entry goes first), and what
    its pipeline published."""
    runner = RecordingRunner(settings, files)
    pipe = runner.pipe
    seen = Seen(pipe.clock)
    seen.follow(pipe.hub)
    settle = pipe.settle

    async def settle_with_entry() -> None:
        if entry.due(pipe.clock.time(), placed):
            await entry.place(pipe.engine, placed)
        await settle()

    pipe.settle = settle_with_entry  # type: ignore[method-assign]
    return await runner.run(), seen


async def live_run(
    settings: Settings,
    files: list[str],
    exchange: str = EXCHANGE,
    entry: Entry | None = None,
    placed: list[dict[str, Any]] | None = None,
) -> Seen:
    """The daemon on a ManualClock, moved in steps; what it published (``entry`` placed
    after the messages of its step, as :func:`backtest_with` does)."""
    hub = Hub()
    clock = ManualClock(first_timestamp(files))
    published = Seen(clock)
    published.follow(hub)
    activity = [0]
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
    return published


@pytest.fixture
def files(shared_data: Path) -> list[str]:
    return sorted(str(p) for p in shared_data.glob(f"{EXCHANGE}.*"))


@pytest.mark.asyncio
async def test_live_replay_and_backtest_give_the_same_fills(
    files: list[str], tmp_path: Path
) -> None:
    """Same orders and fills (time, side, amount, price, fee) from both paths, and the same
    book tops published at the same steps: each in the step its message was received."""
    settings = permissive(tmp_path, files)
    result, bt = await backtest(settings, files)
    live = await live_run(settings, files)
    assert result.fills, "the permissive config should trade the sample"
    assert [key(f) for f in bt.fills] == [key(f) for f in result.fills]
    live.assert_same(bt)
    assert len(bt.tops) > 500
    assert live.tops == bt.tops
    # each in the step of its message: published at the first clock step at or past its
    # receipt (a symbol's first book is the REST snapshot, stamped with the response's
    # receipt, which may come after the websocket line that asked for it)
    first = {symbol: at for at, symbol, *_ in reversed(bt.tops)}
    late = [
        (at, symbol, receipt)
        for at, symbol, receipt, *_ in bt.tops
        if first[symbol] != at and not receipt <= at < receipt + STEP_S
    ]
    assert late == []


@pytest.mark.asyncio
async def test_signal_entries_liquidated_or_stopped_are_the_same_in_both_paths(
    files: list[str], tmp_path: Path
) -> None:
    """CTK-USDT-PERP long 988 at 1.012 (a volume signal), liquidated at 1.012 x 0.999 when
    the recorded trade at 1.010 passes its stop (1.011) and its estimate: the same fills,
    the forced close among them, and the trip loses its margin and entry fee; then a short
    of 989 at 1.01 (the sell signal) closed by its own stop at 1.011. AKRO-USDT-PERP long
    57653 at the ask 0.01735 with its stop (0.01735 x 0.9998, to the tick below: 0.01734) at
    the bid of the book it filled against: stopped out by the first book top after the fill,
    one step later in both paths."""
    settings = permissive(
        tmp_path,
        files,
        leverage=50.0,
        max_leverage=50.0,
        maintenance_margin_rate=0.019,
        stop_loss_percentage=0.02,
        symbols=[CTK, AKRO],
    )
    result, bt = await backtest(settings, files)
    live = await live_run(settings, files)
    live.assert_same(bt)
    assert {f.symbol for f in result.fills} == {CTK, AKRO}
    liquidated = [t for t in result.trades if t.exit_reason == "liquidation"]
    assert [(t.symbol, t.side, t.amount) for t in liquidated] == [(CTK, "long", Decimal(988))]
    [trip] = liquidated
    entry = Decimal("1.012")
    assert (trip.entry_price, trip.exit_price) == (entry, entry * Decimal("0.999"))
    margin, entry_fee = 988 * entry / 50, 988 * entry * Decimal("0.001")
    assert trip.pnl == trip.net == -(margin + entry_fee)  # -20.996976 USDT
    short = [t for t in result.trades if t.side == "short"]
    assert [(t.symbol, t.amount, t.exit_reason, t.exit_price) for t in short] == [
        (CTK, Decimal(989), "stop_loss", Decimal("1.011"))
    ]

    [akro] = [t for t in result.trades if t.symbol == AKRO]
    assert (akro.side, akro.amount, akro.entry_price, akro.exit_reason) == (
        "long",
        Decimal(57653),
        Decimal("0.01735"),
        "stop_loss",
    )
    opened, *closed = [f for f in result.fills if f.symbol == AKRO]
    assert (opened.side, opened.amount, opened.price) == ("buy", Decimal(57653), Decimal("0.01735"))
    # the book at the fill: the bid is at the stop already
    *_, (_, _, _, bid, ask) = [t for t in bt.tops if t[1] == AKRO and t[0] <= opened.ts]
    assert (bid, ask) == (0.01734, 0.01735)
    # the stop fires on the next book top (a message of the next step), and the exit sells
    # down the recorded bids
    after = [t[0] for t in bt.tops if t[1] == AKRO and t[0] > opened.ts]
    assert after[0] == pytest.approx(opened.ts + STEP_S, abs=1e-6)
    assert [(f.side, f.amount, f.price) for f in closed] == [
        ("sell", Decimal(502), Decimal("0.01734")),
        ("sell", Decimal(40443), Decimal("0.01733")),
        ("sell", Decimal(16708), Decimal("0.01732")),
    ]
    assert {f.ts for f in closed} == {after[0]}


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
    backtest, bt = await backtest_with(settings, files, entry, placed_bt)
    placed_live: list[dict[str, Any]] = []
    live = await live_run(settings, files, INVERSE, entry, placed_live)
    assert [p["state"] for p in placed_bt + placed_live] == ["filled", "filled"]
    live.assert_same(bt)
    assert [key(f) for f in bt.fills] == [key(f) for f in backtest.fills]

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
