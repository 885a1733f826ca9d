"""The paper broker's spot account: balances per currency, the funds an order needs and
what a fill moves (perpetuals and futures settle through margin instead:
:mod:`cryptomon.trading.brokers.paper_margin`)."""

from __future__ import annotations

from decimal import Decimal

from cryptomon.config import split_symbol
from cryptomon.events import OrderIntent
from cryptomon.trading.brokers.base import OrderRejectedError

ZERO = Decimal(0)


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
