"""Anomaly rules (``trading.signal_rules``): an ``Anomaly`` -> a side, a strength, a reason.

- ``momentum`` trades with the price move (up -> buy, down -> sell);
- ``reversion`` trades against it (a spike up -> sell, a drop -> buy), usually with
  ``max_price_change_pct`` to skip crashes.

Conditions read the anomaly itself and the anomalies of the same market seen within
``window_s``: the price change comes from the newest one carrying ``price_change_pct``, the
volume z-score from the strongest ``volume`` anomaly. The strength is the rule's own
``strength`` or the anomaly's confidence / 100 (confidence is 0-100), so
``min_signal_strength`` gates rule signals like every other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cryptomon.events import Anomaly, Severity, Side

if TYPE_CHECKING:
    from cryptomon.config import SignalRuleConfig


class PastAnomaly(Protocol):
    """What a rule reads of the anomalies seen before: an ``Anomaly`` or a :class:`Recent`."""

    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def z_score(self) -> float | None: ...

    @property
    def price_change_pct(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Recent:
    """The fields of a past anomaly the rules and their window read (``t``: ``ts_detected``
    or ``ts``), kept per market instead of the whole ``Anomaly`` (its reasons, means and
    thresholds are ~3x the size and no rule reads them)."""

    id: str
    kind: str
    z_score: float | None
    price_change_pct: float | None
    t: float

    @classmethod
    def of(cls, anomaly: Anomaly) -> Recent:
        return cls(
            anomaly.id,
            anomaly.kind,
            anomaly.z_score,
            anomaly.price_change_pct,
            anomaly.ts_detected or anomaly.ts,
        )


def rule_strength(rule: SignalRuleConfig, anomaly: Anomaly) -> float:
    """The rule's fixed strength, else the anomaly's confidence / 100, in [0, 1]."""
    raw = rule.strength if rule.strength is not None else anomaly.confidence / 100.0
    return min(1.0, max(0.0, float(raw)))


def evaluate_rule(
    rule: SignalRuleConfig, anomaly: Anomaly, recent: Sequence[PastAnomaly]
) -> tuple[Side, float, str] | None:
    """(side, strength, reason) when ``rule`` fires on ``anomaly`` given ``recent`` ones."""
    if rule.kinds and anomaly.kind not in rule.kinds:
        return None
    if anomaly.severity.rank < Severity(rule.min_severity).rank:
        return None
    pool: list[PastAnomaly] = [anomaly, *[a for a in reversed(recent) if a.id != anomaly.id]]
    change = next((a.price_change_pct for a in pool if a.price_change_pct is not None), None)
    if change is None or change == 0:
        return None
    if abs(change) < rule.min_price_change_pct:
        return None
    if rule.max_price_change_pct is not None and abs(change) > rule.max_price_change_pct:
        return None
    z_scores = [a.z_score for a in pool if a.z_score is not None and a.kind == "volume"]
    volume_z = max(z_scores) if z_scores else None
    if rule.min_volume_z is not None and (volume_z is None or volume_z < rule.min_volume_z):
        return None
    up = change > 0
    side: Side = (
        ("buy" if up else "sell") if rule.style == "momentum" else ("sell" if up else "buy")
    )
    if side not in rule.sides:
        return None
    volume_text = f", volume z {volume_z:.2f}" if volume_z is not None else ""
    reason = f"{rule.name} ({rule.style}): {anomaly.kind} anomaly, price change {change:+.2f}%"
    return side, rule_strength(rule, anomaly), reason + volume_text
