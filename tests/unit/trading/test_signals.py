"""Anomaly rules and the indicator strategy turn hub events into Signals."""

from __future__ import annotations

import numpy as np
import pytest

from cryptomon.clock import ManualClock
from cryptomon.config import IndicatorStrategyConfig, SignalRuleConfig, TradingConfig
from cryptomon.events import Anomaly, Candle, Signal
from cryptomon.hub import Hub
from cryptomon.trading.signals import SignalGenerator, evaluate_rule, last_reading, score, votes_of
from cryptomon.trading.signals import generator as generator_module
from cryptomon.trading.signals.indicators import IndicatorSet
from cryptomon.trading.signals.scoring import Outcome, spec_outcome
from tests.unit.trading.helpers import EX, SYM, Collector, anomaly, trading_config

MOMENTUM = SignalRuleConfig(
    name="mom", style="momentum", min_price_change_pct=1.0, min_volume_z=3.0
)
REVERSION = SignalRuleConfig(
    name="rev",
    style="reversion",
    kinds=["price_change"],
    min_price_change_pct=2.0,
    max_price_change_pct=8.0,
    strength=0.7,
)


def test_momentum_follows_the_move_with_volume() -> None:
    """Price up with volume z >= 3 -> buy; price down -> sell; the reason says why."""
    clock = ManualClock()
    up = evaluate_rule(MOMENTUM, anomaly(clock, change=2.5, z=4.0), [])
    assert up is not None
    assert up[0] == "buy"
    assert up[1] == 0.9
    assert "price change +2.50%" in up[2]
    assert "volume z 4.00" in up[2]
    down = evaluate_rule(MOMENTUM, anomaly(clock, change=-2.5, z=4.0), [])
    assert down is not None
    assert down[0] == "sell"


def test_momentum_needs_enough_volume_and_move() -> None:
    """Low volume z or a small move: no signal."""
    clock = ManualClock()
    assert evaluate_rule(MOMENTUM, anomaly(clock, change=2.5, z=2.0), []) is None
    assert evaluate_rule(MOMENTUM, anomaly(clock, change=0.5, z=5.0), []) is None


def test_volume_z_may_come_from_a_recent_volume_anomaly() -> None:
    """A price_change anomaly fires with the z-score of a volume anomaly seen just before."""
    clock = ManualClock()
    vol = anomaly(clock, change=0.2, z=5.0, kind="volume")
    price = anomaly(clock, change=3.0, z=None, kind="price_change")
    fired = evaluate_rule(MOMENTUM, price, [vol])
    assert fired is not None
    assert fired[0] == "buy"
    assert "volume z 5.00" in fired[2]
    assert evaluate_rule(MOMENTUM, price, []) is None


def test_reversion_fades_the_move_within_bounds() -> None:
    """Mean reversion: a spike up -> sell, a drop -> buy; crashes beyond the cap are skipped."""
    clock = ManualClock()
    spike = evaluate_rule(REVERSION, anomaly(clock, change=3.0, kind="price_change"), [])
    assert spike is not None
    assert spike[0] == "sell"
    assert spike[1] == 0.7
    drop = evaluate_rule(REVERSION, anomaly(clock, change=-3.0, kind="price_change"), [])
    assert drop is not None
    assert drop[0] == "buy"
    assert evaluate_rule(REVERSION, anomaly(clock, change=-9.0, kind="price_change"), []) is None
    assert evaluate_rule(REVERSION, anomaly(clock, change=3.0, kind="volume"), []) is None


def test_generator_publishes_signal_linked_to_anomaly_for_traded_markets_only() -> None:
    """An anomaly on a traded market yields a Signal with anomaly_id; others are ignored."""
    hub, clock = Hub(), ManualClock()
    cfg = trading_config(exchange="binance", symbols=["BTC/USDT"])
    SignalGenerator(config=cfg, hub=hub, clock=clock)
    col = Collector(hub, Signal)
    a = anomaly(clock, change=2.0, z=4.0)
    hub.publish(a)
    hub.publish(anomaly(clock, change=2.0, z=4.0, symbol="ETH-USDT"))
    hub.publish(anomaly(clock, change=2.0, z=4.0, exchange="okx"))
    sigs = col.of(Signal)
    assert len(sigs) == 1
    assert sigs[0].anomaly_id == a.id
    assert sigs[0].source == "rule:momentum"
    assert sigs[0].side == "buy"
    assert sigs[0].symbol == SYM
    assert sigs[0].exchange == EX


def test_generator_rules_see_the_recent_anomalies_of_their_window_only() -> None:
    """A volume anomaly 60 s before a price move lends it its z-score (window 300 s); 400 s
    before, it does not; the generator keeps what the rules read, not the anomalies."""
    for gap, fires in ((60.0, True), (400.0, False)):
        hub, clock = Hub(), ManualClock()
        rule = MOMENTUM.model_copy(update={"window_s": 300.0})
        cfg = trading_config(exchange="binance", symbols=["BTC/USDT"], signal_rules=[rule])
        gen = SignalGenerator(config=cfg, hub=hub, clock=clock)
        col = Collector(hub, Signal)
        hub.publish(anomaly(clock, change=0.2, z=5.0, kind="volume"))
        clock.advance(gap)
        price = anomaly(clock, change=3.0, z=None, kind="price_change")
        hub.publish(price)
        assert [s.anomaly_id for s in col.of(Signal)] == ([price.id] if fires else [])
        kept = [entry for ring in gen._recent.values() for entry in ring]
        assert len(kept) == 2
        assert not any(isinstance(entry, Anomaly) for entry in kept)


def _candles(hub: Hub, closes: np.ndarray, interval: str = "1m", symbol: str = SYM) -> None:
    for n, c in enumerate(closes):
        start = 1_700_000_000.0 + 60 * n
        hub.publish(
            Candle(
                exchange=EX,
                symbol=symbol,
                ts=start + 60,
                ts_recv=start + 60,
                interval=interval,
                start=start,
                end=start + 60,
                open=c,
                high=c,
                low=c,
                close=float(c),
                volume=1.0,
            )
        )


UPTREND = 100 + np.arange(60, dtype=np.float64) * 0.3
DIP = np.concatenate([UPTREND, UPTREND[-1] - np.arange(1, 6, dtype=np.float64) * 1.5])


VOTES = IndicatorStrategyConfig(scoring="votes")


def test_indicator_votes_and_score_on_a_pullback_in_an_uptrend() -> None:
    """Uptrend then a sharp dip below the lower band: trend and Bollinger vote buy, 0.75."""
    reading = last_reading(DIP, VOTES)
    assert reading is not None
    assert reading.ready
    votes = votes_of(reading, VOTES)
    assert votes["sma"] == votes["ema"] == votes["macd"] == votes["bollinger"] == 1
    assert score(votes) == ("buy", 0.75)
    short = last_reading(DIP[:30], VOTES)
    assert short is not None
    assert not short.ready


def test_score_refuses_oscillators_against_the_trend() -> None:
    """A trend whose oscillators say overextended (close above the upper band) gives nothing."""
    votes = {"sma": 1.0, "ema": 1.0, "macd": 1.0, "rsi": -1.0, "bollinger": -1.0}
    assert score(votes) == (None, 0.0)
    assert score({"sma": -1.0, "ema": -1.0, "macd": -1.0, "rsi": -1.0, "bollinger": -1.0}) == (
        "sell",
        1.0,
    )
    assert score({"sma": 0.0, "ema": 0.0, "macd": 0.0, "rsi": 1.0, "bollinger": 1.0}) == (None, 0.0)


def _votes_config() -> TradingConfig:
    return trading_config(indicators=VOTES.model_dump())


def test_indicator_votes_strategy_emits_graded_signals_with_cooldown() -> None:
    """The pullback yields a medium buy caused by the indicators, the deeper dip a strong one
    (a better grade passes the cooldown), a third dip inside the cooldown nothing; the weaker
    uptrend signals before it are graded weak (stored, below the trading gate)."""
    hub, clock = Hub(), ManualClock()
    SignalGenerator(config=_votes_config(), hub=hub, clock=clock)
    col = Collector(hub, Signal)
    _candles(hub, np.concatenate([DIP, DIP[-1:] - 0.5, DIP[-1:] - 1.0]))
    gated = [s for s in col.of(Signal) if s.strength >= 0.65]
    assert [s.grade for s in gated] == ["medium", "strong"]
    sig = gated[0]
    assert sig.source == "indicators"
    assert sig.side == "buy"
    assert "bollinger +1" in sig.reason
    assert "RSI" in sig.reason
    assert sig.anomaly_id is None
    weaker = [s for s in col.of(Signal) if s.strength < 0.65]
    assert weaker
    assert {s.grade for s in weaker} <= {"weak", "ignore"}


def test_indicator_votes_strategy_below_threshold_stays_below_the_gate() -> None:
    """A plain uptrend or noise never reaches the default 0.65 strength."""
    hub, clock = Hub(), ManualClock()
    SignalGenerator(config=_votes_config(), hub=hub, clock=clock)
    col = Collector(hub, Signal)
    rng = np.random.default_rng(1)
    _candles(hub, UPTREND)
    _candles(hub, 100 + rng.normal(0, 0.05, 80), symbol="ETH-USDT")
    assert all(s.strength < 0.65 for s in col.of(Signal))


def test_indicator_strategy_ignores_other_intervals_and_open_candles() -> None:
    """5m candles (strategy on 1m) produce nothing."""
    hub, clock = Hub(), ManualClock()
    SignalGenerator(config=trading_config(), hub=hub, clock=clock)
    col = Collector(hub, Signal)
    _candles(hub, 100 - np.arange(100, dtype=np.float64), interval="5m")
    assert col.of(Signal) == []


def test_an_indicator_count_counts_and_logs_what_one_by_one_publishes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``indicator_count`` of a batch (in two parts) counts the signals ``indicator_signal``
    one close at a time publishes and leaves the same cooldowns, publishing nothing: a side
    held by its cooldown, a better grade passing it, a side after its cooldown, equal
    outcomes that are distinct instances. With info logging on it makes them for their log
    lines: the same signals, every field (id, reason, grade, price, times), in order."""
    cfg = trading_config()
    cooldown = cfg.indicators.cooldown_s
    strong_buy, buy, sell = spec_outcome(5, 0), spec_outcome(2, 1), spec_outcome(0, 4)
    assert strong_buy is not None
    assert buy is not None
    assert sell is not None
    buy_again = Outcome(buy.side, buy.strength, buy.label, buy.detail, buy.at_least)
    t0 = 1_700_000_000.0
    items = [
        (buy, t0, 100.5, 100.49, 41.26),
        (buy_again, t0 + 60.0, 101.25, 101.2, 38.04),  # held by the buy's cooldown
        (strong_buy, t0 + 120.0, 99.0, 99.01, 25.55),  # a better grade passes it
        (sell, t0 + 180.0, 102.0, 101.99, 71.0),
        (sell, t0 + 240.0, 103.0, 103.02, 75.25),  # held
        (buy, t0 + 120.0 + cooldown, 98.5, 98.5, 33.3),  # the cooldown is over
    ]

    def generator() -> tuple[SignalGenerator, IndicatorSet, Collector, ManualClock]:
        hub, clock = Hub(), ManualClock()
        gen = SignalGenerator(config=cfg, hub=hub, clock=clock)
        state = IndicatorSet(cfg.indicators)
        gen.use_indicators(EX, SYM, state)
        return gen, state, Collector(hub, Signal), clock

    one, state, one_col, clock = generator()
    for outcome, end, close, mid, rsi in items:
        clock.set(end)
        state.rsi.value = rsi
        one.indicator_signal(EX, SYM, outcome, end=end, close=close, mid=mid)
    made = one_col.of(Signal)
    assert [s.ts for s in made] == [t0, t0 + 120.0, t0 + 180.0, t0 + 120.0 + cooldown]

    counted, _, counted_col, _ = generator()
    assert counted.indicator_count(EX, SYM, items[:3]) == 2
    assert counted.indicator_count(EX, SYM, items[3:]) == 2
    assert counted_col.of(Signal) == []
    assert counted._last_signal == one._last_signal

    logged: list[Signal] = []
    monkeypatch.setattr(generator_module, "info_enabled", lambda: True)
    monkeypatch.setattr(generator_module, "_log_signal", logged.append)
    counted, _, counted_col, _ = generator()
    assert counted.indicator_count(EX, SYM, items) == 4
    assert logged == made
    assert counted_col.of(Signal) == []


def test_a_closed_candle_sent_again_or_late_is_read_once() -> None:
    """The same closed candle twice (a venue's own close after the feed closed it at the next
    candle's start), or an older one after a newer one, does not move the indicators: the
    signals are those of the series read once."""

    def signals(repeat: bool) -> list[tuple[str, float, float]]:
        hub, clock = Hub(), ManualClock()
        gen = SignalGenerator(config=_votes_config(), hub=hub, clock=clock)
        col = Collector(hub, Signal)
        closes = np.concatenate([DIP, DIP[-1:] - 0.5, DIP[-1:] - 1.0])
        for n in range(len(closes)):
            _candles_at(hub, closes, n)
            if repeat:
                _candles_at(hub, closes, n)  # the same candle again
                if n:
                    _candles_at(hub, closes, n - 1)  # an older one, late
        state = gen._indicators[(EX, SYM)]
        return [(s.side, s.strength, s.ts) for s in col.of(Signal)] + [
            ("count", float(state.update(0.0).count), 0.0)
        ]

    once = signals(repeat=False)
    assert len(once) > 1
    assert signals(repeat=True) == once


def _candles_at(hub: Hub, closes: np.ndarray, n: int) -> None:
    start = 1_700_000_000.0 + 60 * n
    c = float(closes[n])
    hub.publish(
        Candle(
            exchange=EX,
            symbol=SYM,
            ts=start + 60,
            ts_recv=start + 60,
            interval="1m",
            start=start,
            end=start + 60,
            open=c,
            high=c,
            low=c,
            close=c,
            volume=1.0,
        )
    )
