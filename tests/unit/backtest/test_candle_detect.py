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
from cryptomon.clock import ManualClock
from cryptomon.events import Anomaly
from cryptomon.hub import Hub
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


def test_the_scout_builds_no_anomaly_and_finds_where_the_engine_publishes() -> None:
    """The scout's emitter hands each finding that passes its gate and cooldown to its
    ``found`` hook instead of publishing an anomaly: the same event times as the anomalies
    an engine without the hook publishes over the same trades."""
    n = 1500
    series, timeline, starts = two_markets(n)
    pipe = Pipeline(settings(), start=T0, candles=True)
    ahead = CandleAnomalies(pipe, series, timeline, starts)
    seen: list[Anomaly] = []
    ahead.scout.emitter.hub.subscribe(Anomaly, seen.append, name="test.scout")
    times: list[float] = []
    ahead.scout.emitter.found = lambda ev: times.append(ev.ts)
    plain = pipe.detector_engine(Hub(), ManualClock(0.0))
    published: list[Anomaly] = []
    plain.emitter.hub.subscribe(Anomaly, published.append, name="test.plain")
    per_group = np.diff(starts)
    at = np.repeat(ahead.closes, per_group)
    trades = CandleTrades(series, timeline[1], timeline[2], at)
    for engine in (ahead.scout, plain):
        feed_trades(engine, ahead._sids(engine), trades, 0, len(trades))
    assert len(published) > 10, "the walks should trip the detectors"
    assert not seen
    assert times == [a.ts for a in published]
