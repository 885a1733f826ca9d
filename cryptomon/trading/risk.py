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

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from cryptomon.events import OrderIntent
from cryptomon.market.instruments import InstrumentSpec
from cryptomon.trading.brokers.base import MarketInfo
from cryptomon.trading.futures import ContractTerms, stop_problem
from cryptomon.trading.sizing import spec_problem

if TYPE_CHECKING:
    from cryptomon.config import TradingConfig

ZERO = Decimal(0)
_Key = tuple[str, str]

PROTECTIVE_ORIGINS = frozenset({"stop_loss", "take_profit", "kill_switch", "reconcile"})
HALTED_ORIGINS = frozenset({"stop_loss", "take_profit", "kill_switch", "manual", "reconcile"})
# reduce-only exits that still go through on a delisted market: the position keeps its
# protection
PROTECTIVE_ORIGINS = frozenset({"stop_loss", "take_profit"})

# Every check name a rejection can carry (RiskEvent.check).
CHECKS = (
    "not_reconciled",  # engine-level: no order before startup reconciliation
    "market_info",  # engine-level: the venue's market limits could not be read
    "halted",
    "reducing",
    "auto_trading_disabled",
    "stale_feed",
    "unknown_instrument",
    "no_market_price",
    "invalid_amount",
    "lot_size",
    "min_amount",
    "tick_size",
    "min_notional",
    "price_band",
    "max_orders_per_minute",
    "reduce_only",
    "short_not_allowed",
    "daily_loss_limit",
    "max_open_positions",
    "max_position_size",
    "max_symbol_exposure",
    "max_total_exposure",
    "max_leverage",
    "liquidation_inside_stop",  # a contract entry whose liquidation estimate is inside its stop
)


class RiskState(StrEnum):
    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits :func:`check` enforces (quote amounts as Decimal)."""

    auto_trading_enabled: bool = False
    max_position_size: Decimal = Decimal(1000)
    max_open_positions: int = 3
    max_symbol_exposure: Decimal = Decimal(1000)
    max_total_exposure: Decimal = Decimal(3000)
    daily_loss_limit: Decimal = Decimal(500)
    max_orders_per_minute: int = 10
    price_band_percentage: Decimal = Decimal(5)
    max_leverage: Decimal = Decimal(1)
    allow_short: bool = False

    @classmethod
    def from_config(cls, cfg: TradingConfig) -> Limits:
        def d(x: float) -> Decimal:
            return Decimal(str(x))

        return cls(
            auto_trading_enabled=cfg.auto_trading_enabled,
            max_position_size=d(cfg.max_position_size),
            max_open_positions=cfg.max_open_positions,
            max_symbol_exposure=d(cfg.max_symbol_exposure),
            max_total_exposure=d(cfg.max_total_exposure),
            daily_loss_limit=d(cfg.daily_loss_limit),
            max_orders_per_minute=cfg.max_orders_per_minute,
            price_band_percentage=d(cfg.price_band_percentage),
            max_leverage=d(cfg.max_leverage),
            allow_short=cfg.allow_short,
        )


@dataclass(frozen=True, slots=True)
class PortfolioView:
    """What risk needs to know about the account.

    ``positions`` and ``pending`` are signed base amounts per (exchange, symbol); ``pending``
    sums the remaining amount of open orders that are not reduce-only, ``exiting`` that of
    open reduce-only market orders (closes already on their way; a resting stop or
    take-profit leg is not one). ``marks`` values each key for exposure (missing keys use
    their average price in ``avg_prices``).
    """

    equity: Decimal
    daily_pnl: Decimal = ZERO
    positions: Mapping[_Key, Decimal] = field(default_factory=dict)
    pending: Mapping[_Key, Decimal] = field(default_factory=dict)
    marks: Mapping[_Key, Decimal] = field(default_factory=dict)
    orders_last_minute: int = 0
    exiting: Mapping[_Key, Decimal] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MarketView:
    """The traded market: mid price (None when unknown), feed staleness, venue limits, and for
    a perpetual or future its contract terms (leverage, margin mode, maintenance rate)."""

    mid: Decimal | None
    stale: bool = False
    info: MarketInfo | None = None
    contract: ContractTerms | None = None
    spec_known: bool = True  # False: no instrument spec, units unknown, nothing is sized
    spec: InstrumentSpec | None = None  # lots, ticks and minimums in the venue's units
    delisted: bool = False  # the venue no longer lists it (stale for good)


@dataclass(frozen=True, slots=True)
class Decision:
    approved: bool
    reason: str = ""
    check: str = ""


APPROVED = Decision(True)


def _reject(check: str, reason: str) -> Decision:
    return Decision(False, reason, check)


def _multiple(value: Decimal, step: Decimal) -> bool:
    return step <= 0 or (value % step) == 0


def signed(intent: OrderIntent) -> Decimal:
    return intent.amount if intent.side == "buy" else -intent.amount


def increases_exposure(intent: OrderIntent, portfolio: PortfolioView) -> bool:
    """True when the intent grows the absolute projected position of its market."""
    if intent.reduce_only:
        return False
    key = (intent.exchange, intent.symbol)
    base = portfolio.positions.get(key, ZERO) + portfolio.pending.get(key, ZERO)
    return abs(base + signed(intent)) > abs(base)


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
    refused = _reject(*problem) if problem else None
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
            return _reject(
                "reduce_only",
                f"reduce-only {intent.side} {intent.amount} does not reduce position {position}"
                " (net of closes already working)",
            )
        return APPROVED
    if not growing:
        return APPROVED
    refused = _liquidation_check(intent, market.contract, price)
    if refused is not None:
        return refused
    return _exposure_checks(
        intent, portfolio, market.info, limits, mid=mid, price=price, spec=market.spec
    )


def _state_checks(
    intent: OrderIntent, market: MarketView, limits: Limits, state: RiskState, *, growing: bool
) -> Decision | None:
    """Risk state, auto trading, feed freshness, a market price and a positive amount."""
    origin = intent.origin
    if state == RiskState.HALTED and not (intent.reduce_only and origin in HALTED_ORIGINS):
        return _reject("halted", "trading is halted: only reduce-only exits are allowed")
    if state == RiskState.REDUCING and growing:
        return _reject("reducing", "risk state is reducing: only orders that reduce exposure")
    if origin == "signal" and not limits.auto_trading_enabled:
        return _reject("auto_trading_disabled", "auto trading is disabled")
    # a delisted market never becomes live again: its protective exits still go through
    protective = market.delisted and intent.reduce_only and origin in PROTECTIVE_ORIGINS
    if market.stale and origin != "kill_switch" and not protective:
        return _reject("stale_feed", f"market data for {intent.symbol} is stale")
    if growing and not market.spec_known:
        return _reject(
            "unknown_instrument",
            f"no instrument spec for {intent.exchange} {intent.symbol}: its contract size "
            "and units are unknown, so no order is sized on it",
        )
    if market.mid is None or market.mid <= 0:
        return _reject("no_market_price", f"no market price for {intent.symbol}")
    if intent.amount <= 0:
        return _reject("invalid_amount", f"amount must be > 0, got {intent.amount}")
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
            return _reject(
                "lot_size", f"amount {intent.amount} is not a multiple of lot size {info.lot_size}"
            )
        if intent.amount < info.min_amount:
            return _reject("min_amount", f"amount {intent.amount} < minimum {info.min_amount}")
        for name, level in (("price", intent.price), ("stop price", intent.stop_price)):
            if level is not None and not _multiple(level, info.tick_size):
                return _reject(
                    "tick_size", f"{name} {level} is not a multiple of tick size {info.tick_size}"
                )
        if spec is None and intent.amount * price < info.min_notional:
            return _reject(
                "min_notional", f"notional {intent.amount * price} < minimum {info.min_notional}"
            )
    if intent.price is not None and intent.type in ("limit", "stop_limit"):
        band = abs(intent.price - mid) / mid * 100
        if band > limits.price_band_percentage:
            return _reject(
                "price_band",
                f"limit price {intent.price} is {band:.2f}% from mid "
                f"{mid} (band {limits.price_band_percentage}%)",
            )
    if intent.origin not in PROTECTIVE_ORIGINS and (
        portfolio.orders_last_minute >= limits.max_orders_per_minute
    ):
        return _reject(
            "max_orders_per_minute",
            f"{portfolio.orders_last_minute} orders in the "
            f"last minute (max {limits.max_orders_per_minute})",
        )
    return None


def _liquidation_check(
    intent: OrderIntent, contract: ContractTerms | None, price: Decimal
) -> Decision | None:
    """A contract entry whose estimated liquidation price lies inside its stop-loss: the
    stop could never protect it."""
    if contract is None or intent.stop_loss is None:
        return None
    problem = stop_problem(
        contract.spec,
        long=intent.side == "buy",
        entry=price,
        stop=intent.stop_loss,
        leverage=contract.leverage,
        mmr=contract.mmr,
    )
    return None if problem is None else _reject("liquidation_inside_stop", problem)


def _exposure_checks(
    intent: OrderIntent,
    portfolio: PortfolioView,
    info: MarketInfo | None,
    limits: Limits,
    *,
    mid: Decimal,
    price: Decimal,
    spec: InstrumentSpec | None = None,
) -> Decision:
    """An order that grows exposure: short, daily loss, position count, size, exposure,
    leverage."""
    key = (intent.exchange, intent.symbol)
    projected = (
        portfolio.positions.get(key, ZERO) + portfolio.pending.get(key, ZERO) + signed(intent)
    )
    open_keys = {
        k
        for k in set(portfolio.positions) | set(portfolio.pending)
        if portfolio.positions.get(k, ZERO) + portfolio.pending.get(k, ZERO) != 0
    }
    decision = _opening_checks(intent, portfolio, limits, projected=projected, open_keys=open_keys)
    if decision is not APPROVED:
        return decision
    return _value_checks(
        intent,
        portfolio,
        info,
        limits,
        projected=projected,
        open_keys=open_keys,
        spec=spec,
        mid=mid,
        price=price,
    )


def _opening_checks(
    intent: OrderIntent,
    portfolio: PortfolioView,
    limits: Limits,
    *,
    projected: Decimal,
    open_keys: set[_Key],
) -> Decision:
    """Whether the account may open or grow this position at all: shorting, the daily loss
    limit and the number of open positions."""
    if projected < 0 and not limits.allow_short:
        return _reject(
            "short_not_allowed",
            f"{intent.side} {intent.amount} would open a short "
            f"position ({projected}); shorting is disabled",
        )
    if portfolio.daily_pnl <= -limits.daily_loss_limit:
        return _reject(
            "daily_loss_limit",
            f"daily loss {portfolio.daily_pnl} reached the limit -{limits.daily_loss_limit}",
        )
    key = (intent.exchange, intent.symbol)
    if key not in open_keys and len(open_keys) >= limits.max_open_positions:
        return _reject(
            "max_open_positions",
            f"{len(open_keys)} positions open (max {limits.max_open_positions})",
        )
    return APPROVED


def _value_checks(
    intent: OrderIntent,
    portfolio: PortfolioView,
    info: MarketInfo | None,
    limits: Limits,
    *,
    projected: Decimal,
    open_keys: set[_Key],
    spec: InstrumentSpec | None,
    mid: Decimal,
    price: Decimal,
) -> Decision:
    """The position's value, the symbol's and the account's exposure, and the leverage: in
    the quote currency, a contract's through its spec (``marks`` are the quote value of one
    venue unit of each market)."""
    key = (intent.exchange, intent.symbol)
    notional = spec.notional_of(abs(projected), price) if spec else abs(projected) * price
    unit = spec.notional_of(Decimal(1), mid) if spec else mid
    if notional > limits.max_position_size:
        return _reject(
            "max_position_size", f"position would be {notional} (max {limits.max_position_size})"
        )

    def value(other: _Key) -> Decimal:
        amount = portfolio.positions.get(other, ZERO) + portfolio.pending.get(other, ZERO)
        return abs(amount) * portfolio.marks.get(other, unit if other == key else ZERO)

    others = [k for k in open_keys if k != key]
    symbol_exposure = notional + sum((value(k) for k in others if k[1] == intent.symbol), ZERO)
    if symbol_exposure > limits.max_symbol_exposure:
        return _reject(
            "max_symbol_exposure",
            f"{intent.symbol} exposure would be "
            f"{symbol_exposure} (max {limits.max_symbol_exposure})",
        )
    total = notional + sum((value(k) for k in others), ZERO)
    if total > limits.max_total_exposure:
        return _reject(
            "max_total_exposure",
            f"total exposure would be {total} (max {limits.max_total_exposure})",
        )
    max_leverage = limits.max_leverage
    if info is not None:
        max_leverage = min(max_leverage, max(info.max_leverage, Decimal(1)))
    if portfolio.equity <= 0 or total / portfolio.equity > max_leverage:
        return _reject(
            "max_leverage",
            f"exposure {total} on equity {portfolio.equity} exceeds leverage {max_leverage}",
        )
    return APPROVED
