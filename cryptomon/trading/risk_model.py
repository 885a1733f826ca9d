"""The data of the pre-trade risk check (:func:`cryptomon.trading.risk.check`): its limits,
the account and market views it reads, its decision, the risk states and every check name a
rejection can carry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal
from enum import StrEnum
from typing import TYPE_CHECKING

from cryptomon.decimals import plain_decimal
from cryptomon.events import OrderIntent, slot_init
from cryptomon.market.instruments import InstrumentSpec
from cryptomon.trading.brokers.base import MarketInfo
from cryptomon.trading.futures import ContractTerms

if TYPE_CHECKING:
    from cryptomon.config import TradingConfig

ZERO = Decimal(0)
_Key = tuple[str, str]

HALTED_ORIGINS = frozenset({"stop_loss", "take_profit", "kill_switch", "manual", "reconcile"})
# reduce-only exits that still go through on a delisted market (the position keeps its
# protection)
PROTECTIVE_ORIGINS = frozenset({"stop_loss", "take_profit"})
# orders the order rate limit never holds back: the protective exits, the kill switch's
# flatten and the reconciler's corrections
RATE_EXEMPT_ORIGINS = frozenset({"stop_loss", "take_profit", "kill_switch", "reconcile"})

# Every check name a rejection can carry (RiskEvent.check).
CHECKS = (
    "not_reconciled",  # engine-level: no order before startup reconciliation
    "market_info",  # engine-level: the venue's market limits could not be read
    "halted",
    "reducing",
    "unmanaged_position",  # the venue holds a position there that the engine did not open
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


@slot_init  # built for every order's risk check
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
    account: str | None = None  # the currency of equity and the limits (the portfolio's quote)
    entries: Mapping[_Key, Decimal] = field(default_factory=dict)  # open contracts' entries


@slot_init
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
    # the venue holds a position there that the engine did not open: what to do about it
    unmanaged: str = ""


@slot_init
@dataclass(frozen=True, slots=True)
class Decision:
    approved: bool
    reason: str = ""
    check: str = ""


APPROVED = Decision(True)


_SHOWN_STEP = Decimal("1e-8")


def shown(value: Decimal) -> str:
    """An account value (PnL, notional, exposure, equity) as a reason shows it to people:
    plain digits (:func:`cryptomon.decimals.plain_decimal`), at most 8 decimal places. An
    equity holding an inverse contract (valued at 1/price) carries 28 digits; none beyond
    1e-8, the smallest unit of any account currency, says anything to the reader."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -8:
        # enough precision for every digit left of the 8th decimal place (quantize would
        # fail on a value whose rounded digits exceed the default context's 28)
        value = value.quantize(_SHOWN_STEP, context=Context(prec=max(28, value.adjusted() + 10)))
    return plain_decimal(value)


def daily_loss_reason(pnl: Decimal, limit: Decimal) -> str:
    """Why entries stop: the day's PnL (in the account currency) reached ``-limit``. The
    risk check's refusal and the engine's ``reducing`` state say it in the same words."""
    return f"daily loss {shown(pnl)} reached the limit {plain_decimal(-limit)}"


def reject(check: str, reason: str) -> Decision:
    """A rejection by ``check`` with its ``reason``."""
    return Decision(False, reason, check)


def signed(intent: OrderIntent) -> Decimal:
    return intent.amount if intent.side == "buy" else -intent.amount


def increases_exposure(intent: OrderIntent, portfolio: PortfolioView) -> bool:
    """True when the intent grows the absolute projected position of its market."""
    if intent.reduce_only:
        return False
    key = (intent.exchange, intent.symbol)
    base = portfolio.positions.get(key, ZERO) + portfolio.pending.get(key, ZERO)
    return abs(base + signed(intent)) > abs(base)
