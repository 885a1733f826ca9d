"""The checks of an order that grows exposure (:func:`cryptomon.trading.risk.check` calls
them last): a contract entry's liquidation estimate against its stop; shorting, the daily loss
limit and the position count; the position's value, the symbol's and the account's exposure
and the leverage."""

from __future__ import annotations

from decimal import Decimal

from cryptomon.decimals import plain_decimal as _d
from cryptomon.events import OrderIntent
from cryptomon.market.instruments import InstrumentSpec
from cryptomon.trading.brokers.base import MarketInfo
from cryptomon.trading.futures import (
    ContractTerms,
    account_value,
    average_entry,
    stop_problem,
)
from cryptomon.trading.risk_model import (
    APPROVED,
    ZERO,
    Decision,
    Limits,
    PortfolioView,
    _Key,
    daily_loss_reason,
    reject,
    shown,
    signed,
)


def liquidation_check(
    intent: OrderIntent,
    contract: ContractTerms | None,
    price: Decimal,
    *,
    held: Decimal = ZERO,
    entry: Decimal | None = None,
) -> Decision | None:
    """A contract entry whose estimated liquidation price lies inside its stop-loss: the
    stop could never protect it. An add to ``held`` contracts opened at ``entry`` is checked
    at the position's new average entry."""
    if contract is None or intent.stop_loss is None:
        return None
    long = intent.side == "buy"
    at = price
    if entry is not None and entry > 0 and held != 0 and (held > 0) == long:
        at = average_entry(contract.spec, held, entry, intent.amount, price)
    problem = stop_problem(
        contract.spec,
        long=long,
        entry=at,
        stop=intent.stop_loss,
        leverage=contract.leverage,
        mmr=contract.mmr,
    )
    return None if problem is None else reject("liquidation_inside_stop", problem)


def exposure_checks(
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
        return reject(
            "short_not_allowed",
            f"{intent.side} {_d(intent.amount)} would open a short "
            f"position ({_d(projected)}); shorting is disabled",
        )
    if portfolio.daily_pnl <= -limits.daily_loss_limit:
        return reject(
            "daily_loss_limit", daily_loss_reason(portfolio.daily_pnl, limits.daily_loss_limit)
        )
    key = (intent.exchange, intent.symbol)
    if key not in open_keys and len(open_keys) >= limits.max_open_positions:
        return reject(
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
    account = portfolio.account
    notional = account_value(spec, projected, price, account) if spec else abs(projected) * price
    unit = account_value(spec, Decimal(1), mid, account) if spec else mid
    cur = _currency(intent.symbol, spec, account)
    if notional > limits.max_position_size:
        return reject(
            "max_position_size",
            f"position would be {shown(notional)}{cur} (max {_d(limits.max_position_size)}{cur})",
        )

    def value(other: _Key) -> Decimal:
        amount = portfolio.positions.get(other, ZERO) + portfolio.pending.get(other, ZERO)
        return abs(amount) * portfolio.marks.get(other, unit if other == key else ZERO)

    others = [k for k in open_keys if k != key]
    symbol_exposure = notional + sum((value(k) for k in others if k[1] == intent.symbol), ZERO)
    if symbol_exposure > limits.max_symbol_exposure:
        return reject(
            "max_symbol_exposure",
            f"{intent.symbol} exposure would be "
            f"{shown(symbol_exposure)}{cur} (max {_d(limits.max_symbol_exposure)}{cur})",
        )
    total = notional + sum((value(k) for k in others), ZERO)
    if total > limits.max_total_exposure:
        return reject(
            "max_total_exposure",
            f"total exposure would be {shown(total)}{cur} "
            f"(max {_d(limits.max_total_exposure)}{cur})",
        )
    max_leverage = limits.max_leverage
    if info is not None:
        max_leverage = min(max_leverage, max(info.max_leverage, Decimal(1)))
    if portfolio.equity <= 0 or total / portfolio.equity > max_leverage:
        return reject(
            "max_leverage",
            f"exposure {shown(total)}{cur} on equity {shown(portfolio.equity)}{cur} "
            f"exceeds leverage {_d(max_leverage)}",
        )
    return APPROVED


def _currency(symbol: str, spec: InstrumentSpec | None, account: str | None) -> str:
    """ " USDT": the currency the risk limits are set in, as a reason names it (the account's,
    else the market's quote), so that a refusal says what its figures count."""
    if account:
        return f" {account}"
    if spec is not None and spec.quote:
        return f" {spec.quote}"
    parts = symbol.split("-")
    return f" {parts[1]}" if len(parts) > 1 and parts[1] else ""
