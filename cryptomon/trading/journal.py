"""What the engine needs from persistence, as a small protocol.

- :meth:`Journal.record_intent` is the write-before-send guarantee: it returns only after the
  intent is committed. Everything else the engine produces (updates, fills, positions, risk
  events, audit entries) is published on the hub and persisted by the store's queued writer.
- At startup the engine rebuilds itself from :meth:`Journal.fills` (positions, cash, trade
  statistics, the set of seen trade ids) and :meth:`Journal.open_orders` (orders whose last
  known state is not terminal: they are reconciled with the broker before any new order).
- A :class:`FundingJournal` also keeps the funding payments applied to contract positions
  (committed before they are applied); they are replayed in time order with the fills, so
  a paper account's funding survives a restart.
- An :class:`IntentJournal` reads back the intents of given orders, finished ones too: a
  position restored at startup is protected at its entry's own stop-loss and take-profit.
- A :class:`TrailJournal` reads back the latest trailed stop of each market
  (``ProtectionUpdate`` events, persisted by the store's writer like the positions): a
  position restored at startup keeps the stop it had trailed to.
- An :class:`EquityJournal` reads back the first equity snapshot of the UTC day, so a restart
  keeps the day's start for ``daily_loss_limit`` (the fills alone would restart the day at the
  equity after its first fill, forgetting a loss made before the restart).

:class:`MemoryJournal` keeps all of it in memory (tests, or a daemon without a database);
``cryptomon.store.journal.StoreJournal`` reads and writes the real database.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from cryptomon.events import (
    Fill,
    OrderIntent,
    OrderState,
    OrderUpdate,
    ProtectionUpdate,
    RiskEvent,
)
from cryptomon.hub import Hub
from cryptomon.trading.brokers.base import FundingPayment

FLATTEN_CHECK = "flatten"
"""The ``check`` of a ``kill_switch`` RiskEvent whose switch asked to close every position."""


@dataclass(frozen=True, slots=True)
class StoredOrder:
    """A persisted order: its intent and last known state."""

    intent: OrderIntent
    state: OrderState = OrderState.NEW
    exchange_order_id: str | None = None
    missing_fills: bool = False  # terminal, but its stored fills do not add up to ``filled``


@runtime_checkable
class Journal(Protocol):
    async def record_intent(self, intent: OrderIntent) -> None: ...

    async def open_orders(self) -> list[StoredOrder]: ...

    async def fills(self) -> list[Fill]: ...

    async def record_equity(self, **values: Any) -> None: ...

    async def last_risk_state(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class StoredFunding:
    """A funding payment as applied: ``price`` converted it to the account currency."""

    payment: FundingPayment
    price: Decimal


@runtime_checkable
class FundingJournal(Protocol):
    async def record_funding(self, funding: StoredFunding) -> None: ...

    async def funding_payments(self) -> list[StoredFunding]: ...


@runtime_checkable
class HaltJournal(Protocol):
    async def record_risk_event(self, event: RiskEvent) -> None:
        """Store ``event`` now (the kill switch's halt, not after the writer's batch age);
        storing the same event again (the writer's copy) is a no-op."""
        ...

    async def halt_flatten(self) -> bool:
        """Whether a kill switch of the current halt (the stored risk events since the last
        one not ``halted``) asked to flatten (its event's check is :data:`FLATTEN_CHECK`)."""
        ...


@runtime_checkable
class IntentJournal(Protocol):
    async def stored_intents(self, client_order_ids: Collection[str]) -> dict[str, OrderIntent]:
        """The stored intents of ``client_order_ids`` (whatever their state), by id; an id
        never written is left out."""
        ...


@runtime_checkable
class TrailJournal(Protocol):
    async def stored_trails(self) -> dict[tuple[str, str], ProtectionUpdate]:
        """The latest persisted trailed stop of each (exchange, symbol) (its time: when it
        was written)."""
        ...


@runtime_checkable
class EquityJournal(Protocol):
    async def first_equity_since(self, ts: float) -> Decimal | None: ...


class MemoryJournal:
    """In-memory journal; follows OrderUpdate and Fill events on the hub like the store does."""

    def __init__(self, *, hub: Hub | None = None) -> None:
        self.intents: dict[str, OrderIntent] = {}
        self.states: dict[str, tuple[OrderState, str | None]] = {}
        self._fills: dict[tuple[str, str], Fill] = {}
        self.writes = 0
        self.equity: list[dict[str, Any]] = []
        self.risk_state: str | None = None
        self.flatten_asked = False  # by a kill switch of the current halt
        self.funding: dict[tuple[str, str], StoredFunding] = {}
        self.trails: dict[tuple[str, str], ProtectionUpdate] = {}
        self.fail_next: Exception | None = None
        self._subs: list[Any] = []
        if hub is not None:
            self.follow(hub)

    def follow(self, hub: Hub) -> None:
        self._subs.append(hub.subscribe(OrderUpdate, self._on_update, name="memory-journal.u"))
        self._subs.append(hub.subscribe(Fill, self._on_fill, name="memory-journal.f"))
        self._subs.append(hub.subscribe(RiskEvent, self._on_risk, name="memory-journal.r"))
        self._subs.append(hub.subscribe(ProtectionUpdate, self._on_trail, name="memory-journal.t"))

    def close(self) -> None:
        for sub in self._subs:
            sub.close()
        self._subs.clear()

    def _on_update(self, ev: OrderUpdate) -> None:
        self.states[ev.client_order_id] = (ev.state, ev.exchange_order_id)

    def _on_trail(self, ev: ProtectionUpdate) -> None:
        self.trails[(ev.exchange, ev.symbol)] = ev

    async def stored_trails(self) -> dict[tuple[str, str], ProtectionUpdate]:
        return dict(self.trails)

    def _on_risk(self, ev: RiskEvent) -> None:
        self.risk_state = ev.state
        if ev.state != "halted":
            self.flatten_asked = False
        elif ev.kind == "kill_switch" and ev.check == FLATTEN_CHECK:
            self.flatten_asked = True

    async def halt_flatten(self) -> bool:
        return self.flatten_asked and self.risk_state == "halted"

    async def record_risk_event(self, event: RiskEvent) -> None:
        self._on_risk(event)

    async def last_risk_state(self) -> str | None:
        return self.risk_state

    def _on_fill(self, ev: Fill) -> None:
        self.add_fill(ev)

    def add_fill(self, fill: Fill) -> None:
        """Keep ``fill`` (once per venue trade id), as the store does."""
        self._fills.setdefault((fill.exchange, fill.trade_id), fill)

    async def record_intent(self, intent: OrderIntent) -> None:
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        self.intents.setdefault(intent.client_order_id, intent)
        self.writes += 1

    async def record_equity(self, **values: Any) -> None:
        self.equity.append(values)

    async def stored_intents(self, client_order_ids: Collection[str]) -> dict[str, OrderIntent]:
        return {c: self.intents[c] for c in client_order_ids if c in self.intents}

    async def first_equity_since(self, ts: float) -> Decimal | None:
        """The equity of the oldest snapshot at or after ``ts`` (None: none)."""
        later = [v for v in self.equity if v["ts"] >= ts]
        return min(later, key=lambda v: v["ts"])["equity"] if later else None

    async def open_orders(self) -> list[StoredOrder]:
        out = []
        for coid, intent in self.intents.items():
            state, xid = self.states.get(coid, (OrderState.NEW, None))
            if not state.is_terminal:
                out.append(StoredOrder(intent=intent, state=state, exchange_order_id=xid))
        return out

    async def fills(self) -> list[Fill]:
        return sorted(self._fills.values(), key=lambda f: f.ts)

    async def record_funding(self, funding: StoredFunding) -> None:
        pay = funding.payment
        self.funding.setdefault((pay.exchange, pay.payment_id), funding)

    async def funding_payments(self) -> list[StoredFunding]:
        return sorted(self.funding.values(), key=lambda f: f.payment.ts)
