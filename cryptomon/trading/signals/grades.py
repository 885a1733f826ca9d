"""Signal grades: ``strong`` / ``medium`` / ``weak`` / ``ignore`` from the strength.

The thresholds are ``trading.grades`` (default strong >= 0.8, medium >= 0.65, weak >= 0.5).
A source may set a floor: the specified indicator scoring's StrongBuy/StrongSell are always
``strong`` and its Buy/Sell at least ``medium``. ``ignore`` signals are stored, never traded.
"""

from __future__ import annotations

from cryptomon.config import GradeThresholds
from cryptomon.kinds import SignalGrade

GRADE_RANK: dict[SignalGrade, int] = {
    SignalGrade.IGNORE: 0,
    SignalGrade.WEAK: 1,
    SignalGrade.MEDIUM: 2,
    SignalGrade.STRONG: 3,
}

# the members bound once (an enum member read through its class is a slow lookup on 3.11)
_STRONG, _MEDIUM, _WEAK, _IGNORE = (
    SignalGrade.STRONG,
    SignalGrade.MEDIUM,
    SignalGrade.WEAK,
    SignalGrade.IGNORE,
)


def grade_for(
    strength: float, thresholds: GradeThresholds, *, at_least: SignalGrade | None = None
) -> SignalGrade:
    """The grade of ``strength`` by ``thresholds``, raised to ``at_least`` when given."""
    if strength >= thresholds.strong:
        grade = _STRONG
    elif strength >= thresholds.medium:
        grade = _MEDIUM
    elif strength >= thresholds.weak:
        grade = _WEAK
    else:
        grade = _IGNORE
    if at_least is not None and GRADE_RANK[at_least] > GRADE_RANK[grade]:
        return at_least
    return grade


def strength_of(grade: SignalGrade, thresholds: GradeThresholds) -> float:
    """The lowest strength of ``grade`` (a sender that gives a grade but no strength)."""
    return {
        SignalGrade.STRONG: thresholds.strong,
        SignalGrade.MEDIUM: thresholds.medium,
        SignalGrade.WEAK: thresholds.weak,
        SignalGrade.IGNORE: 0.0,
    }[grade]
