"""Pre-trade risk: a pure function of (intent, portfolio view, market view, limits, state).

:func:`check` returns a :class:`Decision`; it reads nothing else and changes nothing, so it
can be property-tested in isolation. The engine builds the views, calls it before every
order (automatic, manual and protective alike) and publishes a ``RiskEvent`` per rejection.

Exposure is measured on the *projected* position: the current position plus the remaining
amount of open non-reduce-only orders plus this intent, valued at the limit price or the mid.
An order *increases* exposure when the projected absolute amount grows; only such orders
are subject to the size, count, exposure, leverage, short and daily-loss limits.

Risk states: ``active`` (everything allowed), ``reducing`` (only orders that reduce
exposure), ``halted`` (only reduce-only exits: stop loss, take profit, kill switch, manual).
"""

from __future__ import annotations

from decimal import Decimal, getcontext, localcontext

from cryptomon.decimals import plain_decimal as _d
from cryptomon.events import OrderIntent
from cryptomon.market.instruments import InstrumentSpec
from cryptomon.trading.brokers.base import MarketInfo
from cryptomon.trading.risk_exposure import exposure_checks, liquidation_check
from cryptomon.trading.risk_model import (
    APPROVED,
    CHECKS,
    HALTED_ORIGINS,
    PROTECTIVE_ORIGINS,
    RATE_EXEMPT_ORIGINS,
    ZERO,
    Decision,
    Limits,
    MarketView,
    PortfolioView,
    RiskState,
    increases_exposure,
    reject,
    signed,
)
from cryptomon.trading.sizing import spec_problem

__all__ = [
    "APPROVED",
    "CHECKS",
    "Decision",
    "Limits",
    "MarketView",
    "PortfolioView",
    "RiskState",
    "check",
    "increases_exposure",
    "signed",
]


def _multiple(value: Decimal, step: Decimal) -> bool:
    if step <= 0:
        return True
    # exact at any size: the default context's 28 digits raised DivisionImpossible (a
    # traceback, no answer) for a quotient of more digits, e.g. 1e40 base on a 0.001 lot;
    # a quotient the current context holds needs no local one (the same remainder)
    need = value.adjusted() - step.adjusted() + 2
    if need <= getcontext().prec:
        return (value % step) == 0
    with localcontext() as ctx:
        ctx.prec = need
        return (value % step) == 0


def check(
    intent: OrderIntent,
    portfolio: PortfolioView,
    market: MarketView,
    limits: Limits,
    state: RiskState = RiskState.ACTIVE,
) -> Decision:
    """Approve or reject ``intent``; the first failing check gives the reason."""
    growing = increases_exposure(intent, portfolio)
    refused = _state_checks(intent, market, limits, state, growing=growing)
    if refused is not None:
        return refused
    assert market.mid is not None  # checked by _state_checks
    mid = market.mid
    price = intent.price if intent.price is not None else mid
    problem = spec_problem(market.spec, intent.amount, price) if growing and market.spec else None
    refused = reject(*problem) if problem else None
    refused = refused or _order_checks(
        intent, portfolio, market.info, limits, mid=mid, price=price, spec=market.spec
    )
    if refused is not None:
        return refused
    key = (intent.exchange, intent.symbol)
    if intent.reduce_only:
        # net of closes already on their way: a stop firing while a signal's close is in
        # flight must not sell the position a second time (and open a short)
        position = portfolio.positions.get(key, ZERO) + portfolio.exiting.get(key, ZERO)
        reduces = (position > 0 and intent.side == "sell") or (
            position < 0 and intent.side == "buy"
        )
        if not reduces or intent.amount > abs(position):
            return reject(
                "reduce_only",
                f"reduce-only {intent.side} {_d(intent.amount)} does not reduce position "
                f"{_d(position)} (net of closes already working)",
            )
        return APPROVED
    refused = _flip_check(intent, portfolio, limits)
    if refused is not None:
        return refused
    if not growing:
        return APPROVED
    refused = liquidation_check(
        intent,
        market.contract,
        price,
        held=portfolio.positions.get(key, ZERO),
        entry=portfolio.entries.get(key),
    )
    if refused is not None:
        return refused
    return exposure_checks(
        intent, portfolio, market.info, limits, mid=mid, price=price, spec=market.spec
    )


def _flip_check(intent: OrderIntent, portfolio: PortfolioView, limits: Limits) -> Decision | None:
    """A sell through a long into a short (less than twice the long: its absolute size
    shrinks, so it does not count as growing) still opens a short."""
    if limits.allow_short or intent.side != "sell":
        return None
    key = (intent.exchange, intent.symbol)
    projected = (
        portfolio.positions.get(key, ZERO) + portfolio.pending.get(key, ZERO) + signed(intent)
    )
    if projected >= 0:
        return None
    return reject(
        "short_not_allowed",
        f"{intent.side} {_d(intent.amount)} would open a short "
        f"position ({_d(projected)}); shorting is disabled",
    )


def _state_checks(
    intent: OrderIntent, market: MarketView, limits: Limits, state: RiskState, *, growing: bool
) -> Decision | None:
    """Risk state, auto trading, feed freshness, a market price and a positive amount."""
    origin = intent.origin
    if state == RiskState.HALTED and not (intent.reduce_only and origin in HALTED_ORIGINS):
        return reject("halted", "trading is halted: only reduce-only exits are allowed")
    if state == RiskState.REDUCING and growing:
        return reject("reducing", "risk state is reducing: only orders that reduce exposure")
    if market.unmanaged and not intent.reduce_only:  # it would net against that position
        return reject("unmanaged_position", market.unmanaged)
    if origin == "signal" and not limits.auto_trading_enabled:
        return reject("auto_trading_disabled", "auto trading is disabled")
    # a delisted market never becomes live again: its protective exits still go through
    protective = market.delisted and intent.reduce_only and origin in PROTECTIVE_ORIGINS
    if market.stale and origin != "kill_switch" and not protective:
        return reject("stale_feed", f"market data for {intent.symbol} is stale")
    if growing and not market.spec_known:
        return reject(
            "unknown_instrument",
            f"no instrument spec for {intent.exchange} {intent.symbol}: its contract size "
            "and units are unknown, so no order is sized on it",
        )
    if market.mid is None or market.mid <= 0:
        return reject("no_market_price", f"no market price for {intent.symbol}")
    if intent.amount <= 0:
        return reject("invalid_amount", f"amount must be > 0, got {_d(intent.amount)}")
    return None


def _order_checks(
    intent: OrderIntent,
    portfolio: PortfolioView,
    info: MarketInfo | None,
    limits: Limits,
    *,
    mid: Decimal,
    price: Decimal,
    spec: InstrumentSpec | None = None,
) -> Decision | None:
    """The venue's lot, tick and minimums (the order value from the spec when known: a
    contract's value is not its quantity times the price); the limit price band; the rate."""
    if info is not None:
        if not _multiple(intent.amount, info.lot_size):
            return reject(
                "lot_size",
                f"amount {_d(intent.amount)} is not a multiple of lot size {_d(info.lot_size)}",
            )
        if intent.amount < info.min_amount:
            return reject(
                "min_amount", f"amount {_d(intent.amount)} < minimum {_d(info.min_amount)}"
            )
        for name, level in (("price", intent.price), ("stop price", intent.stop_price)):
            if level is not None and not _multiple(level, info.tick_size):
                return reject(
                    "tick_size",
                    f"{name} {_d(level)} is not a multiple of tick size {_d(info.tick_size)}",
                )
        if spec is None and intent.amount * price < info.min_notional:
            return reject(
                "min_notional",
                f"notional {_d(intent.amount * price)} < minimum {_d(info.min_notional)}",
            )
    if intent.price is not None and intent.type in ("limit", "stop_limit"):
        band = abs(intent.price - mid) / mid * 100
        if band > limits.price_band_percentage:
            return reject(
                "price_band",
                f"limit price {_d(intent.price)} is {band:.2f}% from mid "
                f"{_d(mid)} (band {_d(limits.price_band_percentage)}%)",
            )
    if intent.origin not in RATE_EXEMPT_ORIGINS and (
        portfolio.orders_last_minute >= limits.max_orders_per_minute
    ):
        return reject(
            "max_orders_per_minute",
            f"{portfolio.orders_last_minute} orders in the "
            f"last minute (max {limits.max_orders_per_minute})",
        )
    return None
