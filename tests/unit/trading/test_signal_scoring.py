"""The specified indicator scoring, one case per rule and per outcome; grades; rule strength."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cryptomon.backtest.fastpath import readings, spec_totals
from cryptomon.backtest.indicators_nb import (
    EMA_FAST,
    EMA_SLOW,
    FIELDS,
    LOWER,
    MACD,
    MACD_SIGNAL,
    PREV_MACD,
    PREV_MACD_SIGNAL,
    RSI,
    SMA_FAST,
    SMA_SLOW,
    UPPER,
)
from cryptomon.clock import ManualClock
from cryptomon.config import GradeThresholds, IndicatorStrategyConfig, SignalRuleConfig
from cryptomon.events import Candle, Signal
from cryptomon.hub import Hub
from cryptomon.trading.indicators_nb import bollinger_nb, ema_nb, macd_nb, rsi_nb, sma_nb
from cryptomon.trading.signals import (
    IndicatorSet,
    Reading,
    SignalGenerator,
    evaluate_rule,
    grade_for,
    spec_outcome,
    spec_score,
    spec_scores,
)
from cryptomon.trading.signals.scoring import votes_of
from tests.unit.trading.helpers import EX, SYM, Collector, anomaly, trading_config

CFG = IndicatorStrategyConfig()
NEUTRAL = Reading(
    close=100.0,
    rsi=50.0,
    macd=0.0,
    macd_signal=0.0,
    prev_macd=0.0,
    prev_macd_signal=0.0,
    upper=110.0,
    lower=90.0,
    sma_fast=100.0,
    sma_slow=100.0,
    ema_fast=100.0,
    ema_slow=100.0,
    count=500,
)

RULES = [
    # (case, changes to the neutral reading, buy points, sell points)
    ("rsi below 30", {"rsi": 25.0}, {"rsi": 2}, {}),
    ("rsi 30-40", {"rsi": 35.0}, {"rsi": 1}, {}),
    ("rsi exactly 30 is the +1 zone", {"rsi": 30.0}, {"rsi": 1}, {}),
    ("rsi above 70", {"rsi": 75.0}, {}, {"rsi": 2}),
    ("rsi 60-70", {"rsi": 65.0}, {}, {"rsi": 1}),
    ("rsi 40-60 neutral", {"rsi": 45.0}, {}, {}),
    (
        "macd crosses above",
        {"prev_macd": -0.1, "prev_macd_signal": 0.0, "macd": 0.2, "macd_signal": 0.1},
        {"macd": 1},
        {},
    ),
    (
        "macd crosses below",
        {"prev_macd": 0.1, "prev_macd_signal": 0.0, "macd": -0.2, "macd_signal": -0.1},
        {},
        {"macd": 1},
    ),
    (
        "macd above without a cross",
        {"prev_macd": 0.3, "prev_macd_signal": 0.0, "macd": 0.4, "macd_signal": 0.1},
        {},
        {},
    ),
    ("close near the lower band", {"close": 91.9}, {"bollinger": 1}, {}),
    ("close below the lower band", {"close": 88.0}, {"bollinger": 1}, {}),
    ("close just outside the near zone", {"close": 92.1}, {}, {}),
    ("close near the upper band", {"close": 108.5}, {}, {"bollinger": 1}),
    ("sma20 above sma50", {"sma_fast": 101.0}, {"sma": 1}, {}),
    ("sma20 below sma50", {"sma_fast": 99.0}, {}, {"sma": 1}),
    ("ema12 above ema26", {"ema_fast": 101.0}, {"ema": 1}, {}),
    ("ema12 below ema26", {"ema_fast": 99.0}, {}, {"ema": 1}),
]


@pytest.mark.parametrize(("case", "changes", "buy", "sell"), RULES, ids=[r[0] for r in RULES])
def test_each_spec_rule_scores_its_points(
    case: str, changes: dict[str, float], buy: dict[str, int], sell: dict[str, int]
) -> None:
    """Each rule of the specification adds its points to the buy or the sell score only."""
    got_buy, got_sell = spec_scores(dataclasses.replace(NEUTRAL, **changes), CFG)
    assert {k: v for k, v in got_buy.items() if v} == buy, case
    assert {k: v for k, v in got_sell.items() if v} == sell, case


def test_near_band_fraction_is_configurable() -> None:
    """With near_band_fraction 0.3 a close 5 above the lower band (width 20) is near it."""
    wide = IndicatorStrategyConfig(near_band_fraction=0.3)
    buy, _ = spec_scores(dataclasses.replace(NEUTRAL, close=95.0), wide)
    assert buy["bollinger"] == 1
    buy, _ = spec_scores(dataclasses.replace(NEUTRAL, close=95.0), CFG)
    assert buy["bollinger"] == 0


OUTCOMES = [
    # (buy score, sell score, label or None, side, strength)
    (4, 0, "StrongBuy", "buy", 1.0),
    (4, 2, "StrongBuy", "buy", 4 / 6),
    (3, 1, "Buy", "buy", 0.75),
    (2, 1, "Buy", "buy", 2 / 3),
    (1, 0, "Buy", "buy", 1.0),
    (5, 3, None, None, 0.0),  # 0.625 < 0.65
    (0, 4, "StrongSell", "sell", 1.0),
    (1, 3, "Sell", "sell", 0.75),
    (2, 2, None, None, 0.0),
    (0, 0, None, None, 0.0),
]


@pytest.mark.parametrize(("buy", "sell", "label", "side", "strength"), OUTCOMES)
def test_spec_outcomes(
    buy: int, sell: int, label: str | None, side: str | None, strength: float
) -> None:
    """StrongBuy/Buy/StrongSell/Sell from the scores: strength >= 0.65, score >= 4 if strong."""
    out = spec_outcome(buy, sell)
    if label is None:
        assert out is None
        return
    assert out is not None
    assert (out.label, out.side) == (label, side)
    assert out.strength == pytest.approx(strength)
    assert out.at_least == ("strong" if label.startswith("Strong") else "medium")


def test_spec_outcomes_are_shared_per_int_totals_and_equal_for_other_numbers() -> None:
    """The outcome of two int totals is made once; float or numpy totals still get their own
    (their detail prints them as they are)."""
    import numpy as np

    first = spec_outcome(4, 1)
    assert first is not None
    assert spec_outcome(4, 1) is first
    assert first.detail == "buy score 4, sell score 1"
    assert spec_outcome(np.int64(4), np.int64(1)) == first
    floated = spec_outcome(4.0, 1.0)  # type: ignore[arg-type]
    assert floated is not None
    assert floated.detail == "buy score 4.0, sell score 1.0"
    assert spec_outcome(4, 1) is first


def test_spec_score_of_an_oversold_uptrend_is_a_strong_buy() -> None:
    """RSI 25 (+2), SMA and EMA up (+2): buy score 4, sell 0 -> StrongBuy, strength 1."""
    reading = dataclasses.replace(NEUTRAL, rsi=25.0, sma_fast=101.0, ema_fast=101.0)
    out = spec_score(reading, CFG)
    assert out is not None
    assert (out.label, out.strength) == ("StrongBuy", 1.0)


GRADES = [
    (0.95, None, "strong"),
    (0.8, None, "strong"),
    (0.79, None, "medium"),
    (0.65, None, "medium"),
    (0.64, None, "weak"),
    (0.5, None, "weak"),
    (0.49, None, "ignore"),
    (0.0, None, "ignore"),
    (0.66, "strong", "strong"),
    (0.6, "medium", "medium"),
    (0.9, "medium", "strong"),
]


@pytest.mark.parametrize(("strength", "floor", "grade"), GRADES)
def test_grade_thresholds(strength: float, floor: str | None, grade: str) -> None:
    """Default thresholds strong >= 0.8, medium >= 0.65, weak >= 0.5; a floor raises a grade."""
    assert grade_for(strength, GradeThresholds(), at_least=floor) == grade  # type: ignore[arg-type]


def test_grade_thresholds_come_from_config() -> None:
    """trading.grades moves the thresholds; unordered thresholds are a config error."""
    custom = GradeThresholds(strong=0.9, medium=0.7, weak=0.3)
    assert grade_for(0.85, custom) == "medium"
    assert grade_for(0.35, custom) == "weak"
    with pytest.raises(ValueError, match="weak"):
        GradeThresholds(strong=0.6, medium=0.7, weak=0.5)


def test_incremental_indicators_equal_the_batch_kernels() -> None:
    """Every incremental indicator equals its numba batch kernel at every close."""
    rng = np.random.default_rng(7)
    closes = 30_000 + np.cumsum(rng.normal(0, 25, 400))
    state = IndicatorSet(CFG)
    readings = [state.update(float(c)) for c in closes]
    line, sig, _ = macd_nb(closes, 12, 26, 9)
    _, upper, lower = bollinger_nb(closes, 20, 2.0)
    expected = {
        "rsi": rsi_nb(closes, 14),
        "macd": line,
        "macd_signal": sig,
        "upper": upper,
        "lower": lower,
        "sma_fast": sma_nb(closes, 20),
        "sma_slow": sma_nb(closes, 50),
        "ema_fast": ema_nb(closes, 12),
        "ema_slow": ema_nb(closes, 26),
    }
    for name, want in expected.items():
        got = np.array([getattr(r, name) for r in readings])
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-6, equal_nan=True, err_msg=name)
    assert not readings[33].ready
    assert readings[60].ready


def _publish_closes(hub: Hub, closes: np.ndarray, first: int = 0) -> None:
    for n, c in enumerate(closes, start=first):
        start = 1_700_000_000.0 + 60 * n
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
                close=float(c),
                volume=1.0,
            )
        )


def test_spec_generator_waits_for_min_candles_and_grades_its_signals() -> None:
    """scoring: spec publishes nothing before 200 closes, then graded indicator signals
    (Buy/Sell at least medium) whose label is in the reason, each side once per cooldown."""
    hub, clock = Hub(), ManualClock()
    SignalGenerator(config=trading_config(), hub=hub, clock=clock)
    col = Collector(hub, Signal)
    walk = 100 + np.cumsum(np.random.default_rng(3).normal(0, 0.5, 400))
    _publish_closes(hub, walk[:199])
    assert col.of(Signal) == []
    _publish_closes(hub, walk[199:], first=199)
    sigs = col.of(Signal)
    assert sigs
    assert sigs[0].ts == 1_700_000_000.0 + 60 * 200
    assert all(s.grade in ("strong", "medium") for s in sigs)
    assert all(("Buy" if s.side == "buy" else "Sell") in s.reason for s in sigs)
    assert "(spec)" in sigs[0].reason
    assert len(sigs) < 400 // 5


def test_rule_strength_is_confidence_over_100_so_the_gate_filters_rule_signals() -> None:
    """A rule without a fixed strength takes confidence / 100: 90 -> 0.9, 40 -> 0.4 (graded
    ignore, below min_signal_strength 0.65); a rule's own strength wins."""
    clock = ManualClock()
    rule = SignalRuleConfig(name="m", min_price_change_pct=1.0)
    high = evaluate_rule(rule, anomaly(clock, change=2.0, confidence=90.0), [])
    low = evaluate_rule(rule, anomaly(clock, change=2.0, confidence=40.0), [])
    assert high is not None
    assert low is not None
    assert high[1] == pytest.approx(0.9)
    assert low[1] == pytest.approx(0.4)
    fixed = SignalRuleConfig(name="f", min_price_change_pct=1.0, strength=0.7)
    fired = evaluate_rule(fixed, anomaly(clock, change=2.0, confidence=40.0), [])
    assert fired is not None
    assert fired[1] == 0.7
    hub = Hub()
    SignalGenerator(config=trading_config(signal_rules=[rule.model_dump()]), hub=hub, clock=clock)
    col = Collector(hub, Signal)
    hub.publish(anomaly(clock, change=2.0, confidence=40.0))
    assert [(s.strength, s.grade) for s in col.of(Signal)] == [(0.4, "ignore")]


def test_max_candles_caps_the_spec_warm_up() -> None:
    """With max_candles 100 the spec scoring starts after 100 closes, not 200."""
    hub, clock = Hub(), ManualClock()
    cfg = trading_config(indicators={"max_candles": 100})
    SignalGenerator(config=cfg, hub=hub, clock=clock)
    col = Collector(hub, Signal)
    walk = 100 + np.cumsum(np.random.default_rng(3).normal(0, 0.5, 400))
    _publish_closes(hub, walk[:99])
    assert col.of(Signal) == []
    _publish_closes(hub, walk[99:150], first=99)
    assert col.of(Signal)


@pytest.mark.parametrize("price", [1.0, 1.0001, 1.1, 0.00163, 100.01, 65_000.0])
def test_a_flat_market_is_no_signal(price: float) -> None:
    """260 equal closes: no change at all, RSI is 50 (0/0, not 100 = overbought) in the
    incremental set, the batch kernel and the backtest's stream; the averages' float rounding
    (SMA20 - SMA50 ~1e-15 x the price) is no trend. Before: Sell 0.75 at 1.0, StrongSell 0.8
    at 1.0001 and 0.83 at 1.1 (RSI +2 sell, the SMA/EMA points by rounding)."""
    closes = np.full(260, price)
    state = IndicatorSet(CFG)
    reading = [state.update(float(c)) for c in closes][-1]
    assert reading.rsi == 50.0
    assert rsi_nb(closes, 14)[-1] == 50.0
    values = readings(closes, CFG)
    assert values[RSI, -1] == 50.0
    assert spec_scores(reading, CFG) == (
        {"rsi": 0, "macd": 0, "bollinger": 1, "sma": 0, "ema": 0},
        {"rsi": 0, "macd": 0, "bollinger": 1, "sma": 0, "ema": 0},
    )
    buy, sell = spec_totals(values, closes, CFG)
    assert (buy[-1], sell[-1]) == (1, 1)
    assert votes_of(reading, CFG) == {
        "rsi": 0.0,
        "macd": 0.0,
        "bollinger": 0.0,
        "sma": 0.0,
        "ema": 0.0,
    }
    for scoring in ("spec", "votes"):
        hub, clock = Hub(), ManualClock()
        SignalGenerator(
            config=trading_config(indicators={"scoring": scoring}), hub=hub, clock=clock
        )
        col = Collector(hub, Signal)
        _publish_closes(hub, closes)
        assert col.of(Signal) == [], scoring


def test_averages_apart_by_rounding_only_are_equal_but_a_real_gap_scores() -> None:
    """SMA/EMA/MACD comparisons ignore a gap of float rounding (1e-15 x the close), in the
    live scoring and the backtest's vectorized one alike; a gap of 1e-8 x the close (well
    under one tick) still scores."""
    for gap, points in ((1e-15, 0), (1e-8, 1)):
        d = 100.0 * gap
        up = dataclasses.replace(
            NEUTRAL,
            sma_fast=100.0 + d,
            ema_fast=100.0 + d,
            prev_macd=-d,
            macd=d,
        )
        buy, sell = spec_scores(up, CFG)
        assert (buy["sma"], buy["ema"], buy["macd"]) == (points,) * 3, gap
        assert (sell["sma"], sell["ema"], sell["macd"]) == (0, 0, 0), gap
        votes = votes_of(up, CFG)
        assert (votes["sma"], votes["ema"], votes["macd"]) == (float(points),) * 3, gap
        down = dataclasses.replace(
            NEUTRAL, sma_fast=100.0 - d, ema_fast=100.0 - d, prev_macd=d, macd=-d
        )
        buy, sell = spec_scores(down, CFG)
        assert (sell["sma"], sell["ema"], sell["macd"]) == (points,) * 3, gap
        assert (buy["sma"], buy["ema"], buy["macd"]) == (0, 0, 0), gap
        # the backtest's vectorized totals agree with the live points
        for r in (up, down):
            v = np.full((FIELDS, 1), np.nan)
            for row, name in (
                (RSI, "rsi"),
                (MACD, "macd"),
                (MACD_SIGNAL, "macd_signal"),
                (PREV_MACD, "prev_macd"),
                (PREV_MACD_SIGNAL, "prev_macd_signal"),
                (UPPER, "upper"),
                (LOWER, "lower"),
                (SMA_FAST, "sma_fast"),
                (SMA_SLOW, "sma_slow"),
                (EMA_FAST, "ema_fast"),
                (EMA_SLOW, "ema_slow"),
            ):
                v[row, 0] = getattr(r, name)
            b, s = spec_totals(v, np.array([r.close]), CFG)
            live_b, live_s = spec_scores(r, CFG)
            assert (int(b[0]), int(s[0])) == (sum(live_b.values()), sum(live_s.values()))
