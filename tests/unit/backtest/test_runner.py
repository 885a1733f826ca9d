"""The backtest runner: the live engine on candles, the SL/TP-inside-a-candle rule, fees,
slippage and determinism."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
from decimal import Decimal
from typing import Any

import pytest

from cryptomon.backtest import pipeline
from cryptomon.backtest.runner import BacktestResult, BacktestRunner
from cryptomon.config import Settings
from cryptomon.events import Candle, Signal
from tests.unit.backtest.conftest import candles, random_walk, settings

QUIET = {"signal_rules": [], "indicators": {"enabled": False}}


def quiet(slippage_bps: float = 0.0, **trading: Any) -> Settings:
    """No detectors, no rules, no indicator strategy: only the signals a test publishes."""
    base = settings(**QUIET, **trading)
    return base.model_copy(
        update={
            "anomaly_detection": base.anomaly_detection.model_copy(update={"enabled": False}),
            "backtest": base.backtest.model_copy(
                update={"infer_instrument": False, "slippage_bps": slippage_bps}
            ),
        }
    )


def run_with_signals(cfg: Settings, rows: list[Any], signals: dict[int, str]) -> BacktestResult:
    """Run ``rows`` (every candle through the whole path) and publish a full-strength signal
    at the close of the given candles."""
    runner = BacktestRunner(cfg, [candles(rows)], fast=False)  # the test reads every candle
    seen = [0]

    def on_candle(c: Candle) -> None:
        side = signals.get(seen[0])
        seen[0] += 1
        if side is not None:
            runner.hub.publish(
                Signal(
                    exchange=c.exchange,
                    symbol=c.symbol,
                    ts=c.end,
                    ts_recv=c.end,
                    side="buy" if side == "buy" else "sell",
                    strength=1.0,
                    source="test",
                    price=c.close,
                )
            )

    runner.hub.subscribe(Candle, on_candle, name="test.signals")
    return asyncio.run(runner.run())


FLAT = (100.0, 100.0, 100.0, 100.0)


def test_stop_and_take_in_one_candle_long_assumes_the_stop() -> None:
    """A long whose next candle touches both its stop (97) and take (106) exits at the stop."""
    result = run_with_signals(quiet(), [FLAT, (100.0, 110.0, 90.0, 100.0), FLAT], {0: "buy"})
    [trade] = result.trades
    assert (trade.side, trade.exit_reason) == ("long", "stop_loss")
    assert (trade.entry_price, trade.exit_price) == (Decimal(100), Decimal(97))


def test_stop_and_take_in_one_candle_short_assumes_the_stop() -> None:
    """A short whose next candle touches both levels exits at its stop (103), not at 94."""
    cfg = quiet(allow_short=True)
    result = run_with_signals(cfg, [FLAT, (100.0, 110.0, 90.0, 100.0), FLAT], {0: "sell"})
    [trade] = result.trades
    assert (trade.side, trade.exit_reason) == ("short", "stop_loss")
    assert trade.exit_price == Decimal(103)


def test_take_profit_alone_fills_at_its_level() -> None:
    """A candle that reaches only the take-profit exits there, at the level."""
    result = run_with_signals(quiet(), [FLAT, (100.0, 107.0, 99.0, 105.0), FLAT], {0: "buy"})
    [trade] = result.trades
    assert (trade.exit_reason, trade.exit_price) == ("take_profit", Decimal(106))


@pytest.mark.parametrize("allow_short", [False, True])
def test_take_profit_fills_at_its_level_with_a_spread(allow_short: bool) -> None:
    """With a half spread, a candle passing the take-profit exits at the level (106 / 94),
    not at the candle's extreme less the spread (the level's quote bid a hair below it)."""
    cfg = quiet(slippage_bps=10.0, allow_short=allow_short)
    row = (100.0, 100.0, 92.0, 93.0) if allow_short else (100.0, 108.0, 100.0, 107.0)
    side = "sell" if allow_short else "buy"
    result = run_with_signals(cfg, [FLAT, row, FLAT], {0: side})
    [trade] = result.trades
    entry = Decimal("99.9") if allow_short else Decimal("100.1")
    assert (trade.exit_reason, trade.entry_price) == ("take_profit", entry)
    level = Decimal(94) if allow_short else Decimal(106)  # from the entry's mid, 100
    assert trade.exit_price == level


def test_gap_through_the_stop_exits_at_the_open() -> None:
    """A candle opening below the stop exits at the open's quote (a gap), worse than 97."""
    result = run_with_signals(quiet(), [FLAT, (95.0, 96.0, 94.0, 95.0), FLAT], {0: "buy"})
    [trade] = result.trades
    assert (trade.exit_reason, trade.exit_price) == ("stop_loss", Decimal(95))


def test_fees_and_slippage_are_paid() -> None:
    """Entry at the close plus the half spread, exit minus it; taker fees on both fills."""
    result = run_with_signals(quiet(slippage_bps=10.0), [FLAT, FLAT, FLAT], {0: "buy", 1: "sell"})
    [trade] = result.trades
    assert trade.entry_price == Decimal("100.1")
    assert trade.exit_price == Decimal("99.9")
    amount = trade.amount
    fees = (Decimal("100.1") + Decimal("99.9")) * amount * Decimal("0.001")
    assert trade.fees == fees
    assert trade.pnl == (Decimal("99.9") - Decimal("100.1")) * amount - fees


def test_same_input_same_orders() -> None:
    """Two runs of the same candles and config give the same fills, trades and digest."""
    cfg = settings(min_signal_strength=0.5)
    series = random_walk(3000)
    first = asyncio.run(BacktestRunner(cfg, [series]).run())
    second = asyncio.run(BacktestRunner(cfg, [series]).run())
    assert first.fills, "the walk should trade"
    assert first.digest() == second.digest()
    assert [t.as_dict() for t in first.trades] == [t.as_dict() for t in second.trades]


@pytest.mark.parametrize("rows", [[FLAT] * 3])
def test_no_signal_no_trade(rows: list[Any]) -> None:
    """Without signals nothing trades and the equity stays at the starting balance."""
    result = run_with_signals(quiet(), rows, {})
    assert result.trades == []
    assert result.fills == []
    assert list(result.equity) == [10_000.0] * 3


def test_result_repr_counts_instead_of_printing_every_fill() -> None:
    """The result's repr (asyncio.run formats the finished task's result) names the counts,
    not every fill and trade."""
    result = run_with_signals(quiet(), [FLAT, FLAT, FLAT], {0: "buy", 1: "sell"})
    text = repr(result)
    assert text.startswith("BacktestResult(candles=3, trades=1, fills=2, ")
    assert "Fill(" not in text
    assert len(text) < 200


def test_the_run_refreezes_before_each_chunk_and_unfreezes_at_its_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run in a process that froze nothing freezes the process's objects, again before
    each chunk of candles is detected, and unfreezes them all at its end; in a process that
    froze some itself, it leaves the garbage collector's freezing alone."""
    from cryptomon.backtest import candle_detect

    monkeypatch.setattr(candle_detect, "CHUNK", 500)
    series = [random_walk(1700, seed=3)]
    frozen_at_chunks: list[int] = []
    runner = BacktestRunner(settings(), series)
    detect = candle_detect.CandleAnomalies._detect

    def spy(self: Any, lo: int, hi: int) -> None:
        detect(self, lo, hi)
        frozen_at_chunks.append(gc.get_freeze_count())

    monkeypatch.setattr(candle_detect.CandleAnomalies, "_detect", spy)
    assert gc.get_freeze_count() == 0
    asyncio.run(runner.run())
    assert len(frozen_at_chunks) == 4
    assert 0 < frozen_at_chunks[0] < frozen_at_chunks[-1]  # the run's survivors too
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        frozen_at_chunks.clear()
        asyncio.run(BacktestRunner(settings(), series).run())
        assert frozen_at_chunks
        assert gc.get_freeze_count() == before
    finally:
        gc.unfreeze()


def test_the_run_collects_its_young_generation_less_often_and_restores_the_threshold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run that froze the process's objects raises the young generation's collection
    threshold to ``YOUNG_THRESHOLD`` while it runs and restores the process's at its end (a
    higher one, or 0, is kept); a run in a process that froze objects itself leaves it."""
    from cryptomon.backtest import candle_detect
    from cryptomon.backtest import runner as runner_module

    monkeypatch.setattr(candle_detect, "CHUNK", 500)
    series = [random_walk(1200, seed=5)]
    seen: list[tuple[int, int, int]] = []
    detect = candle_detect.CandleAnomalies._detect

    def spy(self: Any, lo: int, hi: int) -> None:
        detect(self, lo, hi)
        seen.append(gc.get_threshold())

    monkeypatch.setattr(candle_detect.CandleAnomalies, "_detect", spy)
    before = gc.get_threshold()
    young = runner_module.YOUNG_THRESHOLD
    try:
        for start, during in (
            ((700, 10, 10), (young, 10, 10)),
            ((321, 7, 3), (young, 7, 3)),
            ((young * 2, 10, 10), (young * 2, 10, 10)),
            ((0, 10, 10), (0, 10, 10)),
        ):
            gc.set_threshold(*start)
            seen.clear()
            asyncio.run(BacktestRunner(settings(), series).run())
            assert set(seen) == {during}
            assert gc.get_threshold() == start
        gc.set_threshold(700, 10, 10)
        gc.freeze()
        try:
            seen.clear()
            asyncio.run(BacktestRunner(settings(), series).run())
            assert set(seen) == {(700, 10, 10)}
        finally:
            gc.unfreeze()
    finally:
        gc.set_threshold(*before)


def test_settling_ends_when_the_loop_has_nothing_else_to_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``Pipeline.settle`` returns at the first yield after which the loop has nothing else
    ready: the same fills, trades, signals and equity as yielding out every round (a loop
    that does not show its ready queue), in fewer loop turns."""
    cfg = settings(min_signal_strength=0.5, stop_loss_percentage=0.4, take_profit_percentage=0.6)
    series = [random_walk(3000, seed=3)]
    turns = [0]
    run_once = asyncio.BaseEventLoop._run_once  # type: ignore[attr-defined]

    def counted(loop: asyncio.BaseEventLoop) -> Any:
        turns[0] += 1
        return run_once(loop)

    monkeypatch.setattr(asyncio.BaseEventLoop, "_run_once", counted)

    def run() -> tuple[BacktestResult, int]:
        turns[0] = 0
        result = asyncio.run(BacktestRunner(cfg, series, fast=False).run())
        return result, turns[0]

    idle_ends, short = run()
    monkeypatch.setattr(pipeline, "_ready", lambda loop: None)
    every_round, full = run()
    assert len(every_round.trades) >= 5
    assert idle_ends.digest() == every_round.digest()
    assert [f.ts for f in idle_ends.fills] == [f.ts for f in every_round.fills]
    assert idle_ends.signals == every_round.signals
    assert idle_ends.equity.tobytes() == every_round.equity.tobytes()
    assert short < full / 2


def test_one_symbol_on_two_exchanges_keeps_its_own_path() -> None:
    """ALT-BTC at 50 on kraken and 100 on binance: a long on binance is not stopped. The
    path started each candle of one at the other's last price (kept per symbol), so the
    binance long was quoted at its stop, 97, on the way from kraken's 50."""
    cfg = quiet()
    binance = candles([FLAT] * 4)
    kraken = dataclasses.replace(candles([(50.0, 50.0, 50.0, 50.0)] * 4), exchange="kraken")
    runner = BacktestRunner(cfg, [kraken, binance], fast=False)  # the hook's signal
    done = [False]

    def on_candle(c: Candle) -> None:
        if c.exchange == "binance" and not done[0]:
            done[0] = True
            runner.hub.publish(
                Signal(
                    exchange=c.exchange,
                    symbol=c.symbol,
                    ts=c.end,
                    ts_recv=c.end,
                    side="buy",
                    strength=1.0,
                    source="test",
                    price=c.close,
                )
            )

    runner.hub.subscribe(Candle, on_candle, name="test.signals")
    result = asyncio.run(runner.run())
    assert [(f.exchange, f.side, f.price) for f in result.fills] == [
        ("binance", "buy", Decimal(100))
    ]
    assert result.trades == []


@pytest.mark.parametrize("fast", [True, False])
def test_fills_exits_and_marks_are_on_the_tick(fast: bool) -> None:
    """With a half spread of float noise (5 bps of prices of two decimals), every quote's
    bid and ask are on the paper tick (0.01: the bid rounded down, the ask up), so every fill
    and every trade's entry and exit is a multiple of the tick; before, they were the float
    sums' reprs (100.13050000000001)."""
    cfg = settings(min_signal_strength=0.5)
    cfg = cfg.model_copy(
        update={
            "backtest": cfg.backtest.model_copy(
                update={"slippage_bps": 5.0, "infer_instrument": False}
            )
        }
    )
    result = asyncio.run(BacktestRunner(cfg, [random_walk(3000)], fast=fast).run())
    assert len(result.fills) > 20, "the walk should trade"
    tick = Decimal("0.01")
    off = [f.price for f in result.fills if f.price % tick != 0]
    assert not off, off[:5]
    assert all(t.entry_price % tick == 0 and t.exit_price % tick == 0 for t in result.trades)
