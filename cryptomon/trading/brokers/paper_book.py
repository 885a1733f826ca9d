"""The paper broker's matching data: its order record (and the venue view of it the engine
reads) and the opposite side of the live book an order takes liquidity from."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from decimal import Decimal

from cryptomon.decimals import float_decimal
from cryptomon.events import Fill, OrderIntent, OrderState
from cryptomon.market.state import MarketState
from cryptomon.trading.brokers.base import BrokerOrder

ZERO = Decimal(0)


d = float_decimal  # a float as the Decimal it prints as (remembered)


class PaperOrder:
    """One paper order: its intent, venue id, state and fills.

    ``fills`` grows through :meth:`add_fill` only, which keeps the running sums of the fills'
    amounts and costs (the same left-to-right sums ``sum(..., ZERO)`` gives, kept instead of
    summed again on every look)."""

    __slots__ = ("cost", "exchange_order_id", "fills", "fills_amount", "intent", "prior", "state")

    def __init__(self, intent: OrderIntent, exchange_order_id: str) -> None:
        self.intent = intent
        self.exchange_order_id = exchange_order_id
        self.state = OrderState.SUBMITTED
        self.fills: list[Fill] = []
        self.fills_amount = ZERO  # sum of the fills' amounts
        self.cost = ZERO  # sum of the fills' amount * price
        self.prior = ZERO  # filled before a restart (those fills live in the journal)

    @property
    def filled(self) -> Decimal:
        return self.prior + self.fills_amount

    def add_fill(self, fill: Fill) -> None:
        self.fills.append(fill)
        self.fills_amount = self.fills_amount + fill.amount
        self.cost = self.cost + fill.amount * fill.price

    def view(self, ts: float) -> BrokerOrder:
        """The order as the venue reports it at ``ts`` (epoch seconds)."""
        intent = self.intent
        filled = self.filled
        new = filled - self.prior
        cost = self.cost
        return BrokerOrder(
            client_order_id=intent.client_order_id,
            exchange=intent.exchange,
            symbol=intent.symbol,
            state=self.state,
            side=intent.side,
            type=intent.type,
            amount=intent.amount,
            filled=filled,
            price=intent.price,
            avg_price=cost / new if new > 0 else None,  # of the fills since the restart
            exchange_order_id=self.exchange_order_id,
            fills=tuple(self.fills),
            ts=ts,
        )


def book_levels(market: MarketState, intent: OrderIntent) -> Iterator[tuple[Decimal, Decimal]]:
    """Opposite side of the book, best first, with a newer BookTop taking precedence.

    Sizes are the venue's quantities, as the order's amount (contracts on a derivative):
    a snapshot's and a BookTop's sizes are base units with the venue's contracts beside them
    (``venue_asks``/``venue_bids``, ``ask_contracts``/``bid_contracts``) where the two differ.

    Lazy: a level becomes Decimals only when the order reaches it (a market order usually
    takes the first level of a deep snapshot)."""
    buy = intent.side == "buy"
    snap = market.snapshot(intent.exchange, intent.symbol)
    top = market.top(intent.exchange, intent.symbol)
    levels: Iterable[tuple[float, float]] = ()
    if snap is not None:
        levels = snap.venue_asks if buy else snap.venue_bids
    if top is not None and (snap is None or top.ts >= snap.ts):
        if buy:
            size = top.ask_size if top.ask_contracts is None else top.ask_contracts
            best = (top.ask, size)
        else:
            size = top.bid_size if top.bid_contracts is None else top.bid_contracts
            best = (top.bid, size)
        if best[0] > 0:
            limit = best[0]
            worse = (lv for lv in levels if (lv[0] > limit if buy else lv[0] < limit))
            levels = itertools.chain((best,), worse)
    return ((d(p), d(s)) for p, s in levels if p > 0 and s > 0)
