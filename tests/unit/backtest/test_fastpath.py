"""The fast candle path: batch indicator readings equal the streaming ones, the predicted
signal candles are the generator's, and a fast run is the slow run byte for byte."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

from cryptomon.backtest.data import CandleSeries, parse_candles
from cryptomon.backtest.fastlanes import FastLanes
from cryptomon.backtest.fastpath import indicator_fires, reading_at, readings, spec_totals
from cryptomon.backtest.runner import BacktestResult, BacktestRunner
from cryptomon.backtest.stats import result_document, summarize
from cryptomon.clock import ManualClock
from cryptomon.config import Settings
from cryptomon.events import Candle, Signal
from cryptomon.hub import Hub
from cryptomon.market.datafiles import read_rows
from cryptomon.trading.signals import SignalGenerator
from cryptomon.trading.signals.indicators import IndicatorSet
from cryptomon.trading.signals.scoring import spec_outcome, spec_score
from tests.conftest import REPO
from tests.unit.backtest.conftest import random_walk, settings

ALT_BTC = REPO.parent / "shared" / "data" / "freqtrade-testdata" / "ALT_BTC-1m.json.gz"


@pytest.fixture(scope="module")
def alt_btc() -> CandleSeries:
    """The shared ten days of one-minute ALT/BTC candles."""
    return parse_candles(
        read_rows(ALT_BTC), path=str(ALT_BTC), exchange="binance", symbol="ALT-BTC"
    )


def _bits(values: list[float]) -> bytes:
    return np.asarray(values, dtype=np.float64).tobytes()


def test_batch_readings_equal_the_streaming_indicators_on_the_freqtrade_series(
    alt_btc: CandleSeries,
) -> None:
    """Every indicator of the kernel is bit for bit the streaming IndicatorSet's, every row."""
    cfg = Settings().trading.indicators
    values = readings(alt_btc.close, cfg)
    streaming = IndicatorSet(cfg)
    differ = []
    for row, close in enumerate(alt_btc.close.tolist()):
        live = streaming.update(close)
        batch = reading_at(values, alt_btc.close, row)
        names = live.__slots__  # type: ignore[attr-defined]
        if _bits([getattr(live, n) for n in names]) != _bits([getattr(batch, n) for n in names]):
            differ.append(row)
    assert len(alt_btc) > 10_000
    assert differ == []
    assert np.isfinite(values[:, -1]).all()  # every indicator defined at the end


def _generator_rows(series: CandleSeries, cfg: Settings) -> list[int]:
    """Rows where the real SignalGenerator publishes an indicator signal, fed every candle."""
    hub = Hub()
    clock = ManualClock(float(series.ts[0]))
    SignalGenerator(config=cfg.trading, hub=hub, clock=clock)  # subscribes to the hub
    fired: list[float] = []
    hub.subscribe(Signal, lambda s: fired.append(s.ts), name="test.signals")
    for row in range(len(series)):
        end = float(series.ts[row]) + series.seconds
        clock.set(end)
        hub.publish(
            Candle(
                exchange=series.exchange,
                symbol=series.symbol,
                ts=end,
                ts_recv=end,
                interval=series.timeframe,
                start=float(series.ts[row]),
                end=end,
                open=float(series.open[row]),
                high=float(series.high[row]),
                low=float(series.low[row]),
                close=float(series.close[row]),
                volume=float(series.volume[row]),
            )
        )
    ends = (series.ts + series.seconds).tolist()
    return [ends.index(ts) for ts in fired]


@pytest.mark.parametrize("scoring", ["spec", "votes"])
def test_predicted_signal_candles_are_the_generators(alt_btc: CandleSeries, scoring: str) -> None:
    """indicator_fires names exactly the candles on which the live generator publishes."""
    cfg = Settings.model_validate({"trading": {"indicators": {"scoring": scoring}}})
    expected = _generator_rows(alt_btc, cfg)
    values = readings(alt_btc.close, cfg.trading.indicators)
    predicted = np.flatnonzero(
        indicator_fires(alt_btc.close, alt_btc.ts + alt_btc.seconds, values, cfg.trading)
    )
    assert len(expected) > 100
    assert predicted.tolist() == expected


def _run(cfg: Settings, series: list[CandleSeries], *, fast: bool) -> BacktestResult:
    runner = BacktestRunner(cfg, series, fast=fast)
    assert runner.fast is fast
    result = asyncio.run(runner.run())
    ledger = runner.pipe.ledger
    result.params["signals"] = {  # every signal the ledger kept (all on the slow path)
        x.id: (x.ts, x.ts_recv, x.side, x.strength, str(x.grade), x.price, x.source, x.reason)
        for x in ledger.signals.values()
    }
    result.params["dropped"] = ledger.dropped  # counted, not kept (none on the slow path)
    # the signal ids the ledger looks up (Ledger._cause: an order intent's)
    result.params["looked_up"] = [i.signal_id for i in ledger.intents.values()]
    result.params["cooldowns"] = dict(runner.pipe.signals._last_signal)
    if fast:  # every lane of the fast path was taken
        assert sum(runner.lanes.values()) <= len(series[0]) * len(series)
        assert min(runner.lanes.values()) > 0, runner.lanes
    else:
        assert runner.lanes == {"skipped": 0, "close": 0, "dropped": 0, "whole": 0}
    return result


def _fill(fill: Any) -> tuple[Any, ...]:
    """A fill without the paper venue's own ids (random per run)."""
    return (
        fill.ts,
        fill.symbol,
        fill.client_order_id,
        fill.side,
        str(fill.amount),
        str(fill.price),
        str(fill.fee),
        fill.fee_currency,
        fill.liquidity,
    )


def _same_run(fast: BacktestResult, slow: BacktestResult) -> None:
    assert fast.digest() == slow.digest()
    assert [_fill(f) for f in fast.fills] == [_fill(f) for f in slow.fills]
    assert [a.id for a in fast.anomalies] == [a.id for a in slow.anomalies]
    assert fast.signals == slow.signals
    # the fast path keeps the signals the engine saw, as the slow path made them, and only
    # counts those it drops: every signal an order intent names is kept, none is dropped
    kept, every = fast.params["signals"], slow.params["signals"]
    assert slow.params["dropped"] == 0
    assert fast.params["dropped"] > 0
    assert len(kept) + fast.params["dropped"] == len(every) == slow.signals
    assert kept == {k: every[k] for k in kept}
    assert fast.params["looked_up"] == slow.params["looked_up"]
    assert {s for s in fast.params["looked_up"] if s is not None} <= kept.keys()
    assert fast.params["cooldowns"] == slow.params["cooldowns"]  # the generator's state
    # the dropped signals are counted by the reason the engine gives the slow path's, and
    # the reasons add up to the signals that made neither an order nor a refusal
    assert fast.not_acted == slow.not_acted
    summary = summarize(slow)
    assert sum(summary["not_acted_by_reason"].values()) == summary["signals_not_acted"] > 0
    for name in ("equity_ts", "equity", "exposure"):
        assert getattr(fast, name).tobytes() == getattr(slow, name).tobytes(), name

    def document(result: BacktestResult) -> str:
        doc: dict[str, Any] = result_document(result)
        doc.pop("seconds", None)
        doc.pop("params", None)  # the signals and cooldowns, compared above
        doc.get("summary", {}).pop("seconds", None)
        return json.dumps(doc, sort_keys=True, default=str)

    assert document(fast) == document(slow)


def test_fast_path_is_the_slow_path_byte_for_byte_on_the_freqtrade_series(
    alt_btc: CandleSeries,
) -> None:
    """Ten real days, indicator strategy and anomaly rules: same orders, fills, equity, stats."""
    cfg = settings(min_signal_strength=0.5)
    fast, slow = _run(cfg, [alt_btc], fast=True), _run(cfg, [alt_btc], fast=False)
    assert len(slow.trades) >= 10
    assert {t.exit_reason for t in slow.trades} >= {"signal"}
    _same_run(fast, slow)


def test_fast_path_is_the_slow_path_with_stops_two_markets_and_anomalies() -> None:
    """Two generated markets with tight stops and take-profits and the anomaly rules on."""
    cfg = settings(min_signal_strength=0.5, stop_loss_percentage=0.4, take_profit_percentage=0.6)
    series = [random_walk(6000, seed=3), random_walk(6000, seed=5, symbol="ETH-BTC")]
    fast, slow = _run(cfg, series, fast=True), _run(cfg, series, fast=False)
    reasons = {t.exit_reason for t in slow.trades}
    assert {"stop_loss", "take_profit"} <= reasons
    assert slow.anomalies
    _same_run(fast, slow)


def test_fast_path_is_the_slow_path_when_the_daily_loss_limit_stops_entries() -> None:
    """A daily loss limit that halts entries on some days: same halts, same orders."""
    series = [random_walk(8000, seed=9)]
    loose = _run(settings(min_signal_strength=0.5), series, fast=True)
    cfg = settings(min_signal_strength=0.5, daily_loss_limit=15.0)
    fast, slow = _run(cfg, series, fast=True), _run(cfg, series, fast=False)
    assert len(slow.trades) < len(loose.trades)  # the limit held some entries back
    _same_run(fast, slow)


def test_the_config_key_chooses_the_path() -> None:
    """backtest.fast_path picks the path when the runner is not told; false drives every candle."""
    series = [random_walk(300, seed=4)]
    base = settings(min_signal_strength=0.5)
    slow_cfg = base.model_copy(
        update={"backtest": base.backtest.model_copy(update={"fast_path": False})}
    )
    assert BacktestRunner(base, series).fast is True
    runner = BacktestRunner(slow_cfg, series)
    assert runner.fast is False
    asyncio.run(runner.run())
    assert runner.lanes == {"skipped": 0, "close": 0, "dropped": 0, "whole": 0}
    bad = {"backtest": {"fast_path": "sometimes"}}
    with pytest.raises(ValueError, match="fast_path"):
        Settings.model_validate(bad)


def test_fast_path_is_the_slow_path_with_a_spread_and_one_market() -> None:
    """One market quoted with a half spread (bps and a share of the range): the walks over
    a safe position (close quotes valued in one pass, dropped signals) give the same run."""
    base = settings(min_signal_strength=0.5, stop_loss_percentage=3.0)
    cfg = base.model_copy(
        update={
            "backtest": base.backtest.model_copy(
                update={"slippage_bps": 5.0, "slippage_range_fraction": 0.05}
            )
        }
    )
    series = [random_walk(6000, seed=11)]
    fast, slow = _run(cfg, series, fast=True), _run(cfg, series, fast=False)
    assert len(slow.trades) >= 10
    assert float(slow.exposure.mean()) > 0.3  # a position open on a good share of candles
    _same_run(fast, slow)


def test_the_kernels_spec_scores_give_the_generators_outcome(alt_btc: CandleSeries) -> None:
    """A dropped signal's outcome comes from the kernel's buy/sell scores of its row: the
    generator's own scoring of that reading, on every scored row of the real series."""
    cfg = settings(min_signal_strength=0.5).trading.indicators
    values = readings(alt_btc.close, cfg)
    buy, sell = spec_totals(values, alt_btc.close, cfg)
    scored = 0
    for row in range(len(alt_btc)):
        reading = reading_at(values, alt_btc.close, row)
        if not reading.ready:
            continue
        assert spec_outcome(int(buy[row]), int(sell[row])) == spec_score(reading, cfg), row
        scored += 1
    assert scored > len(alt_btc) // 2


def test_runs_of_dropped_signals_driven_at_once_are_the_slow_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One market, idle between trades: the runs of dropped signals an idle walk drives at
    once (FastLanes._dropped_run: one deferred close quote, the clock moved as their quotes
    would, their signals batched) give the slow path's signals, orders and equity."""
    driven: list[int] = []
    run_of = FastLanes._dropped_run

    def counted(self: FastLanes, *args: Any) -> int:
        rows = run_of(self, *args)
        driven.append(rows)
        return rows

    monkeypatch.setattr(FastLanes, "_dropped_run", counted)
    cfg = settings(min_signal_strength=0.5)
    series = [random_walk(6000, seed=11)]
    fast, slow = _run(cfg, series, fast=True), _run(cfg, series, fast=False)
    assert sum(driven) > 100  # the runs carried many dropped signals
    assert max(driven) >= 3  # some of several signals
    _same_run(fast, slow)


@pytest.mark.parametrize(("spread", "limit"), [(False, None), (True, None), (False, 30.0)])
def test_dropped_signals_over_a_position_driven_at_once_are_the_slow_path(
    monkeypatch: pytest.MonkeyPatch, spread: bool, limit: float | None
) -> None:
    """One market holding a safe position: the leading dropped signals of a walk over it
    and the close quotes between them, driven at once (FastLanes._held_batch: valued in one
    pass, one deferred close quote, the clock moved as their quotes would, their signals
    batched), give the slow path's signals, orders, fills and equity, with and without a
    half spread, and with a daily loss limit that ends some batches early."""
    driven: list[tuple[int, int]] = []  # (rows driven, firing rows offered)
    batch_of = FastLanes._held_batch

    def counted(self: FastLanes, *args: Any) -> int:
        rows = batch_of(self, *args)
        driven.append((rows, len(args[2])))
        return rows

    monkeypatch.setattr(FastLanes, "_held_batch", counted)
    extra = {} if limit is None else {"daily_loss_limit": limit}
    cfg = settings(min_signal_strength=0.5, stop_loss_percentage=3.0, **extra)
    if spread:
        update = {"slippage_bps": 5.0, "slippage_range_fraction": 0.05}
        cfg = cfg.model_copy(update={"backtest": cfg.backtest.model_copy(update=update)})
    series = [random_walk(6000, seed=11)]
    fast, slow = _run(cfg, series, fast=True), _run(cfg, series, fast=False)
    # the batches carried many dropped signals (fewer near the limit), some several each
    assert sum(k for k, _ in driven) > (100 if limit is None else 20)
    assert max(k for k, _ in driven) >= 3
    assert any(k == 0 for k, _ in driven)  # some walks batched none (their first check failed)
    assert any(0 < k < n for k, n in driven)  # some batches ended before the walk's last signal
    _same_run(fast, slow)


@pytest.mark.parametrize("case", ["stop", "spread", "two_markets"])
def test_whole_path_candles_over_safe_positions_quoted_at_their_close_are_the_slow_path(
    monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """A candle group that takes the whole path (a signal the engine acts on, an anomaly)
    while every position is safe (its levels out of the candle's reach, no trailing stop,
    no open order) and the pipeline settled gets only its close quotes before its trades
    and candles (FastLanes._still): the same signals, orders, fills and equity as the slow
    path's four quotes per candle, with stops and take-profits that do fire on other
    candles, with a half spread, and with two markets."""
    seen: list[tuple[bool, bool]] = []  # (still, a position held in the group)
    still_of = FastLanes._still

    def counted(self: FastLanes, group: list[tuple[CandleSeries, int]]) -> bool:
        still = still_of(self, group)
        seen.append((still, not all(self.path.idle(s) for s, _ in group)))
        return still

    monkeypatch.setattr(FastLanes, "_still", counted)
    cfg = settings(min_signal_strength=0.5, stop_loss_percentage=0.4, take_profit_percentage=0.6)
    series = [random_walk(6000, seed=11)]
    if case == "spread":
        update = {"slippage_bps": 5.0, "slippage_range_fraction": 0.05}
        cfg = cfg.model_copy(update={"backtest": cfg.backtest.model_copy(update=update)})
    elif case == "two_markets":
        series = [random_walk(6000, seed=3), random_walk(6000, seed=5, symbol="ETH-BTC")]
    fast, slow = _run(cfg, series, fast=True), _run(cfg, series, fast=False)
    _same_run(fast, slow)
    assert {"stop_loss", "take_profit"} <= {t.exit_reason for t in slow.trades}
    assert sum(1 for still, held in seen if still and held) > 20  # held, close quotes only
    assert any(not still and held for still, held in seen)  # a reachable level: every quote
