"""Order sizes in the venue's units, from the instrument spec (:mod:`cryptomon.market.
instruments`): the notional a signal's entry may risk, the quantity worth it (contracts, lot
rounding) and the one check of a size against the spec's lot, minimum quantity and minimum
order value, shared by the risk checks and the paper broker so both refuse with the same
reason."""

from __future__ import annotations

from decimal import Decimal

from cryptomon.events import OrderIntent
from cryptomon.market.instruments import InstrumentSpec
from cryptomon.trading.futures import qty_for_account
from cryptomon.trading.protection import round_down

ZERO = Decimal(0)


def notional_budget(
    *, equity: Decimal, stop_pct: Decimal, risk_pct: Decimal, max_notional: Decimal
) -> Decimal:
    """The quote value of a position losing ``risk_pct`` of ``equity`` at a stop ``stop_pct``
    away (``equity x risk% / stop%``), capped at ``max_notional``; 0 without equity or stop."""
    if equity <= 0 or stop_pct <= 0:
        return ZERO
    return min(equity * risk_pct / stop_pct, max_notional)


def venue_qty(
    spec: InstrumentSpec | None,
    notional: Decimal,
    price: Decimal,
    venue_lot: Decimal,
    account: str | None = None,
) -> Decimal:
    """The venue quantity worth ``notional`` of the account's currency ``account`` at
    ``price``: through the spec (``qty_for_notional``: contracts, its lot; an inverse
    contract's coin value when the account is kept in that coin) when known, rounded down to
    the venue's own lot too."""
    qty = notional / price if spec is None else qty_for_account(spec, notional, price, account)
    return round_down(qty, venue_lot)


def spec_problem(spec: InstrumentSpec, qty: Decimal, price: Decimal) -> tuple[str, str] | None:
    """``(check, reason)`` when ``qty`` at ``price`` is not a whole number of lots or is below
    the minimum quantity or order value (in the quote, a contract's value converted); None
    when the venue would take it."""
    if spec.round_qty(qty) != qty:
        return (
            "lot_size",
            f"amount {qty:f} is not a whole number of lots ({spec.lot_size:f}) of {spec.symbol}",
        )
    problem = spec.order_problem(qty, price)
    if problem is None:
        return None
    below_qty = spec.min_qty is not None and qty < spec.min_qty
    return ("min_amount" if below_qty else "min_notional", problem)


def intent_problem(
    spec: InstrumentSpec, intent: OrderIntent, price: Decimal
) -> tuple[str, str] | None:
    """``(check, reason)`` of an order the venue would refuse, in the order and words of the
    risk checks: an order that is not reduce-only must pass :func:`spec_problem` (an exit is
    not held to the minimums: a venue lets a position close), then its limit and stop prices
    must sit on the spec's tick. ``price`` values the order (its limit, else the touch)."""
    if not intent.reduce_only:
        problem = spec_problem(spec, intent.amount, price)
        if problem is not None:
            return problem
    tick = spec.tick_size
    for name, level in (("price", intent.price), ("stop price", intent.stop_price)):
        if level is not None and tick is not None and tick > 0 and level % tick != 0:
            return ("tick_size", f"{name} {level} is not a multiple of tick size {tick}")
    return None
