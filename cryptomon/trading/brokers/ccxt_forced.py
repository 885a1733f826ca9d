"""Orders placed on a live contract account by anyone but this engine: the venue's own
(liquidations, auto-deleveraging, a dated future's delivery) and the trades someone places by
hand on the same account (the venue's website or app).

Their fills are the account's like any other (ccxt ``fetch_my_trades``: each trade names its
``order``, the order its ``clientOrderId``). Binance (USD-M and COIN-M) marks the orders it
places itself by their client order id (its ``ORDER_TRADE_UPDATE`` and ``forceOrders``
documentation): ``autoclose-…`` is a liquidation, ``adl_autoclose`` an auto-deleveraging (the
same id for every such order), ``settlement_autoclose-…`` the settlement of a delisted or
delivered contract. An order with none of these marks and no client id of ours (a close by
hand, another venue's liquidation, which no venue documents alike) is a ``venue`` order: to the
daemon it is the same thing, a close it did not send.

:meth:`CcxtBroker.forced_closes <cryptomon.trading.brokers.ccxt.CcxtBroker.forced_closes>`
returns every finished order of the account's trades as a :class:`ForcedClose`; the
reconciliation keeps those that are not ours and reduce a position it holds, and adopts them
(:meth:`~cryptomon.trading.executor.OrderExecutor.adopt_forced`) before it compares positions.
On spot it lists the sales someone made by hand of the coins a position holds. An order that
goes further than the position (a trade by hand that flips a contract position; a sale of more
coins than the balance lost) is adopted only up to what it closed (:func:`part`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from cryptomon.events import Fill, OrderIntent, OrderState
from cryptomon.trading.brokers.base import BrokerOrder

ForcedOrigin = Literal["liquidation", "adl", "settlement", "venue"]
# (client order id prefix, origin, what it is), the longest prefix first
MARKS: tuple[tuple[str, ForcedOrigin, str], ...] = (
    ("settlement_autoclose", "settlement", "settlement"),
    ("adl_autoclose", "adl", "auto-deleveraging"),
    ("autoclose-", "liquidation", "liquidation"),
)
UNMARKED: tuple[ForcedOrigin, str] = ("venue", "venue order")
"""The origin and kind of an order not ours that carries no mark of the venue's own."""
VENUE_PREFIX = "venue-"
MAX_ID = 64  # the journal's client order id column
ZERO = Decimal(0)
FEE_STEP = Decimal("1e-18")  # an adopted part's fee share (the journal keeps 18 decimals)


@dataclass(frozen=True, slots=True)
class ForcedClose:
    """One order the engine did not send, as the engine adopts it: its intent (written to the
    journal like one of ours), the venue's view with its fills, why, and the client id the
    venue gave it ("" when none; one of ours when the order is ours: the reconciliation
    skips those)."""

    intent: OrderIntent
    order: BrokerOrder
    reason: str
    venue_client_id: str = ""


def forced_mark(client_order_id: str) -> tuple[ForcedOrigin, str] | None:
    """The origin and kind of a venue's own order by its client order id, None when it
    carries no mark of one."""
    for prefix, origin, kind in MARKS:
        if client_order_id.startswith(prefix):
            return origin, kind
    return None


def journal_id(venue_client_id: str, order_id: str) -> str:
    """The id the engine keys the order by: a marked client id as it is, with the venue's
    order id appended when it is one shared by many orders (``adl_autoclose``); any other
    order ``venue-<order id>`` (a client id given by hand or by another venue may repeat, be
    empty or be too long for the journal)."""
    if forced_mark(venue_client_id) is None:
        out = f"{VENUE_PREFIX}{order_id}"
        if len(out) > MAX_ID:
            out = VENUE_PREFIX + hashlib.sha256(order_id.encode()).hexdigest()[:32]
        return out
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
    id :func:`journal_id` gives), None when it has no fill. Its origin is the venue's mark,
    else ``venue``; its reason names the kind, the venue's ids, the fills' average price and
    their fee."""
    if not fills:
        return None
    origin, kind = forced_mark(venue_client_id) or UNMARKED
    cid = fills[0].client_order_id
    amount = sum((f.amount for f in fills), ZERO)
    cost = sum((f.amount * f.price for f in fills), ZERO)
    fee = sum((f.fee for f in fills), ZERO)
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
    named = venue_client_id or "no client id"
    reason = (
        f"{kind}: the venue's order {order_id} ({named}) {side} {amount} {symbol} at {avg}, "
        f"fee {fee} {fills[0].fee_currency}"
    )
    if origin == "venue":
        reason += " (not sent by cryptomon: a trade by hand on the account, or the venue's own)"
    return ForcedClose(intent, order, reason, venue_client_id)


def part(close: ForcedClose, amount: Decimal, beyond: str) -> ForcedClose:
    """The first ``amount`` of ``close`` (its fills in order, the last one taken cut and its
    fee pro rata; the cut fill keeps its trade id, so the rest is never counted later), its
    reason telling how much of the order was adopted and why not the rest (``beyond``)."""
    fills: list[Fill] = []
    left = amount
    for fill in close.order.fills:
        if left <= 0:
            break
        take = min(fill.amount, left)
        share = fill.fee * take / fill.amount
        if share != share.quantize(FEE_STEP):  # at most the journal's 18 decimals
            share = share.quantize(FEE_STEP)
        cut = fill if take == fill.amount else replace(fill, amount=take, fee=share)
        fills.append(cut)
        left -= take
    adopted = forced_close(
        exchange=close.intent.exchange,
        symbol=close.intent.symbol,
        order_id=close.order.exchange_order_id or "",
        venue_client_id=close.venue_client_id,
        fills=tuple(fills),
        now=close.intent.ts_recv,
    )
    assert adopted is not None  # amount > 0
    total = close.intent.amount
    reason = f"{adopted.reason}; {amount} of the order's {total} adopted: {beyond}"
    return replace(adopted, reason=reason)
