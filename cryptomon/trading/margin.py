"""The contract side of a position (perpetuals and dated futures).

A :class:`~cryptomon.trading.portfolio.Position` on a contract market carries a
:class:`ContractState`: its amount is then signed venue contracts, its PnL, fees and funding
are in the settle currency (:mod:`cryptomon.trading.futures` has the formulas), and it reports
the margin, the maintenance margin and the isolated liquidation estimate at its leverage.

The portfolio keeps its books in one quote currency: a contract moves the cash by its realized
PnL, fees and funding (not by its notional), converted from the settle currency at the fill
price (or the mark) when the settle currency is the base coin (inverse contracts).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cryptomon.decimals import plain_decimal
from cryptomon.trading.futures import (
    ContractTerms,
    TermsLookup,
    average_entry,
    initial_margin,
    maintenance_margin,
    pnl,
    settle_currency,
    value,
)

ZERO = Decimal(0)
ONE = Decimal(1)

__all__ = ["ContractState", "TermsLookup", "notional_quote", "settle_value"]


def _text(number: Decimal | None) -> str | None:
    return None if number is None else plain_decimal(number)


@dataclass(slots=True)
class ContractState:
    """Entry, funding and terms of one contract position (amount lives on the Position)."""

    terms: ContractTerms
    entry: Decimal = ZERO
    funding: Decimal = ZERO  # settle currency, received (+) or paid (-) since opened

    @property
    def settle(self) -> str:
        return settle_currency(self.terms.spec)

    def add(self, held: Decimal, qty: Decimal, price: Decimal) -> None:
        """``qty`` more contracts on the side already held, at ``price``."""
        self.entry = average_entry(self.terms.spec, held, self.entry, qty, price)

    def close_pnl(self, held: Decimal, qty: Decimal, price: Decimal) -> Decimal:
        """Settle-currency PnL of closing ``qty`` of the signed ``held`` at ``price``."""
        signed = qty if held > 0 else -qty
        return pnl(self.terms.spec, signed, self.entry, price)

    def unrealized(self, amount: Decimal, mark: Decimal | None) -> Decimal:
        if amount == 0 or mark is None or self.entry == 0:
            return ZERO
        return pnl(self.terms.spec, amount, self.entry, mark)

    def to_quote(
        self, amount_settle: Decimal, price: Decimal | None, account: str | None = None
    ) -> Decimal:
        """A settle-currency amount in the account's currency ``account`` (the portfolio's
        quote): unchanged when the contract settles in it or in its own quote, else the base
        coin at ``price``."""
        if self.settle in (self.terms.spec.quote, account):
            return amount_settle
        return amount_settle * price if price is not None else ZERO

    def from_quote(
        self, amount_quote: Decimal, price: Decimal, account: str | None = None
    ) -> Decimal:
        """:meth:`to_quote` backwards."""
        if self.settle in (self.terms.spec.quote, account):
            return amount_quote
        return amount_quote / price

    def fields(self, amount: Decimal, mark: Decimal | None) -> dict[str, Any]:
        """Side, leverage, margins, liquidation estimate and funding (Decimal or None)."""
        terms = self.terms
        price = mark if mark is not None else self.entry
        opened = amount != 0 and self.entry > 0
        return {
            "side": ("long" if amount > 0 else "short") if amount != 0 else "flat",
            "settle": self.settle,
            "contracts": abs(amount),
            "base_amount": terms.spec.amount_of(abs(amount), price) if opened else ZERO,
            "leverage": terms.leverage,
            "margin_mode": terms.margin_mode,
            "initial_margin": (
                initial_margin(terms.spec, amount, self.entry, terms.leverage) if opened else ZERO
            ),
            "maintenance_margin": (
                maintenance_margin(terms.spec, amount, price, terms.mmr) if opened else ZERO
            ),
            "liquidation_price": terms.liquidation(amount > 0, self.entry) if opened else None,
            "funding": self.funding,
        }

    def text_fields(self, amount: Decimal, mark: Decimal | None) -> dict[str, Any]:
        """:meth:`fields` with the numbers as plain strings (API, JSON)."""
        return {
            k: _text(v) if isinstance(v, Decimal) or v is None else v
            for k, v in self.fields(amount, mark).items()
        }


def notional_quote(state: ContractState, amount: Decimal, price: Decimal | None) -> Decimal:
    """Quote value of the position at ``price`` (the entry without one)."""
    p = price if price is not None else state.entry
    if p == 0:
        return ZERO
    return state.terms.spec.notional_of(abs(amount), p)


def settle_value(state: ContractState, amount: Decimal, price: Decimal) -> Decimal:
    """Settle-currency value of the position at ``price``."""
    return value(state.terms.spec, amount, price)
