"""Signals: anomaly rules, indicator scoring, grades and webhook senders (DESIGN.md layout).

``SignalGenerator`` (:mod:`.generator`) turns anomalies and candles into graded ``Signal``
events; :mod:`.webhooks` turns external alerts into the same events.
"""

from cryptomon.trading.signals.generator import MarketKey, SignalExtra, SignalGenerator
from cryptomon.trading.signals.grades import grade_for, strength_of
from cryptomon.trading.signals.indicators import IndicatorSet, Reading, last_reading
from cryptomon.trading.signals.rules import evaluate_rule, rule_strength
from cryptomon.trading.signals.scoring import (
    Outcome,
    score,
    spec_outcome,
    spec_score,
    spec_scores,
    votes_of,
    votes_score,
)

__all__ = [
    "IndicatorSet",
    "MarketKey",
    "Outcome",
    "Reading",
    "SignalExtra",
    "SignalGenerator",
    "evaluate_rule",
    "grade_for",
    "last_reading",
    "rule_strength",
    "score",
    "spec_outcome",
    "spec_score",
    "spec_scores",
    "strength_of",
    "votes_of",
    "votes_score",
]
