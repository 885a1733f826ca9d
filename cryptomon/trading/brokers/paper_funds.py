"""The paper broker's order admission and spot account: whether an order may be placed (the
instrument's lots and minimums, then the funds it needs) and what a spot fill moves through
the balances per currency (perpetuals and futures check and settle through margin instead:
:mod:`cryptomon.trading.brokers.paper_margin`)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from cryptomon.config import split_symbol
from cryptomon.events import OrderIntent
from cryptomon.market.state import MarketState
from cryptomon.trading.brokers.base import OrderRejectedError
from cryptomon.trading.brokers.paper_book import book_levels
from cryptomon.trading.brokers.paper_margin import MarginBook
from cryptomon.trading.sizing import spec_problem

ZERO = Decimal(0)


def check_order(
    intent: OrderIntent,
    *,
    market: MarketState,
    margin: MarginBook | None,
    balances: dict[str, Decimal],
    price_of: Callable[[OrderIntent], Decimal],
    taker_fee: Decimal,
    allow_short: bool,
) -> None:
    """Raise :class:`OrderRejectedError` when a venue would refuse ``intent``: its spec
    (:func:`check_spec`), then its funds (contract margin through ``margin``, else the spot
    ``balances``). ``price_of`` is the order's price (limit, touch or mid), looked up at most
    once and only when a check needs it."""
    price = check_spec(intent, market, price_of)

    def priced() -> Decimal:
        return price if price is not None else price_of(intent)

    terms = margin.terms(intent.exchange, intent.symbol) if margin else None
    if terms is not None and margin is not None:
        margin.check(intent, terms, priced(), taker_fee)
        return
    buy = intent.side == "buy"
    walked = walk_cost(market, intent) if buy and intent.type == "market" else None
    check_spot_funds(
        balances,
        intent,
        priced() if buy and walked is None else ZERO,  # a spot sell needs no price
        taker_fee=taker_fee,
        allow_short=allow_short,
        cost=walked,
    )


def check_spec(
    intent: OrderIntent, market: MarketState, price_of: Callable[[OrderIntent], Decimal]
) -> Decimal | None:
    """Like a venue: an order that opens or grows a position is a whole number of the
    instrument's lots, at least its minimum quantity and order value (exits are not held
    to the minimums: a venue lets a position close). Returns the order's price when the
    check needed it (None when it did not look)."""
    spec = market.spec(intent.exchange, intent.symbol)
    if spec is None or intent.reduce_only:
        return None
    price = price_of(intent)
    problem = spec_problem(spec, intent.amount, price)
    if problem is not None:
        raise OrderRejectedError(intent.client_order_id, problem[1])
    return price


def walk_cost(market: MarketState, intent: OrderIntent) -> Decimal | None:
    """What a market order pays when it walks the book as the broker's matching will (what
    the book cannot fill expires and costs nothing); None without a book."""
    cost, left = ZERO, intent.amount
    for price, size in book_levels(market, intent):
        qty = min(left, size)
        cost += qty * price
        left -= qty
        if left <= 0:
            break
    return cost if cost > 0 else None


def check_spot_funds(
    balances: dict[str, Decimal],
    intent: OrderIntent,
    price: Decimal,
    *,
    taker_fee: Decimal,
    allow_short: bool,
    cost: Decimal | None = None,
) -> None:
    """Raise :class:`OrderRejectedError` when the account cannot pay for ``intent``: a buy
    needs the quote (``cost``, a market order's walk of the book, else price x amount; plus
    the fee), a sell the base unless shorting is allowed."""
    base, quote = split_symbol(intent.symbol)
    if intent.side == "buy":
        need = (cost if cost is not None else intent.amount * price) * (1 + taker_fee)
        if balances.get(quote, ZERO) < need and not intent.reduce_only:
            raise OrderRejectedError(
                intent.client_order_id,
                f"insufficient balance: {need} {quote} needed, "
                f"{balances.get(quote, ZERO)} available",
            )
    elif not allow_short and balances.get(base, ZERO) < intent.amount:
        raise OrderRejectedError(
            intent.client_order_id,
            f"insufficient balance: {intent.amount} {base} needed, "
            f"{balances.get(base, ZERO)} available",
        )


def settle_spot(
    balances: dict[str, Decimal], intent: OrderIntent, qty: Decimal, price: Decimal, fee: Decimal
) -> None:
    """Move a spot fill of ``qty`` at ``price`` (fee in the quote) through ``balances``."""
    base, quote = split_symbol(intent.symbol)
    notional = qty * price
    if intent.side == "buy":
        balances[quote] = balances.get(quote, ZERO) - notional - fee
        balances[base] = balances.get(base, ZERO) + qty
    else:
        balances[quote] = balances.get(quote, ZERO) + notional - fee
        balances[base] = balances.get(base, ZERO) - qty
