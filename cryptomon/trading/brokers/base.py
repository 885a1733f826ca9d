"""The broker protocol every order venue implements (paper, ccxt).

The order engine talks only to this protocol. Amounts and prices are ``Decimal``.

Error contract:
- ``OrderOutcomeUnknown`` (a ``TemporaryError``): the request may or may not have reached the
  venue (timeout, 5xx, 429, dropped response). The engine marks the order ``unknown`` and
  settles it with :meth:`Broker.fetch_order` by client order id, never by resubmitting.
- ``OrderRejectedError`` (a ``FatalError`` for that order only): the venue refused it.
- ``TemporaryError`` from reads: retry with backoff.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, runtime_checkable

from cryptomon.errors import FatalError, TemporaryError
from cryptomon.events import Fill, OrderIntent, OrderState, slot_init


class OrderOutcomeUnknown(TemporaryError):
    """The placement's outcome is unknown; settle by lookup, never resubmit."""

    def __init__(self, client_order_id: str, detail: str, *, retry_after_s: float | None = None):
        self.client_order_id = client_order_id
        self.retry_after_s = retry_after_s
        super().__init__(f"order {client_order_id}: outcome unknown ({detail})")


SEND_GUARD: ContextVar[Callable[[], None] | None] = ContextVar("send_guard", default=None)
"""Set by a wrapper around one placement or cancel (the bus's lease, ``LeasedBroker``): a
broker that sends over HTTP calls it right before each request of that call leaves, after any
rate-limit wait, and the request is not sent when it raises. A check at the call's start alone
would let an order through that waited at the venue's gate past the wrapper's validity."""


URGENT: ContextVar[bool] = ContextVar("urgent_request", default=False)
"""True inside :func:`urgent`: the requests of a protective exit (its placement, the reads that
book its fills, its lookups). A broker that paces its requests on the client side (ccxt's
rate limiter, a queue in which a heavy read makes every later request wait) sends these at
once, ahead of the reads waiting there, and counts their weight against the requests after
them: a stop-loss must not wait seconds behind the periodic reconciliation's reads."""


def is_protective(intent: OrderIntent) -> bool:
    """Whether ``intent`` is one of the engine's exits: a reduce-only market order (a
    stop-loss or take-profit the engine watches, the kill switch's flatten, a close)."""
    return intent.reduce_only and intent.type == "market"


@contextmanager
def urgent(on: bool = True) -> Iterator[None]:
    """Mark the requests made inside as urgent (:data:`URGENT`) when ``on``."""
    if not on:
        yield
        return
    token = URGENT.set(True)
    try:
        yield
    finally:
        URGENT.reset(token)


class OrderRejectedError(FatalError):
    """The venue refused the order."""

    def __init__(self, client_order_id: str, reason: str) -> None:
        self.client_order_id = client_order_id
        self.reason = reason
        super().__init__(f"order {client_order_id} rejected: {reason}")


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketInfo:
    """Venue limits for one symbol (from exchangeInfo / ccxt markets)."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    lot_size: Decimal
    min_amount: Decimal = Decimal(0)
    min_notional: Decimal = Decimal(0)
    max_leverage: Decimal = Decimal(1)
    native_stop_loss: bool = False
    maintenance_margin_rate: Decimal | None = None  # venue's first bracket (contracts)


@slot_init  # every placement, lookup and poll answers with one
@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerOrder:
    """An order as the venue reports it."""

    client_order_id: str
    exchange: str
    symbol: str
    state: OrderState
    side: str
    type: str
    amount: Decimal
    filled: Decimal = Decimal(0)
    price: Decimal | None = None
    avg_price: Decimal | None = None
    exchange_order_id: str | None = None
    fills: tuple[Fill, ...] = field(default=())
    ts: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class FundingPayment:
    """One funding payment of a contract position, as the venue's income history reports it:
    ``amount`` in ``currency`` (the settle currency), positive = received."""

    payment_id: str
    exchange: str
    symbol: str
    ts: float
    amount: Decimal
    currency: str
    rate: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VenuePosition:
    """A venue's contract position of one market: ``contracts`` signed (negative = short),
    the ``unrealized`` PnL the venue reports for it in its ``settle`` currency (None when the
    venue reports none: a derivatives account's balance holds it all the same)."""

    contracts: Decimal
    unrealized: Decimal | None
    settle: str


@runtime_checkable
class FundingSource(Protocol):
    """A broker that reports funding payments (paper: from ``Funding`` events; live: the
    venue's income history)."""

    async def fetch_funding(
        self, symbol: str, since: float | None = None
    ) -> list[FundingPayment]: ...


@runtime_checkable
class Broker(Protocol):
    """An order venue. ``name`` is ``paper`` or ``ccxt:<exchange>``."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def market(self, symbol: str) -> MarketInfo: ...

    async def place_order(self, intent: OrderIntent) -> BrokerOrder: ...

    async def cancel_order(self, symbol: str, client_order_id: str) -> BrokerOrder: ...

    async def fetch_order(self, symbol: str, client_order_id: str) -> BrokerOrder | None: ...

    async def fetch_open_orders(self, symbol: str | None = None) -> list[BrokerOrder]: ...

    async def fetch_fills(self, symbol: str, since: float | None = None) -> list[Fill]: ...

    async def fetch_balances(self) -> dict[str, Decimal]: ...
