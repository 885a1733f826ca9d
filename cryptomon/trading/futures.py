"""Contract math for perpetuals and dated futures, all in ``Decimal`` and in the settle
currency of the instrument (the quote on a linear contract, the base coin on an inverse one).

Quantities are venue contracts (``qty``), signed: positive = long, negative = short. With
``cs`` the contract size (:class:`~cryptomon.market.instruments.InstrumentSpec`):

- value of ``q`` contracts at ``p``: linear ``|q| * cs * p`` (quote), inverse ``|q| * cs / p``
  (base coin);
- PnL from ``entry`` to ``exit``: linear ``q * cs * (exit - entry)``, inverse
  ``q * cs * (1/entry - 1/exit)``;
- initial margin: value at the entry / leverage; maintenance margin: value at the mark * mmr;
- isolated liquidation estimate: linear long ``entry * (1 - 1/L + mmr)``, short
  ``entry * (1 + 1/L - mmr)``; inverse (the same in ``1/price``): long
  ``entry / (1 + 1/L - mmr)``, short ``entry / (1 - 1/L + mmr)``. The venue's own engine
  decides the real price (fees, cross margin, tiers); this is the estimate risk checks;
- funding: a positive rate makes longs pay shorts ``value(mark) * rate``;
- forced close (the paper venue's liquidation, :func:`liquidation_close`): at the liquidation
  estimate, the position loses exactly its initial margin: the PnL to that price is
  ``-value(entry) * (1/L - mmr)`` and the rest of the margin, ``value(entry) * mmr``, is
  the liquidation fee (what a venue keeps for its insurance fund).

The average entry of contracts added at several prices is the contract-weighted mean for a
linear contract and the contract-weighted harmonic mean for an inverse one (what keeps the PnL
formula exact).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from cryptomon.market.instruments import InstrumentKind, InstrumentSpec

if TYPE_CHECKING:
    from cryptomon.config import TradingConfig

ZERO = Decimal(0)
ONE = Decimal(1)

SpecLookup = Callable[[str, str], InstrumentSpec | None]
"""``(exchange, symbol)`` -> the market's spec (``InstrumentRegistry.get``), None if unknown."""
TermsLookup = Callable[[str, str], "ContractTerms | None"]
"""``(exchange, symbol)`` -> the contract terms of a perpetual/future, None for spot."""


def is_contract(spec: InstrumentSpec | None) -> bool:
    """True for a perpetual or a dated future (margin, shorts and funding apply)."""
    return spec is not None and spec.kind in (InstrumentKind.PERPETUAL, InstrumentKind.FUTURE)


def settle_currency(spec: InstrumentSpec) -> str:
    """The currency PnL, margin and funding are paid in."""
    if spec.settle:
        return spec.settle
    return spec.base if spec.inverse else spec.quote


def value(spec: InstrumentSpec, qty: Decimal, price: Decimal) -> Decimal:
    """Settle-currency value of ``|qty|`` contracts at ``price``."""
    size = abs(qty) * spec.contract_size
    return size / price if spec.inverse else size * price


def account_value(
    spec: InstrumentSpec, qty: Decimal, price: Decimal, account: str | None
) -> Decimal:
    """What ``|qty|`` venue units at ``price`` are worth in the account's currency
    ``account`` (the portfolio's quote, in which the risk limits are set): the market's quote
    value (:meth:`InstrumentSpec.notional_of`), or the coin value of an inverse contract when
    the account is kept in the coin it settles in (a COIN-M wallet)."""
    if spec.inverse and account is not None and account == settle_currency(spec):
        return value(spec, qty, price)
    return spec.notional_of(abs(qty), price)


def qty_for_account(
    spec: InstrumentSpec, budget: Decimal, price: Decimal, account: str | None
) -> Decimal:
    """The venue quantity worth ``budget`` of the account's currency at ``price`` (rounded
    down to the lot): :func:`account_value` backwards."""
    if spec.inverse and account is not None and account == settle_currency(spec):
        return spec.qty_for_amount(budget, price)
    return spec.qty_for_notional(budget, price)


def pnl(spec: InstrumentSpec, qty: Decimal, entry: Decimal, exit_price: Decimal) -> Decimal:
    """Settle-currency PnL of a signed ``qty`` opened at ``entry`` and closed at ``exit``."""
    size = qty * spec.contract_size
    if spec.inverse:
        return size * (ONE / entry - ONE / exit_price)
    return size * (exit_price - entry)


def average_entry(
    spec: InstrumentSpec, held: Decimal, entry: Decimal, added: Decimal, price: Decimal
) -> Decimal:
    """The entry after adding ``added`` contracts at ``price`` to ``held`` at ``entry``."""
    held, added = abs(held), abs(added)
    if held == 0:
        return price
    if spec.inverse:
        return (held + added) / (held / entry + added / price)
    return (held * entry + added * price) / (held + added)


def initial_margin(
    spec: InstrumentSpec, qty: Decimal, entry: Decimal, leverage: Decimal
) -> Decimal:
    """Margin locked by a position opened at ``entry`` with ``leverage``."""
    return value(spec, qty, entry) / leverage


def maintenance_margin(spec: InstrumentSpec, qty: Decimal, mark: Decimal, mmr: Decimal) -> Decimal:
    """Margin below which the venue liquidates, at ``mark``."""
    return value(spec, qty, mark) * mmr


def liquidation_price(
    spec: InstrumentSpec, long: bool, entry: Decimal, leverage: Decimal, mmr: Decimal
) -> Decimal | None:
    """Isolated-margin liquidation estimate (module docstring); None when there is none."""
    step = ONE / leverage - mmr
    if spec.inverse:
        denominator = ONE + step if long else ONE - step
        return entry / denominator if denominator > 0 else None
    price = entry * (ONE - step) if long else entry * (ONE + step)
    return price if price > 0 else None


def liquidation_close(
    spec: InstrumentSpec, qty: Decimal, entry: Decimal, leverage: Decimal, mmr: Decimal
) -> tuple[Decimal, Decimal, Decimal] | None:
    """``(price, pnl, fee)`` of liquidating the signed ``qty`` opened at ``entry``: the
    price is :func:`liquidation_price` (the estimate risk checks the stop-loss against), the
    PnL is the contract PnL to it and the fee what is left of the initial margin, so the
    position loses its whole initial margin (module docstring). None without an estimate."""
    if qty == 0:
        return None
    price = liquidation_price(spec, qty > 0, entry, leverage, mmr)
    if price is None:
        return None
    loss = pnl(spec, qty, entry, price)
    fee = max(initial_margin(spec, qty, entry, leverage) + loss, ZERO)
    return price, loss, fee


def liquidation_crossed(long: bool, mark: Decimal, liquidation: Decimal) -> bool:
    """True when ``mark`` has reached the liquidation price of a long or short position."""
    return mark <= liquidation if long else mark >= liquidation


def funding_payment(spec: InstrumentSpec, qty: Decimal, mark: Decimal, rate: Decimal) -> Decimal:
    """Settle-currency funding received by a signed ``qty`` (negative = paid)."""
    payment = value(spec, qty, mark) * rate
    return -payment if qty > 0 else payment


@dataclass(frozen=True, slots=True)
class Bracket:
    """One venue maintenance tier: positions of value up to ``notional_cap`` use ``mmr``."""

    notional_cap: Decimal
    mmr: Decimal
    max_leverage: Decimal = ONE


def mmr_for(brackets: Iterable[Bracket], notional: Decimal, default: Decimal) -> Decimal:
    """The maintenance rate of the first tier that holds ``notional``; ``default`` without
    brackets (the config's ``maintenance_margin_rate``)."""
    tiers = sorted(brackets, key=lambda b: b.notional_cap)
    for tier in tiers:
        if notional <= tier.notional_cap:
            return tier.mmr
    return tiers[-1].mmr if tiers else default


def stop_problem(
    spec: InstrumentSpec,
    *,
    long: bool,
    entry: Decimal,
    stop: Decimal | None,
    leverage: Decimal,
    mmr: Decimal,
) -> str | None:
    """Why a stop-loss at ``stop`` cannot protect this entry (the position would be
    liquidated first), or None."""
    if stop is None:
        return None
    liq = liquidation_price(spec, long, entry, leverage, mmr)
    if liq is None:
        return None
    inside = liq >= stop if long else liq <= stop
    if not inside:
        return None
    side = "long" if long else "short"
    return (
        f"{side} {spec.symbol} at {entry} with {leverage}x: liquidation price "
        f"{liq.quantize(Decimal('1e-8'))} lies inside the stop-loss {stop}; "
        "expected lower leverage or a tighter stop"
    )


@dataclass(frozen=True, slots=True)
class ContractTerms:
    """How one contract market is traded: its spec, the leverage and margin mode set for it,
    and the maintenance rate (the venue's bracket when known, else the config's)."""

    spec: InstrumentSpec
    leverage: Decimal
    margin_mode: str
    mmr: Decimal

    def liquidation(self, long: bool, entry: Decimal) -> Decimal | None:
        """The isolated liquidation estimate of a position opened at ``entry``."""
        return liquidation_price(self.spec, long, entry, self.leverage, self.mmr)


FUNDING_PERIOD_S = 8 * 3600.0  # when a venue announces no next funding time


class FundingSchedule:
    """Tells when a stream of funding-rate announcements (``Funding`` events) settles a
    payment: when an event's time reaches the ``next_funding_time`` announced before it (or,
    without one, when an 8-hour UTC boundary is crossed), the rate announced before is due.
    A fill between the funding time and the next announcement asks :meth:`pending` first, so
    the payment falls on the position held at the funding time; each time settles once.

    An announcement without a rate (None: the venue's message did not carry it) keeps the
    rate announced earlier for the same funding time; a funding time for which no rate was
    ever known is due with rate None (settled, paying nothing: unknown is not 0 %)."""

    __slots__ = ("_last", "_paid")

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[float, Decimal | None, float | None]] = {}
        self._paid: dict[tuple[str, str], float] = {}

    def due(
        self, key: tuple[str, str], ts: float, rate: Decimal | None, next_time: float | None
    ) -> tuple[float, Decimal | None] | None:
        """``(funding time, rate)`` when this announcement follows a settlement, else None."""
        found = self.pending(key, ts)
        if rate is None:
            last = self._last.get(key)
            if last is not None and _period(last[0], last[2]) == _period(ts, next_time):
                rate = last[1]  # the same funding time's rate, announced before
        self._last[key] = (ts, rate, next_time)
        return found

    def pending(self, key: tuple[str, str], ts: float) -> tuple[float, Decimal | None] | None:
        """``(funding time, rate)`` of a funding time passed by ``ts`` since the last
        announcement and not settled yet (then counted as settled), else None."""
        last = self._last.get(key)
        if last is None:
            return None
        last_ts, last_rate, last_next = last
        if last_next is not None:
            at = last_next if last_next <= ts else None
        else:
            boundary = (ts // FUNDING_PERIOD_S) * FUNDING_PERIOD_S
            at = boundary if last_ts < boundary <= ts else None
        if at is None or (key in self._paid and self._paid[key] >= at):
            return None
        self._paid[key] = at
        return at, last_rate


def _period(ts: float, next_time: float | None) -> float:
    """The funding time an announcement at ``ts`` is about: the one it names, else the end
    of its 8-hour UTC window."""
    if next_time is not None:
        return next_time
    return (ts // FUNDING_PERIOD_S + 1) * FUNDING_PERIOD_S


def terms_lookup(config: TradingConfig, specs: SpecLookup) -> TermsLookup:
    """Contract terms from the trading section (per-symbol leverage, margin mode, mmr) and a
    spec lookup (``InstrumentRegistry.get``): what the paper broker is given."""

    def terms(exchange: str, symbol: str) -> ContractTerms | None:
        spec = specs(exchange, symbol)
        if spec is None or not is_contract(spec):
            return None
        return ContractTerms(
            spec=spec,
            leverage=Decimal(str(config.leverage_for(symbol))),
            margin_mode=config.margin_mode_for(symbol),
            mmr=Decimal(str(config.mmr_for(symbol))),
        )

    return terms
