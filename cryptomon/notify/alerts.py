"""Hub events -> :class:`Alert`: event type, category, severity, priority, dedup key, fields.

Priorities: P0 = act now (critical anomaly, kill switch, critical notice), P1 = soon (high
severity, stop-loss/take-profit exits, feed down, risk state changes), P2 = informational.
The tables below are the whole mapping; routing and templates only read the Alert.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote, urlencode

from cryptomon.config import split_symbol
from cryptomon.events import (
    Anomaly,
    Event,
    FeedStatus,
    Fill,
    Notice,
    OrderIntent,
    OrderOrigin,
    OrderState,
    OrderUpdate,
    RiskEvent,
    Severity,
    Signal,
)
from cryptomon.kinds import SignalGrade

Category = Literal["anomaly", "trading", "system"]
Priority = Literal["P0", "P1", "P2"]

PRIORITY_BY_SEVERITY: Mapping[Severity, Priority] = {
    Severity.CRITICAL: "P0",
    Severity.HIGH: "P1",
    Severity.MEDIUM: "P2",
    Severity.LOW: "P2",
}
RISK_STATE_SEVERITY: Mapping[str, Severity] = {"active": Severity.MEDIUM}
"""Risk state changes are P1, except back to normal (``active``), which is P2."""
RISK_SEVERITY: Mapping[str, Severity] = {
    "kill_switch": Severity.CRITICAL,
    "state_change": Severity.HIGH,
    "limit": Severity.HIGH,
    "rejected": Severity.MEDIUM,
}
NOTICE_LEVEL_SEVERITY: Mapping[str, Severity] = {
    "critical": Severity.CRITICAL,
    "error": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "info": Severity.LOW,
}
NOTICE_CODE_SEVERITY: Mapping[str, Severity] = {
    "daemon_start": Severity.MEDIUM,
    "daemon_stop": Severity.MEDIUM,
    "db_unreachable": Severity.HIGH,
    # the end of a P0/P1 condition reaches the channels that were told it began (P2, like a
    # feed's recovery); at their own level (info) they were below the default min_severity
    "db_recovered": Severity.MEDIUM,
    "venue_clock_ok": Severity.MEDIUM,
    "trading_lease": Severity.MEDIUM,
    "resource_threshold": Severity.MEDIUM,  # a warning, and its end: back within the bound
}
_NOTICE_PAIRS = (
    ("db_unreachable", "db_recovered"),
    ("venue_clock_skew", "venue_clock_ok"),
    ("trading_lease", "trading_lease"),  # held / not held: the level says which
)
NOTICE_ENDS: Mapping[str, str] = {
    **dict(_NOTICE_PAIRS),
    **{end: start for start, end in _NOTICE_PAIRS},
}
"""A notice of one code ends the state the other code reported: after an outage's recovery
the next outage (and after that, its recovery) is notified again, even inside
``dedup_window_s``."""
RISK_STATES: tuple[str, ...] = ("active", "reducing", "halted")
GRADE_SEVERITY: Mapping[str, Severity] = {
    SignalGrade.STRONG: Severity.MEDIUM,
    SignalGrade.MEDIUM: Severity.LOW,
}
"""Signals worth a notification by grade: strong ones reach channels at the default
``min_severity: medium``; weak and ignored signals are stored only."""
EXIT_ORIGINS: Mapping[str, str] = {
    "stop_loss": "stop-loss",
    "take_profit": "take-profit",
    "liquidation": "liquidation",  # the venue's forced closes (the paper broker's)
    "settlement": "settlement",
    "adl": "auto-deleveraging",
    "venue": "venue order",  # a live account's close the engine did not send (by hand)
}
_ORIGIN_MEMORY = 10_000
_LINK_CACHE = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One thing worth telling people, before routing."""

    event_type: str
    category: Category
    severity: Severity
    priority: Priority
    exchange: str
    symbol: str
    kind: str
    ts: float
    dedup_key: tuple[str, ...] | None
    clears: tuple[tuple[str, ...], ...] = ()
    """Dedup keys this alert ends (a recovery, a new state): forgotten by every channel."""
    ref_id: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def market(self) -> str:
        return f"{self.exchange} {self.symbol}".strip() or "cryptomon"


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso(ts: float) -> str:
    """``2024-01-01T00:00:00Z`` (UTC, whole seconds)."""
    return _iso_second(int(ts))


def feed_name(status: FeedStatus) -> str:
    """``binance BTC-USDT trades``; ``binance connection`` for the whole connection."""
    parts = [
        status.exchange,
        status.symbol,
        status.channel or ("" if status.symbol else "connection"),
    ]
    return " ".join(p for p in parts if p)


def priority_of(severity: Severity) -> Priority:
    return PRIORITY_BY_SEVERITY[severity]


class AlertBuilder:
    """Turns hub events into alerts. Remembers order origins to recognise SL/TP exits."""

    def __init__(self, *, api_base_url: str) -> None:
        self.api = api_base_url.rstrip("/")
        self._origins: OrderedDict[str, OrderOrigin] = OrderedDict()
        self._links: dict[tuple[str, str, str], str] = {}

    def set_api_base_url(self, api_base_url: str) -> None:
        """Links from now on start with ``api_base_url`` (a reload)."""
        self.api = api_base_url.rstrip("/")
        self._links.clear()

    def link(self, path: str, **query: Any) -> str:
        """``path`` under ``api_base_url``; "" (no link: the renderer writes none) when the
        daemon serves no API."""
        if not self.api:
            return ""
        q = {k: v for k, v in query.items() if v not in (None, "")}
        return f"{self.api}{path}" + (f"?{urlencode(q)}" if q else "")

    def _anomaly_link(self, exchange: str, symbol: str, kind: str) -> str:
        key = (exchange, symbol, kind)
        link = self._links.get(key)
        if link is None:
            if len(self._links) >= _LINK_CACHE:
                self._links.clear()
            link = self._links[key] = self.link(
                "/api/v1/anomalies", exchange=exchange, symbol=symbol, kind=kind
            )
        return link

    def order_link(self, client_order_id: str) -> str:
        return self.link(f"/api/v1/trading/orders/{quote(client_order_id, safe='')}")

    def _alert(
        self,
        event: Event,
        *,
        event_type: str,
        category: Category,
        severity: Severity,
        kind: str,
        dedup_key: tuple[str, ...] | None,
        link: str,
        ref_id: str | None = None,
        ts: float | None = None,
        clears: tuple[tuple[str, ...], ...] = (),
        **fields: Any,
    ) -> Alert:
        prio = priority_of(severity)
        when = event.ts if ts is None else ts
        common = {
            "event_type": event_type,
            "priority": prio,
            "severity": str(severity),
            "exchange": event.exchange,
            "symbol": event.symbol,
            "kind": kind,
            "time": iso(when),
            "link": link,
        }
        return Alert(
            event_type=event_type,
            category=category,
            severity=severity,
            priority=prio,
            exchange=event.exchange,
            symbol=event.symbol,
            kind=kind,
            ts=when,
            dedup_key=dedup_key,
            clears=clears,
            ref_id=ref_id,
            fields={**common, **fields},
        )

    def build(self, event: Event) -> Alert | None:
        """The alert for ``event``, or None when it is not worth a notification."""
        if isinstance(event, Anomaly):
            return self._anomaly(event)
        if isinstance(event, Signal):
            return self._signal(event)
        if isinstance(event, OrderIntent):
            self._remember(event.client_order_id, event.origin)
            return None
        if isinstance(event, OrderUpdate):
            return self._order_update(event)
        if isinstance(event, Fill):
            return self._fill(event)
        if isinstance(event, RiskEvent):
            return self._risk(event)
        if isinstance(event, Notice):
            return self._notice(event)
        return None

    def _remember(self, cid: str, origin: OrderOrigin) -> None:
        self._origins[cid] = origin
        self._origins.move_to_end(cid)
        while len(self._origins) > _ORIGIN_MEMORY:
            self._origins.popitem(last=False)

    def _anomaly(self, a: Anomaly) -> Alert:
        return self._alert(
            a,
            event_type="anomaly",
            category="anomaly",
            severity=Severity(a.severity),
            kind=a.kind,
            dedup_key=(a.exchange, a.symbol, a.kind),
            link=self._anomaly_link(a.exchange, a.symbol, a.kind),
            ref_id=a.id,
            value=a.value,
            threshold=a.threshold,
            reasons="; ".join(a.reasons) or "-",
            confidence=a.confidence,
            z_score=a.z_score,
            price_change_pct=a.price_change_pct,
            id=a.id,
        )

    def _signal(self, s: Signal) -> Alert | None:
        severity = GRADE_SEVERITY.get(str(s.grade)) if s.grade is not None else None
        if severity is None:
            return None
        return self._alert(
            s,
            event_type="signal",
            category="trading",
            severity=severity,
            kind="signal",
            dedup_key=(s.exchange, s.symbol, "signal", s.side),
            link=self.link("/api/v1/signals", exchange=s.exchange, symbol=s.symbol),
            ref_id=s.id,
            side=s.side,
            strength=s.strength,
            grade=str(s.grade),
            source=s.source,
            reason=s.reason or "-",
            price=s.price if s.price is not None else "-",
            id=s.id,
        )

    def _exit_kind(self, cid: str, reason: str) -> str | None:
        origin = self._origins.get(cid)
        if origin is not None and origin in EXIT_ORIGINS:
            return EXIT_ORIGINS[origin]
        return EXIT_ORIGINS.get(reason)

    def _order_update(self, u: OrderUpdate) -> Alert | None:
        exit_kind = self._exit_kind(u.client_order_id, u.reason)
        if u.state.is_terminal:
            self._origins.pop(u.client_order_id, None)
        if exit_kind is None or u.state != OrderState.FILLED:
            return None
        return self._alert(
            u,
            event_type="exit",
            category="trading",
            severity=Severity.HIGH,
            kind=exit_kind.replace("-", "_").replace(" ", "_"),
            dedup_key=None,
            link=self.order_link(u.client_order_id),
            ref_id=u.client_order_id,
            exit_kind=exit_kind,
            side=u.side,
            amount=u.filled or u.amount,
            avg_price=u.avg_price if u.avg_price is not None else u.price,
            client_order_id=u.client_order_id,
            reason=u.reason or exit_kind,
            unit=trade_unit(u.symbol),
            quote=split_symbol(u.symbol)[1],
        )

    def _fill(self, f: Fill) -> Alert | None:
        if self._origins.get(f.client_order_id) in EXIT_ORIGINS:
            return None  # the exit alert of its order update says it better
        return self._alert(
            f,
            event_type="fill",
            category="trading",
            severity=Severity.MEDIUM,
            kind="fill",
            dedup_key=None,
            link=self.order_link(f.client_order_id),
            ref_id=f.trade_id,
            side=f.side,
            amount=f.amount,
            price=f.price,
            fee=f.fee,
            fee_currency=f.fee_currency,
            liquidity=f.liquidity,
            client_order_id=f.client_order_id,
            unit=trade_unit(f.symbol),
            quote=split_symbol(f.symbol)[1],
        )

    def _risk(self, r: RiskEvent) -> Alert:
        severity = RISK_SEVERITY.get(r.kind, Severity.MEDIUM)
        if r.kind == "state_change":
            severity = RISK_STATE_SEVERITY.get(r.state, severity)
        if r.kind == "kill_switch":
            return self._alert(
                r,
                event_type="kill_switch",
                category="trading",
                severity=severity,
                kind="kill_switch",
                dedup_key=None,
                link=self.link("/api/v1/status"),
                state=r.state,
                reason=r.reason,
            )
        key = None if r.kind == "rejected" else (r.exchange, r.symbol, f"risk_{r.kind}", r.state)
        clears: tuple[tuple[str, ...], ...] = ()
        if r.kind == "state_change":  # halted -> active -> halted again: told again
            clears = tuple(
                (r.exchange, r.symbol, "risk_state_change", s) for s in RISK_STATES if s != r.state
            )
        return self._alert(
            r,
            event_type="risk",
            category="trading",
            severity=severity,
            kind=f"risk_{r.kind}",
            dedup_key=key,
            clears=clears,
            link=self.link("/api/v1/status"),
            ref_id=r.client_order_id,
            state=r.state,
            reason=r.reason,
            check=r.check or "-",
            client_order_id=r.client_order_id or "-",
        )

    def _notice(self, n: Notice) -> Alert:
        by_code = NOTICE_CODE_SEVERITY.get(n.code, Severity.LOW)
        by_level = NOTICE_LEVEL_SEVERITY.get(n.level, Severity.MEDIUM)
        return self._alert(
            n,
            event_type="notice",
            category="system",
            severity=max(by_code, by_level, key=lambda s: s.rank),
            kind=n.code,
            dedup_key=(n.exchange, n.symbol, f"notice:{n.code}", n.subject, n.level),
            clears=_notice_clears(n),
            link=self.link("/api/v1/status"),
            code=n.code,
            message=n.message,
            level=n.level,
        )

    def feed_down(self, status: FeedStatus, since: float, now: float) -> Alert:
        return self._alert(
            status,
            event_type="feed_down",
            category="system",
            severity=Severity.HIGH,
            kind="feed_down",
            # FeedWatch reports each down period once; a dedup key would hide the next period
            # after a recovery (the last message would say "recovered" while the feed is down)
            dedup_key=None,
            link=self.link("/api/v1/feeds"),
            feed=feed_name(status),
            ts=since,
            channel=status.channel,
            status=status.status,
            detail=status.detail,
            down_for_s=now - since,
        )

    def feed_recovered(self, status: FeedStatus, since: float, now: float) -> Alert:
        return self._alert(
            status,
            event_type="feed_recovered",
            category="system",
            severity=Severity.MEDIUM,
            kind="feed_recovered",
            dedup_key=None,
            link=self.link("/api/v1/feeds"),
            feed=feed_name(status),
            ts=now,
            channel=status.channel,
            down_for_s=now - since,
        )


NOTICE_LEVELS: tuple[str, ...] = ("info", "warning", "error", "critical")


def _notice_clears(n: Notice) -> tuple[tuple[str, ...], ...]:
    """The dedup keys a notice ends: its code's counterpart (an outage's recovery), and the
    same code and subject at another level (a resource back within its bound ends its
    warning, so the next crossing is told again)."""
    keys: list[tuple[str, ...]] = [
        (n.exchange, n.symbol, f"notice:{n.code}", n.subject, level)
        for level in NOTICE_LEVELS
        if level != n.level
    ]
    ended = NOTICE_ENDS.get(n.code)
    if ended is not None and ended != n.code:
        keys += [
            (n.exchange, n.symbol, f"notice:{ended}", n.subject, level) for level in NOTICE_LEVELS
        ]
    return tuple(keys)


def trade_unit(symbol: str) -> str:
    """What an order's amount counts, for its messages: a spot market's base (``BTC-USDT``:
    BTC); a derivative's amounts are the venue's contracts (``BTC-USDT-PERP``,
    ``BTC-USD-20261225``)."""
    parts = symbol.split("-")
    return "contracts" if len(parts) > 2 else parts[0]
