"""Order state machine, deterministic client order ids and the engine's order book.

States (``cryptomon.events.OrderState``)::

    new ─▶ submitted ─▶ partially_filled ─▶ filled
     │        │  ▲            │
     │        ▼  │            ▼
     ├──▶ unknown ◀──── cancel_pending ─▶ canceled
     └──▶ rejected / expired / canceled / filled (a venue may answer with a final state)

``unknown`` means "the placement may or may not have reached the venue"; it is settled only
by looking the order up by its client order id, never by sending it again. Terminal states
(filled, canceled, rejected, expired) accept no transition. Fills are applied once per
trade id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cryptomon.events import Fill, OrderIntent, OrderState, OrderUpdate
from cryptomon.trading.portfolio import money

TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    OrderState.NEW: frozenset(
        {
            OrderState.SUBMITTED,
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.CANCELED,
            OrderState.REJECTED,
            OrderState.EXPIRED,
            OrderState.UNKNOWN,
        }
    ),
    OrderState.SUBMITTED: frozenset(
        {
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.CANCEL_PENDING,
            OrderState.CANCELED,
            OrderState.REJECTED,
            OrderState.EXPIRED,
            OrderState.UNKNOWN,
        }
    ),
    OrderState.PARTIALLY_FILLED: frozenset(
        {
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.CANCEL_PENDING,
            OrderState.CANCELED,
            OrderState.EXPIRED,
            OrderState.UNKNOWN,
        }
    ),
    OrderState.CANCEL_PENDING: frozenset(
        {
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.CANCELED,
            OrderState.EXPIRED,
            OrderState.UNKNOWN,
            OrderState.CANCEL_PENDING,
        }
    ),
    OrderState.UNKNOWN: frozenset(
        {
            OrderState.SUBMITTED,
            OrderState.PARTIALLY_FILLED,
            OrderState.FILLED,
            OrderState.CANCEL_PENDING,
            OrderState.CANCELED,
            OrderState.REJECTED,
            OrderState.EXPIRED,
            OrderState.UNKNOWN,
        }
    ),
    OrderState.FILLED: frozenset(),
    OrderState.CANCELED: frozenset(),
    OrderState.REJECTED: frozenset(),
    OrderState.EXPIRED: frozenset(),
}

ORIGIN_CODES = {
    "signal": "s",
    "manual": "m",
    "stop_loss": "l",
    "take_profit": "p",
    "kill_switch": "k",
    "reconcile": "r",
    "liquidation": "q",
    "settlement": "x",
    "adl": "a",
    "venue": "v",
}
CLIENT_ID_PREFIX = "cm"
CLIENT_ID_LENGTH = 32  # Binance allows 36; leave room for venue-side prefixes


class IllegalTransition(ValueError):
    """An order state change the state machine does not allow."""

    def __init__(self, client_order_id: str, old: OrderState, new: OrderState) -> None:
        self.client_order_id = client_order_id
        self.old = old
        self.new = new
        super().__init__(f"order {client_order_id}: illegal transition {old} -> {new}")


def client_order_id(key: str, leg: str, origin: str = "signal") -> str:
    """Deterministic id: the same (key, leg) always gives the same 32-character id.

    ``key`` is what makes the order unique (a signal id, a manual request id, an entry's
    client order id for its protective legs); ``leg`` distinguishes the orders of one key.
    """
    digest = hashlib.sha256(f"{key}|{leg}".encode()).hexdigest()
    code = ORIGIN_CODES.get(origin, "x")
    head = f"{CLIENT_ID_PREFIX}{code}"
    return head + digest[: CLIENT_ID_LENGTH - len(head)]


def intent_fields(intent: OrderIntent) -> dict[str, Any]:
    """Every field of ``intent`` by name (to build a variant or an audit payload)."""
    return {name: getattr(intent, name) for name in OrderIntent.__dataclass_fields__}


def is_ours(client_order_id: str) -> bool:
    """Whether a venue order carries an id this engine generates."""
    return (
        len(client_order_id) == CLIENT_ID_LENGTH
        and client_order_id.startswith(CLIENT_ID_PREFIX)
        and client_order_id[2:3] in ORIGIN_CODES.values()
    )


@dataclass(slots=True)
class OrderRecord:
    """One order as the engine knows it (mutable; the events are the immutable history)."""

    intent: OrderIntent
    state: OrderState = OrderState.NEW
    filled: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)  # sum of fill amount * price
    # an inverse contract's fills: their average price is the contract-weighted harmonic mean
    # (what the venue reports, and the position's entry), from ``base`` = sum of amount / price
    inverse: bool = False
    base: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    exchange_order_id: str | None = None
    reason: str = ""
    updated: float = 0.0
    trade_ids: set[str] = field(default_factory=set)
    sent: float = 0.0  # clock time just before the placement request (0: not in this run)
    # a cancel was asked while the venue could not know the order yet (its placement on its
    # way, or its outcome unknown): canceled as soon as the venue has it
    cancel_requested: bool = False
    # looked up and not found past its recv window: the placement never reached the venue
    # (its client id is spent all the same); a refusal is the venue's answer, not this
    absent: bool = False

    @property
    def client_order_id(self) -> str:
        return self.intent.client_order_id

    @property
    def remaining(self) -> Decimal:
        return max(Decimal(0), self.intent.amount - self.filled)

    @property
    def avg_price(self) -> Decimal | None:
        if self.filled <= 0:
            return None
        if self.inverse and self.base > 0:
            return self.filled / self.base
        return self.cost / self.filled

    @property
    def is_open(self) -> bool:
        return not self.state.is_terminal

    def transition(self, new: OrderState, *, reason: str = "", ts: float = 0.0) -> bool:
        """Move to ``new``. Returns False when already there (except partial fills, which may
        repeat); raises :class:`IllegalTransition` when the machine forbids it."""
        if new == self.state and new != OrderState.PARTIALLY_FILLED:
            return False
        if new not in TRANSITIONS[self.state]:
            raise IllegalTransition(self.client_order_id, self.state, new)
        self.state = new
        if reason:
            self.reason = reason
        self.updated = ts
        return True

    def add_fill(self, fill: Fill) -> bool:
        """Count a fill once per trade id. Returns False for a duplicate."""
        if fill.trade_id in self.trade_ids:
            return False
        self.trade_ids.add(fill.trade_id)
        self.filled += fill.amount
        self.cost += fill.amount * fill.price
        if self.inverse and fill.price > 0:
            self.base += fill.amount / fill.price
        self.fees += fill.fee
        return True

    def update_event(self, ts: float, ts_recv: float) -> OrderUpdate:
        i = self.intent
        return OrderUpdate(
            exchange=i.exchange,
            symbol=i.symbol,
            ts=ts,
            ts_recv=ts_recv,
            client_order_id=i.client_order_id,
            state=self.state,
            side=i.side,
            type=i.type,
            amount=i.amount,
            filled=self.filled,
            price=i.price,
            avg_price=self.avg_price,
            exchange_order_id=self.exchange_order_id,
            reason=self.reason,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (Decimals as strings) for the API."""
        i = self.intent
        avg = self.avg_price
        return {
            "client_order_id": i.client_order_id,
            "exchange": i.exchange,
            "symbol": i.symbol,
            "side": i.side,
            "type": i.type,
            "amount": money(i.amount),
            "price": None if i.price is None else money(i.price),
            "stop_price": None if i.stop_price is None else money(i.stop_price),
            "state": str(self.state),
            "filled": money(self.filled),
            "avg_price": None if avg is None else money(avg),
            "fees": money(self.fees),
            "origin": i.origin,
            "reduce_only": i.reduce_only,
            "signal_id": i.signal_id,
            "exchange_order_id": self.exchange_order_id,
            "reason": self.reason,
            "created": i.ts,
            "updated": self.updated,
        }


class OrderBook:
    """Every order of this run by client order id, open ones first in queries."""

    def __init__(self, *, keep_closed: int = 1000) -> None:
        self._orders: dict[str, OrderRecord] = {}
        self._open: dict[str, OrderRecord] = {}  # may be open; terminal ones leave on open()
        self.keep_closed = keep_closed
        # every symbol an order of this run was for (trimmed orders' too): the markets the
        # periodic reconciliation lists open orders of, without walking the book each time
        self.symbols: set[str] = set()

    def __contains__(self, client_order_id: str) -> bool:
        return client_order_id in self._orders

    def __len__(self) -> int:
        return len(self._orders)

    def add(self, record: OrderRecord) -> OrderRecord:
        existing = self._orders.get(record.client_order_id)
        if existing is not None:
            return existing
        self._orders[record.client_order_id] = record
        self.symbols.add(record.intent.symbol)
        if record.is_open:
            self._open[record.client_order_id] = record
        self._trim()
        return record

    def get(self, client_order_id: str) -> OrderRecord | None:
        return self._orders.get(client_order_id)

    def open(self, exchange: str | None = None, symbol: str | None = None) -> list[OrderRecord]:
        """The open orders (of ``exchange``/``symbol``), oldest first; a terminal state is
        final, so closed orders are dropped from the open index here, never looked at again."""
        if not self._open:  # most calls: nothing may be open (no prune, no filter)
            return []
        self._prune()
        return [
            o
            for o in self._open.values()
            if (exchange is None or o.intent.exchange == exchange)
            and (symbol is None or o.intent.symbol == symbol)
        ]

    def all(self) -> list[OrderRecord]:
        return list(self._orders.values())

    def _prune(self) -> None:
        if not self._open:
            return
        closed = [k for k, o in self._open.items() if not o.is_open]
        for key in closed:
            del self._open[key]

    def _trim(self) -> None:
        """Forget the oldest closed orders beyond ``keep_closed``: a walk from the oldest that
        stops at the last one to forget, not over every kept order."""
        self._prune()
        excess = len(self._orders) - len(self._open) - self.keep_closed
        if excess <= 0:
            return
        doomed: list[str] = []
        for key, order in self._orders.items():
            if len(doomed) >= excess:
                break
            if not order.is_open:
                doomed.append(key)
        for key in doomed:
            del self._orders[key]
