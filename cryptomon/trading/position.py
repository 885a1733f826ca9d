"""One market's position: signed amount, cost basis, realized and unrealized PnL, fees and the
current round trip; on a perpetual or future also its contract state (entry, leverage,
margin, liquidation estimate, funding; :mod:`cryptomon.trading.margin`).

A position is signed (negative = short). Fills move it: adding keeps a volume-weighted average
price; reducing realizes ``closed * (price - avg)`` (sign-adjusted; the contract formulas on a
contract). A *round trip* ends when a position returns to zero (or flips).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cryptomon.decimals import plain_decimal
from cryptomon.events import PositionUpdate, slot_init
from cryptomon.trading.margin import ContractState, notional_quote, settle_value

ZERO = Decimal(0)


def money(value: Decimal) -> str:
    """A Decimal as a plain string: no exponent or trailing zeros (``1E+2`` -> ``100``),
    zero as ``0`` (never ``-0``), every digit kept (:func:`cryptomon.decimals.plain_decimal`)."""
    return plain_decimal(value)


_BASIS_Q = Decimal("1e-12")  # cost basis removed on a partial close: exact sums afterwards


@slot_init
@dataclass(frozen=True, slots=True)
class TradeResult:
    """One closed round trip."""

    exchange: str
    symbol: str
    side: str  # "long" or "short"
    opened: float
    closed: float
    entry_notional: Decimal
    pnl: Decimal  # realized minus fees (the settle currency on a contract)
    quote_pnl: Decimal | None = None  # ``pnl`` in the portfolio's quote, where they differ

    @property
    def ret(self) -> float:
        return float(self.pnl / self.entry_notional) if self.entry_notional else 0.0

    @property
    def net(self) -> Decimal:
        """The net PnL in the portfolio's quote currency."""
        return self.pnl if self.quote_pnl is None else self.quote_pnl


@dataclass(slots=True)
class Position:
    """One market's position. ``cost`` is the signed cost basis (amount * entry prices), so
    unrealized PnL ``amount * mark - cost`` is exact; ``avg_price`` = cost / amount."""

    exchange: str
    symbol: str
    amount: Decimal = ZERO
    cost: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    mark: Decimal | None = None
    opened: float = 0.0
    updated: float = 0.0
    # current round trip
    trip_pnl: Decimal = ZERO
    trip_fees: Decimal = ZERO
    trip_notional: Decimal = ZERO
    contract: ContractState | None = None  # perpetuals and futures
    # a contract's realized PnL (funding included), fees and current trip's net PnL in the
    # portfolio's quote, each converted when it was booked (kept by the Portfolio)
    quote_realized: Decimal = ZERO
    quote_fees: Decimal = ZERO
    quote_trip: Decimal = ZERO

    @property
    def avg_price(self) -> Decimal:
        if self.contract is not None:
            return self.contract.entry if self.amount != 0 else ZERO
        return self.cost / self.amount if self.amount != 0 else ZERO

    @property
    def unrealized_pnl(self) -> Decimal:
        """Mark-to-market PnL (the settle currency on a contract)."""
        if self.contract is not None:
            return self.contract.unrealized(self.amount, self.mark)
        if self.amount == 0 or self.mark is None:
            return ZERO
        return self.amount * self.mark - self.cost

    def notional(self, price: Decimal | None = None) -> Decimal:
        """Quote-currency value at ``price`` (the mark by default)."""
        p = price if price is not None else self.mark
        if self.contract is not None:
            return notional_quote(self.contract, self.amount, p)
        return abs(self.amount * p) if p is not None else abs(self.cost)

    def apply(
        self, side: str, amount: Decimal, price: Decimal, fee: Decimal, ts: float
    ) -> TradeResult | None:
        """Apply one fill; returns the round trip it closed, if any. On a contract ``amount``
        is contracts and the PnL is in the settle currency (:mod:`cryptomon.trading.margin`)."""
        signed = amount if side == "buy" else -amount
        self.fees += fee
        self.trip_fees += fee
        self.updated = ts
        contract = self.contract
        if self.amount == 0 or (self.amount > 0) == (signed > 0):
            if self.amount == 0:
                self.opened = ts
            self.trip_notional += self._trip_value(amount, price)
            if contract is None:
                self.cost += signed * price
            else:
                contract.add(self.amount, amount, price)
                self.cost = (self.amount + signed) * contract.entry
            self.amount += signed
            return None
        held = abs(self.amount)
        closing = min(amount, held)
        direction = Decimal(1) if self.amount > 0 else Decimal(-1)
        if contract is None:
            removed = (
                self.cost if closing == held else (self.cost * closing / held).quantize(_BASIS_Q)
            )
            pnl = direction * closing * price - removed
            self.cost -= removed
        else:
            pnl = contract.close_pnl(self.amount, closing, price)
            self.cost = (self.amount + direction * -closing) * contract.entry
        self.realized_pnl += pnl
        self.trip_pnl += pnl
        self.amount += signed
        if self.amount != 0 and (self.amount > 0) == (direction > 0):
            return None
        return self._end_trip(direction, price, ts)

    def _trip_value(self, amount: Decimal, price: Decimal) -> Decimal:
        """What an entry of ``amount`` at ``price`` adds to the trip's entry value (settle
        currency on a contract)."""
        if self.contract is None:
            return amount * price
        return settle_value(self.contract, amount, price)

    def _end_trip(self, direction: Decimal, price: Decimal, ts: float) -> TradeResult:
        result = TradeResult(
            exchange=self.exchange,
            symbol=self.symbol,
            side="long" if direction > 0 else "short",
            opened=self.opened,
            closed=ts,
            entry_notional=self.trip_notional,
            pnl=self.trip_pnl - self.trip_fees,
        )
        self.trip_pnl = ZERO
        self.trip_fees = ZERO
        self.trip_notional = ZERO
        self.cost = ZERO
        if self.contract is not None:
            self.contract.entry = ZERO
            self.contract.funding = ZERO
        if self.amount != 0:  # flipped: the rest opens a new trip at this price
            self.cost = self.amount * price
            self.opened = ts
            self.trip_notional = self._trip_value(abs(self.amount), price)
            if self.contract is not None:
                self.contract.entry = price
        return result

    def receive_funding(self, payment: Decimal, ts: float) -> bool:
        """A funding payment (settle currency, negative = paid) into the PnL of a contract;
        False when the position held at ``ts`` is already closed (flat now, or ``ts`` before
        the current trip opened: a trip closed and a new one opened since): the payment is
        then only realized and the caller books it on the round trip that held it."""
        if self.contract is None:
            return False
        if self.amount == 0 or ts < self.opened:
            self.realized_pnl += payment
            return False
        self.contract.funding += payment
        self.realized_pnl += payment
        self.trip_pnl += payment
        self.updated = ts
        return True

    def event(self, ts: float, ts_recv: float) -> PositionUpdate:
        return PositionUpdate(
            exchange=self.exchange,
            symbol=self.symbol,
            ts=ts,
            ts_recv=ts_recv,
            amount=self.amount,
            avg_price=self.avg_price,
            realized_pnl=self.realized_pnl,
            unrealized_pnl=self.unrealized_pnl,
            fees=self.fees,
            mark_price=self.mark,
            **(self.contract.fields(self.amount, self.mark) if self.contract else {}),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "amount": money(self.amount),
            "avg_price": money(self.avg_price),
            "mark_price": None if self.mark is None else money(self.mark),
            "notional": money(self.notional()),
            "realized_pnl": money(self.realized_pnl),
            "unrealized_pnl": money(self.unrealized_pnl),
            "fees": money(self.fees),
            "opened": self.opened,
            "updated": self.updated,
            **(self.contract.text_fields(self.amount, self.mark) if self.contract else {}),
        }
