"""The fast path's prediction of the indicator signals the engine drops
(:class:`~cryptomon.backtest.dropped.DroppedSignals`): a signal the engine would act on, or
one whose settling could trip the daily loss limit, must never be predicted as dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from cryptomon.backtest.data import CandleSeries
from cryptomon.backtest.runner import BacktestRunner
from tests.unit.backtest.conftest import random_walk, settings

ROW = 40  # the row the signals below are put on


def _started(series: CandleSeries, test: Callable[[BacktestRunner], None], **trading: Any) -> None:
    """``test`` on a runner of ``series`` whose engine is started (trading active) and
    whose portfolio's day is the one of ``ROW``."""
    runner = BacktestRunner(settings(min_signal_strength=0.5, **trading), [series], fast=True)

    async def run() -> None:
        await runner.pipe.start()
        try:
            runner.engine.portfolio.snapshot(float(series.ts[ROW]))
            test(runner)
        finally:
            await runner.pipe.stop()

    asyncio.run(run())


def _signal(
    runner: BacktestRunner, series: CandleSeries, side: int, strength: float, rank: int
) -> Callable[..., bool]:
    """The kernel's columns with one indicator signal at ``ROW`` (side 1 buy / 2 sell)."""
    n = len(series)
    fires, sides = np.zeros(n, dtype=np.bool_), np.zeros(n, dtype=np.int64)
    strengths, ranks = np.zeros(n), np.zeros(n, dtype=np.int64)
    fires[ROW], sides[ROW], strengths[ROW], ranks[ROW] = True, side, strength, rank
    key = (series.exchange, series.symbol)
    runner.fast_lanes._fires[key] = (fires, sides, strengths, ranks)
    runner.fast_lanes.dropped._fire_lists.pop(key, None)
    return runner.fast_lanes.dropped.check


@pytest.mark.parametrize(
    ("side", "strength", "rank", "dropped"),
    [
        (1, 0.8, 2, False),  # a buy while flat: the engine enters, never dropped
        (2, 0.8, 2, True),  # a sell while flat without allow_short: dropped
        (1, 0.3, 2, True),  # below min_signal_strength: dropped
        (1, 0.8, 0, True),  # graded ignore: dropped
    ],
)
def test_a_flat_markets_signal_is_dropped_only_when_the_engine_ignores_it(
    side: int, strength: float, rank: int, dropped: bool
) -> None:
    series = random_walk(120, seed=4)

    def test(runner: BacktestRunner) -> None:
        check = _signal(runner, series, side, strength, rank)
        t = float(series.ts[ROW])
        assert check(t, [(series, ROW)], safe=True) is dropped
        assert check(t, [(series, ROW)]) is dropped  # idle: safe without the caller saying so

    _started(series, test)


def test_a_sell_while_flat_is_kept_when_shorts_are_allowed() -> None:
    series = random_walk(120, seed=4)

    def test(runner: BacktestRunner) -> None:
        check = _signal(runner, series, 2, 0.8, 2)
        assert check(float(series.ts[ROW]), [(series, ROW)], safe=True) is False

    _started(series, test, allow_short=True)


def test_a_dropped_signal_is_kept_near_the_daily_loss_limit_or_on_another_day() -> None:
    """The engine's poll while settling it could halt trading or roll the day: not dropped.
    ``held`` (a walk's equity whose last quote is unpublished) is what the check reads."""
    series = random_walk(120, seed=4)

    def test(runner: BacktestRunner) -> None:
        check = _signal(runner, series, 2, 0.8, 2)  # a sell while flat: the engine ignores it
        t = float(series.ts[ROW])
        start = runner.engine.portfolio.day_start_equity
        assert check(t, [(series, ROW)], safe=True) is True
        assert check(t, [(series, ROW)], safe=True, held=start - Decimal(50)) is True
        assert check(t, [(series, ROW)], safe=True, held=start - Decimal("99.5")) is False
        assert check(t, [(series, ROW)], safe=True, held=start - Decimal(150)) is False
        next_day = (t // 86400 + 1) * 86400
        assert check(next_day, [(series, ROW)], safe=True) is False

    _started(series, test, daily_loss_limit=100.0)


def test_the_publishing_block_routes_to_the_ledger_flushes_and_restores_even_on_errors() -> None:
    """Inside ``DroppedSignals.publishing`` the generator publishes to the ledger only; the
    block's end counts the batched signals while still routed there (flush), then routes
    them where they went before, also when the body or the flush raises, and nested blocks
    unwind in order."""
    series = random_walk(120, seed=4)

    def test(runner: BacktestRunner) -> None:
        dropped = runner.fast_lanes.dropped
        signals = runner.pipe.signals
        own = signals._out
        routed: list[object] = []
        flush = dropped.flush
        dropped.flush = lambda: routed.append(signals._out)  # type: ignore[method-assign]
        try:
            with dropped.publishing():
                ledger = signals._out
                assert ledger is not own
                with dropped.publishing():
                    assert signals._out is ledger
                assert signals._out is ledger  # the inner block restored the outer's route
            assert signals._out is own
            assert routed == [ledger, ledger]  # each flush while routed to the ledger
            with pytest.raises(RuntimeError, match="body"), dropped.publishing():
                raise RuntimeError("body")
            assert signals._out is own
            assert len(routed) == 3  # the body's error still flushed

            def failing() -> None:
                raise RuntimeError("flush")

            dropped.flush = failing  # type: ignore[method-assign]
            with pytest.raises(RuntimeError, match="flush"), dropped.publishing():
                pass
            assert signals._out is own
        finally:
            dropped.flush = flush  # type: ignore[method-assign]

    _started(series, test)
