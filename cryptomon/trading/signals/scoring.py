"""Indicator scoring on one :class:`Reading`: the specification's scores, or the vote.

``spec`` (``trading.indicators.scoring: spec``), the table of the README:

=============================  ===========================  ===========================
rule                           buy score                    sell score
=============================  ===========================  ===========================
RSI(14)                        < 30: +2, else < 40: +1      > 70: +2, else > 60: +1
MACD(12,26,9)                  line crosses above signal +1 line crosses below signal +1
Bollinger(20, 2)               close <= lower + f x width  close >= upper - f x width
SMA(20) vs SMA(50)             SMA20 > SMA50: +1            SMA20 < SMA50: +1
EMA(12) vs EMA(26)             EMA12 > EMA26: +1            EMA12 < EMA26: +1
=============================  ===========================  ===========================

(30/70 are ``rsi_oversold`` / ``rsi_overbought``, the +1 band is 10 points inside them; f is
``near_band_fraction``; two averages, or the MACD and its signal, within
:data:`FLAT_TOLERANCE` x the close of each other are equal: float rounding is no trend.)
For a buy the strength is buy / (buy + sell), for a sell sell / (buy + sell). StrongBuy:
strength >= 0.65 and buy >= 4; Buy: strength >= 0.65 and buy > sell; StrongSell /
Sell alike; otherwise no signal.

``votes`` (the earlier strategy): trend votes SMA, EMA and the MACD line's sign; contrarian
oscillator votes RSI beyond oversold/overbought and the close outside a band; each +1/-1/0.
With T the mean trend vote and O the mean oscillator vote, the side is the sign of T and the
strength (|T| + |O|) / 2; nothing when T is 0 or the oscillators point against the trend.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptomon.config import IndicatorStrategyConfig
from cryptomon.events import Side
from cryptomon.kinds import SignalGrade
from cryptomon.trading.signals.indicators import Reading

SPEC_MIN_STRENGTH = 0.65
SPEC_STRONG_SCORE = 4
RSI_MILD_BAND = 10.0  # the +1 RSI zone: 10 points inside oversold / overbought
# Averages and the MACD compare as equal within this fraction of the close: on a flat series
# the running sums leave them a few ulps apart (SMA20 - SMA50 ~1e-15 x the price, ~3e-14 after
# a million candles), and that rounding must not read as a trend or a crossing.
FLAT_TOLERANCE = 1e-11


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the scoring says about one close: a side, its strength and a label."""

    side: Side
    strength: float
    label: str  # StrongBuy, Buy, StrongSell, Sell (spec) or votes
    detail: str  # the scores or votes, for the signal's reason
    at_least: SignalGrade | None = None  # grade floor of the label


RULES = ("rsi", "macd", "bollinger", "sma", "ema")


def _points(r: Reading, cfg: IndicatorStrategyConfig) -> tuple[int, ...]:
    """Buy points per rule (in :data:`RULES` order), then sell points."""
    rsi = r.rsi
    buy_rsi = 2 if rsi < cfg.rsi_oversold else (1 if rsi < cfg.rsi_oversold + RSI_MILD_BAND else 0)
    over = cfg.rsi_overbought
    sell_rsi = 2 if rsi > over else (1 if rsi > over - RSI_MILD_BAND else 0)
    tol = FLAT_TOLERANCE * abs(r.close)
    prev_cross = r.prev_macd - r.prev_macd_signal
    cross = r.macd - r.macd_signal
    sma = r.sma_fast - r.sma_slow
    ema = r.ema_fast - r.ema_slow
    near = cfg.near_band_fraction * (r.upper - r.lower)
    return (
        buy_rsi,
        int(prev_cross <= tol and cross > tol),
        int(r.close <= r.lower + near),
        int(sma > tol),
        int(ema > tol),
        sell_rsi,
        int(prev_cross >= -tol and cross < -tol),
        int(r.close >= r.upper - near),
        int(sma < -tol),
        int(ema < -tol),
    )


def spec_scores(r: Reading, cfg: IndicatorStrategyConfig) -> tuple[dict[str, int], dict[str, int]]:
    """(buy points, sell points) per rule for one reading."""
    points = _points(r, cfg)
    n = len(RULES)
    return dict(zip(RULES, points[:n], strict=True)), dict(zip(RULES, points[n:], strict=True))


# (buy, sell) int totals -> their outcome: a handful of small scores, frozen outcomes
_SPEC_OUTCOMES: dict[tuple[int, int], Outcome | None] = {}


def spec_outcome(buy: int, sell: int) -> Outcome | None:
    """StrongBuy / Buy / StrongSell / Sell from the two totals, or None. The outcome of
    two int totals is made once and shared (frozen; one per indicator signal)."""
    if type(buy) is int and type(sell) is int:
        key = (buy, sell)
        try:
            return _SPEC_OUTCOMES[key]
        except KeyError:
            outcome = _SPEC_OUTCOMES[key] = _spec_outcome(buy, sell)
            return outcome
    return _spec_outcome(buy, sell)


def _spec_outcome(buy: int, sell: int) -> Outcome | None:
    total = buy + sell
    if total == 0:
        return None
    detail = f"buy score {buy}, sell score {sell}"
    for side, mine, theirs, name in (("buy", buy, sell, "Buy"), ("sell", sell, buy, "Sell")):
        strength = mine / total
        if strength < SPEC_MIN_STRENGTH or mine <= theirs:
            continue
        if mine >= SPEC_STRONG_SCORE:
            return Outcome(side, strength, f"Strong{name}", detail, SignalGrade.STRONG)  # type: ignore[arg-type]
        return Outcome(side, strength, name, detail, SignalGrade.MEDIUM)  # type: ignore[arg-type]
    return None


def spec_score(r: Reading, cfg: IndicatorStrategyConfig) -> Outcome | None:
    """The specification's outcome of one reading (see the module docstring)."""
    points = _points(r, cfg)
    n = len(RULES)
    return spec_outcome(sum(points[:n]), sum(points[n:]))


def _sign(x: float, tol: float = 0.0) -> float:
    return 1.0 if x > tol else (-1.0 if x < -tol else 0.0)


def votes_of(r: Reading, cfg: IndicatorStrategyConfig) -> dict[str, float]:
    """The five votes of the ``votes`` scoring on one reading."""
    rsi = 1.0 if r.rsi <= cfg.rsi_oversold else (-1.0 if r.rsi >= cfg.rsi_overbought else 0.0)
    band = 1.0 if r.close < r.lower else (-1.0 if r.close > r.upper else 0.0)
    tol = FLAT_TOLERANCE * abs(r.close)
    return {
        "rsi": rsi,
        "macd": _sign(r.macd, tol),
        "bollinger": band,
        "sma": _sign(r.sma_fast - r.sma_slow, tol),
        "ema": _sign(r.ema_fast - r.ema_slow, tol),
    }


TREND_VOTES = ("sma", "ema", "macd")
OSCILLATOR_VOTES = ("rsi", "bollinger")


def score(votes: dict[str, float]) -> tuple[Side | None, float]:
    """Votes -> (side, strength in [0, 1]); see the module docstring."""
    trend = sum(votes[k] for k in TREND_VOTES) / len(TREND_VOTES)
    oscillators = sum(votes[k] for k in OSCILLATOR_VOTES) / len(OSCILLATOR_VOTES)
    if trend == 0 or trend * oscillators < 0:
        return None, 0.0
    return ("buy" if trend > 0 else "sell"), min(1.0, (abs(trend) + abs(oscillators)) / 2)


def votes_score(r: Reading, cfg: IndicatorStrategyConfig) -> Outcome | None:
    """The ``votes`` outcome of one reading."""
    votes = votes_of(r, cfg)
    side, strength = score(votes)
    if side is None:
        return None
    detail = ", ".join(f"{k} {v:+.0f}" for k, v in votes.items())
    return Outcome(side, strength, "votes", detail)
