"""Candle-mode detection a chunk ahead: the same findings as a flush after every candle."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from cryptomon.backtest.candle_detect import (
    CHUNK,
    CandleAnomalies,
    CandleTrades,
    candle_trade,
    feed_trades,
)
from cryptomon.backtest.data import CandleSeries
from cryptomon.backtest.pipeline import Pipeline
from cryptomon.detect.price import NO_ROWS
from cryptomon.events import Anomaly
from tests.unit.backtest.conftest import T0, random_walk, settings


def two_markets(n: int) -> tuple[list[CandleSeries], tuple[np.ndarray, ...], np.ndarray]:
    """Two symbols with candles at the same minutes: the timeline and its group starts."""
    series = [random_walk(n, seed=3, symbol="ALT-BTC"), random_walk(n, seed=5, symbol="OTH-BTC")]
    times = np.repeat(series[0].ts, 2)
    which = np.tile(np.array([0, 1]), n)
    rows = np.repeat(np.arange(n), 2)
    return series, (times, which, rows), np.arange(0, 2 * n + 1, 2)


def fields(found: list[Anomaly]) -> list[dict[str, Any]]:
    """Every field of each anomaly but its random id."""
    return [{k: v for k, v in dataclasses.asdict(a).items() if k != "id"} for a in found]


def test_chunked_findings_equal_a_flush_after_every_candle() -> None:
    """Over more than a chunk, every finding, its fields and its candle match the live
    per-candle flush (price change and detection time included)."""
    n = CHUNK + 900
    series, timeline, starts = two_markets(n)
    ahead = CandleAnomalies(Pipeline(settings(), start=T0, candles=True), series, timeline, starts)
    chunked = [(g, a) for g in range(n) for a in ahead.due(g)]
    live = Pipeline(settings(), start=T0, candles=True)
    per_candle = []
    for g in range(n):
        now = float(ahead.closes[g])
        trades = [candle_trade(s, g, now) for s in series]
        per_candle += [(g, a) for a in live.detect(trades, now)]
    assert len(per_candle) > 10, "the walks should trip the detectors"
    assert [g for g, _ in chunked] == [g for g, _ in per_candle]
    assert fields([a for _, a in chunked]) == fields([a for _, a in per_candle])


def test_book_detectors_do_not_run_on_candles() -> None:
    """On candles the runner's quotes are not market data: no spread or quote detector."""
    on_candles = Pipeline(settings(), start=T0, candles=True).detectors.detectors
    on_books = Pipeline(settings(), start=T0).detectors.detectors
    assert {"book", "arbitrage", "divergence"} <= set(on_books)
    assert not {"book", "arbitrage", "divergence"} & set(on_candles)
    assert {"price", "volume", "whale"} <= set(on_candles)


def test_two_series_of_one_market_take_its_change_after_their_group() -> None:
    """Two series of the same market (one market id) in every group: a finding on the first
    one's candle carries the market's price change after the second one's (a flush at the
    group's close), as the per-candle flush gives it."""
    n = 1200
    series = [random_walk(n, seed=3), random_walk(n, seed=5)]
    times = np.repeat(series[0].ts, 2)
    timeline = (times, np.tile(np.array([0, 1]), n), np.repeat(np.arange(n), 2))
    starts = np.arange(0, 2 * n + 1, 2)
    ahead = CandleAnomalies(Pipeline(settings(), start=T0, candles=True), series, timeline, starts)
    chunked = [a for g in range(n) for a in ahead.due(g)]
    live = Pipeline(settings(), start=T0, candles=True)
    per_candle = []
    for g in range(n):
        now = float(ahead.closes[g])
        per_candle += live.detect([candle_trade(s, g, now) for s in series], now)
    assert len(per_candle) > 10, "the walks should trip the detectors"
    assert fields(chunked) == fields(per_candle)


def test_the_row_context_holds_only_while_a_chunk_is_read() -> None:
    """The engine's emitter takes its findings' time and price change from the chunk only
    while it reads one: afterwards the same engine's flush (Pipeline.detect) is the live one,
    its price detector keeping no change per row."""
    n = 300
    series, timeline, starts = two_markets(n)
    pipe = Pipeline(settings(), start=T0, candles=True)
    ahead = CandleAnomalies(pipe, series, timeline, starts)
    contexts: list[int] = []
    reading = ahead._row_context

    def spy(events: Any, row: int) -> tuple[float, float]:
        contexts.append(row)
        return reading(events, row)

    ahead._row_context = spy  # type: ignore[method-assign]
    assert [a for g in range(n) for a in ahead.due(g)]
    assert contexts
    assert pipe.detectors.emitter.row_context is None
    assert pipe.detectors.detectors["price"].pct_rows is NO_ROWS
    read = len(contexts)
    later = float(ahead.closes[-1]) + 60.0
    pipe.detect([candle_trade(s, n - 1, later) for s in series], later)
    assert len(contexts) == read


def test_feed_trades_ends_micro_batches_at_group_ends() -> None:
    """With the groups' ends, a micro-batch ends at the last group end that fits in
    ``batch_size`` rows (one group longer than that is cut), and the rows are all read."""
    n = 50
    series = [random_walk(n, seed=s, symbol=f"S{s}-BTC") for s in range(3)]
    which = np.tile(np.arange(3), n)
    rows = np.repeat(np.arange(n), 3)
    at = np.repeat(T0 + 60.0 * np.arange(1, n + 1), 3)
    trades = CandleTrades(series, which, rows, at)
    engine = Pipeline(settings(), start=T0, candles=True).detectors
    engine.config = engine.config.model_copy(update={"batch_size": 8})
    batches: list[int] = []
    run = engine.run_trade_columns
    engine.run_trade_columns = lambda cols, evs: (batches.append(len(evs)), run(cols, evs))
    sids = np.array([engine.symbol_id("binance", s.symbol) for s in series])
    feed_trades(engine, sids, trades, 0, len(trades), ends=list(range(3, 3 * n + 1, 3)))
    assert sum(batches) == 3 * n
    assert set(batches) == {6}
