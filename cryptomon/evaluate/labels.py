"""Labelled injections and how ``crypto-monitor evaluate`` scores the detectors against them.

An :class:`Injection` says what to inject (kind and magnitude); a :class:`Label` is one
injected event: its kind, market, start (exchange time) and the copy of the input it is in.
A label is *detected* by the first anomaly of its kind on its market in its copy with
``start <= ts <= start + grace_s`` that the untouched input did not produce as well (a real
event of the recording is never credited to an injection); its delay is that anomaly's
``ts - start``. Only the label's own kind counts: a level shift labelled ``ma_deviation`` is
not found by a ``price_change`` alert, nor a volatility burst by a volume one. Only markets
with at least :data:`MIN_LIVE_TRADES` live trades before the injection point are labelled,
past the warm-up of the kind (:func:`warmup_buckets`), and only at points the untouched input
leaves open (:func:`masked`): no alert of the injected kind on that market within
``cooldown_s`` before (the detector is silent there by design: the cooldown) nor within the
grace window after (it would be credited). How many points were masked is reported beside
the recall.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptomon.events import Anomaly
from cryptomon.kinds import AnomalyKind

MIN_LIVE_TRADES = 20


@dataclass(frozen=True, slots=True)
class Injection:
    """What to inject: a whale of ``magnitude`` x the median trade, a volume burst of
    ``magnitude`` x the bucket mean, a price jump of ``magnitude`` %, a volatility burst of
    prints ``magnitude`` % either side of the price (:func:`volatility_burst`), a level shift
    of ``magnitude`` % that the moving average lags (``ma_deviation``: the jump's persistent
    move, labelled for the moving-average detector), a book imbalance of ``magnitude`` (0-1)
    or a spread of ``magnitude`` x the current one."""

    kind: AnomalyKind
    magnitude: float

    @property
    def name(self) -> str:
        unit = "" if self.kind == AnomalyKind.BOOK_IMBALANCE else "x"
        if self.kind in PCT_KINDS:
            unit = "pct"
        return f"{self.kind.value}_{self.magnitude:g}{unit}"


# kinds whose magnitude is a % of the price
PCT_KINDS = frozenset({AnomalyKind.PRICE_CHANGE, AnomalyKind.VOLATILITY, AnomalyKind.MA_DEVIATION})
# kinds injected as a persistent move of the market (every later price moved by the factor)
MOVE_KINDS = frozenset({AnomalyKind.PRICE_CHANGE, AnomalyKind.MA_DEVIATION})

# the injections of the targets (and a jump beyond the default bad-print band)
PLAN: tuple[Injection, ...] = (
    Injection(AnomalyKind.WHALE, 50.0),
    Injection(AnomalyKind.WHALE, 150.0),
    Injection(AnomalyKind.VOLUME, 3.0),
    Injection(AnomalyKind.VOLUME, 5.0),
    Injection(AnomalyKind.VOLUME, 10.0),
    Injection(AnomalyKind.PRICE_CHANGE, 5.0),
    Injection(AnomalyKind.PRICE_CHANGE, 15.0),  # beyond the bad-print band: a real move
    Injection(AnomalyKind.VOLATILITY, 0.1),  # 2-7 std of the recordings' 1 s returns
    Injection(AnomalyKind.VOLATILITY, 1.0),
    # between the moving average's 3 % and the price change's 5 % (the defaults)
    Injection(AnomalyKind.MA_DEVIATION, 4.0),
    Injection(AnomalyKind.BOOK_IMBALANCE, 0.9),
    Injection(AnomalyKind.SPREAD, 20.0),
)

VOLATILITY_PRINTS = 10  # alternating prints of a volatility burst, then one at the price
VOLATILITY_STEP_S = 0.2


def volatility_burst(t0: float, price: float, pct: float) -> list[tuple[float, float, bool]]:
    """(time, price, buy) of a volatility burst at ``t0``: ``VOLATILITY_PRINTS`` prints
    alternating ``pct`` % above (taker buys) and below (taker sells) ``price``,
    ``VOLATILITY_STEP_S`` apart, then one at ``price``: the market swings without moving its
    level."""
    x = pct / 100.0
    out = [
        (t0 + VOLATILITY_STEP_S * i, price * (1.0 + x if i % 2 == 0 else 1.0 - x), i % 2 == 0)
        for i in range(VOLATILITY_PRINTS)
    ]
    out.append((t0 + VOLATILITY_STEP_S * VOLATILITY_PRINTS, price, True))
    return out


def warmup_buckets(kind: AnomalyKind, min_samples: int) -> int:
    """Buckets of time since a market's first trade before ``kind`` can fire: the declared
    warm-up (``min_samples``), one more for volatility (its window holds bucket-to-bucket
    returns: ``min_samples`` of them need ``min_samples + 1`` closes)."""
    return min_samples + 1 if kind == AnomalyKind.VOLATILITY else min_samples


@dataclass(frozen=True, slots=True)
class Label:
    """One injected event (ground truth)."""

    injection: Injection
    copy: int
    exchange: str
    symbol: str
    start: float


@dataclass
class Score:
    """Recall and delays of one injection."""

    labels: int = 0
    detected: int = 0
    delays: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "detected": self.detected,
            "recall": round(self.detected / self.labels, 4) if self.labels else None,
            "median_delay_s": round(statistics.median(self.delays), 3) if self.delays else None,
            "max_delay_s": round(max(self.delays), 3) if self.delays else None,
        }


AlertKey = tuple[str, str, str, float]


def alert_key(a: Anomaly) -> AlertKey:
    """What identifies an alert across two replays of the same input."""
    return (a.exchange, a.symbol, str(a.kind), a.ts)


def masked(
    untouched: Sequence[Anomaly],
    kind: AnomalyKind,
    exchange: str,
    symbol: str,
    t0: float,
    *,
    before_s: float,
    after_s: float,
) -> bool:
    """Whether the untouched input alerts ``kind`` on the market within ``before_s`` before
    ``t0`` (a cooldown the injection would fall into) or ``after_s`` after it."""
    return any(
        a.kind == kind
        and a.symbol == symbol
        and a.exchange == exchange
        and t0 - before_s <= a.ts <= t0 + after_s
        for a in untouched
    )


def score(
    labels: Iterable[Label],
    anomalies: dict[int, list[Anomaly]],
    grace_s: float | Callable[[AnomalyKind], float],
    *,
    untouched: Iterable[AlertKey] = (),
    masked_points: dict[str, int] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per injection name: labels, detected, recall, delays (``anomalies`` by copy); alerts
    whose key is in ``untouched`` (the input's own) never count; ``masked_points`` per name
    (points skipped, see :func:`masked`) is reported as ``masked``."""
    known = set(untouched)
    masked_points = masked_points or {}
    out: dict[str, Score] = {name: Score() for name in masked_points}
    for lb in labels:
        sc = out.setdefault(lb.injection.name, Score())
        sc.labels += 1
        grace = grace_s(lb.injection.kind) if callable(grace_s) else grace_s
        hits = [
            a.ts
            for a in anomalies.get(lb.copy, ())
            if a.kind == lb.injection.kind
            and a.exchange == lb.exchange
            and a.symbol == lb.symbol
            and lb.start <= a.ts <= lb.start + grace
            and alert_key(a) not in known
        ]
        if hits:
            sc.detected += 1
            sc.delays.append(min(hits) - lb.start)
    return {
        name: {**out[name].as_dict(), "masked": masked_points.get(name, 0)} for name in sorted(out)
    }


def alert_rates(
    anomalies: Sequence[Anomaly], symbol_hours: float, historical: Sequence[Anomaly] = ()
) -> dict[str, Any]:
    """Alerts on the untouched input: per kind, and per symbol-hour (live / historical)."""
    by_kind: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    for a in anomalies:
        by_kind[str(a.kind)] = by_kind.get(str(a.kind), 0) + 1
        by_severity[a.severity.value] = by_severity.get(a.severity.value, 0) + 1
    rate = len(anomalies) / symbol_hours if symbol_hours > 0 else None
    return {
        "symbol_hours": round(symbol_hours, 4),
        "live_alerts": len(anomalies),
        "live_per_symbol_hour": None if rate is None else round(rate, 3),
        "historical_alerts": len(historical),
        "by_kind": dict(sorted(by_kind.items())),
        "by_severity": dict(sorted(by_severity.items())),
    }
