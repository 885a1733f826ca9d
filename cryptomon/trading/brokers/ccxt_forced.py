"""Orders a live venue placed itself on a contract account: liquidations, auto-deleveraging and
a dated future's delivery.

A venue closes a position on its own with an order of its own, whose fills are the account's
like any other (ccxt ``fetch_my_trades``). Binance (USD-M and COIN-M) marks those orders by
their client order id (its ``ORDER_TRADE_UPDATE`` and ``forceOrders`` documentation):
``autoclose-…`` is a liquidation, ``adl_autoclose`` an auto-deleveraging (the same id for every
such order), ``settlement_autoclose-…`` the settlement of a delisted or delivered contract.
An order carrying none of these marks (a trade someone placed by hand on the same account, the
market order a venue-side stop places) is not one of these: it stays a position mismatch.

:meth:`CcxtBroker.forced_closes <cryptomon.trading.brokers.ccxt.CcxtBroker.forced_closes>`
finds them; the reconciliation adopts them (:meth:`~cryptomon.trading.executor.OrderExecutor.
adopt_forced`) before it compares positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from cryptomon.events import Fill, OrderIntent, OrderState
from cryptomon.trading.brokers.base import BrokerOrder

ForcedOrigin = Literal["liquidation", "settlement"]
# (client order id prefix, origin, what it is), the longest prefix first
MARKS: tuple[tuple[str, ForcedOrigin, str], ...] = (
    ("settlement_autoclose", "settlement", "settlement"),
    ("adl_autoclose", "liquidation", "auto-deleveraging"),
    ("autoclose-", "liquidation", "liquidation"),
)
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class ForcedClose:
    """One order the venue placed itself, as the engine adopts it: its intent (written to the
    journal like one of ours), the venue's view with its fills, and why."""

    intent: OrderIntent
    order: BrokerOrder
    reason: str


def forced_mark(client_order_id: str) -> tuple[ForcedOrigin, str] | None:
    """The origin and kind of a venue's own order by its client order id, None when it
    carries no mark of one."""
    for prefix, origin, kind in MARKS:
        if client_order_id.startswith(prefix):
            return origin, kind
    return None


def journal_id(venue_client_id: str, order_id: str) -> str:
    """The id the engine keys the order by: the venue's client id, with the venue's order id
    appended when the client id is one shared by many orders (``adl_autoclose``)."""
    for prefix, _, _ in MARKS:
        if venue_client_id == prefix.rstrip("-"):
            return f"{venue_client_id}-{order_id}"
    return venue_client_id


def forced_close(
    *,
    exchange: str,
    symbol: str,
    order_id: str,
    venue_client_id: str,
    fills: tuple[Fill, ...],
    now: float,
) -> ForcedClose | None:
    """The :class:`ForcedClose` of the venue's order ``order_id`` (its ``fills`` carrying the
    id :func:`journal_id` gives), None when its client id has no mark or it has no fill."""
    mark = forced_mark(venue_client_id)
    if mark is None or not fills:
        return None
    origin, kind = mark
    cid = fills[0].client_order_id
    amount = sum((f.amount for f in fills), ZERO)
    cost = sum((f.amount * f.price for f in fills), ZERO)
    side = fills[0].side
    first = min(f.ts for f in fills)
    last = max(f.ts for f in fills)
    avg = cost / amount if amount else None
    intent = OrderIntent(
        exchange=exchange,
        symbol=symbol,
        ts=first,
        ts_recv=now,
        client_order_id=cid,
        side=side,
        type="market",
        amount=amount,
        reduce_only=True,
        origin=origin,
    )
    order = BrokerOrder(
        client_order_id=cid,
        exchange=exchange,
        symbol=symbol,
        state=OrderState.FILLED,
        side=side,
        type="market",
        amount=amount,
        filled=amount,
        avg_price=avg,
        exchange_order_id=order_id,
        fills=fills,
        ts=last,
    )
    reason = (
        f"{kind}: the venue's order {order_id} ({venue_client_id}) {side} {amount} {symbol} "
        f"at {avg}"
    )
    return ForcedClose(intent, order, reason)
