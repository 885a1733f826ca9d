"""The contract spec of every market (DESIGN.md convention 15): what a venue's price and
quantity mean, so amounts and notionals are computed once, from the instrument.

Units (all sizes are exact ``Decimal``):

- ``qty`` is what the venue sends and accepts: base units on spot, contracts on derivatives.
- ``contract_size``: for a **linear** market, base units per contract (1 on spot and on
  Binance USD-M); for an **inverse** market, quote units per contract (e.g. 100 USD).
- ``tick_size``: the price step, in quote units per base unit.
- ``lot_size`` / ``min_qty``: the quantity step and the smallest order, in venue ``qty`` units.
- ``min_notional``: the smallest order value, in the quote currency.

A linear trade of ``qty`` at ``price`` is ``amount = qty * contract_size`` base units worth
``notional = amount * price`` quote; an inverse one is ``notional = qty * contract_size``
quote worth ``amount = notional / price`` base. Market data uses the float methods; orders,
fills and positions the ``Decimal`` ones (:meth:`InstrumentSpec.qty_for_amount`, ...).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

ONE = Decimal(1)
_MONTH_CODES = "FGHJKMNQUVXZ"  # cryptofeed's (and CME's) futures month letters, Jan..Dec


class InstrumentKind(enum.StrEnum):
    """What is traded: the coin itself or a contract on it."""

    SPOT = "spot"
    PERPETUAL = "perpetual"
    FUTURE = "future"
    OPTION = "option"


@dataclass(frozen=True, slots=True, kw_only=True)
class InstrumentSpec:
    """One market's contract spec; see the module docstring for the units."""

    exchange: str
    symbol: str  # cryptofeed-normalized: BTC-USDT, BTC-USDT-PERP, BTC-USD-22K27
    kind: InstrumentKind
    base: str
    quote: str
    settle: str | None = None  # margin/settlement currency of a derivative; None on spot
    contract_size: Decimal = ONE
    inverse: bool = False
    tick_size: Decimal | None = None
    lot_size: Decimal | None = None
    min_qty: Decimal | None = None
    min_notional: Decimal | None = None
    expiry: float | None = None  # epoch seconds, futures and options
    _size: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", InstrumentKind(self.kind))  # "spot" -> the enum
        if not self.contract_size.is_finite() or self.contract_size <= 0:
            raise ValueError(
                f"{self.exchange} {self.symbol}: contract_size {self.contract_size}; "
                "expected a positive number"
            )
        if self.kind is InstrumentKind.SPOT and (self.inverse or self.contract_size != ONE):
            raise ValueError(
                f"{self.exchange} {self.symbol}: a spot market is linear with contract_size 1"
            )
        object.__setattr__(self, "_size", float(self.contract_size))

    @property
    def key(self) -> tuple[str, str]:
        """``(exchange, symbol)`` as the registry and the cache index it."""
        return (self.exchange, self.symbol)

    # ---------------------------------------------------------------- market data (float)

    def base_amount(self, qty: float, price: float) -> float:
        """Base units of a venue quantity traded at ``price``."""
        if self.inverse:
            return qty * self._size / price if price else 0.0
        return qty * self._size

    def notional(self, qty: float, price: float) -> float:
        """Quote-currency value of a venue quantity traded at ``price``."""
        if self.inverse:
            return qty * self._size
        return qty * self._size * price

    # ---------------------------------------------------------------- orders (Decimal)

    def amount_of(self, qty: Decimal, price: Decimal) -> Decimal:
        """Exact base units of a venue quantity (fills, positions)."""
        if self.inverse:
            return qty * self.contract_size / price
        return qty * self.contract_size

    def notional_of(self, qty: Decimal, price: Decimal) -> Decimal:
        """Exact quote value of a venue quantity (fills, positions)."""
        if self.inverse:
            return qty * self.contract_size
        return qty * self.contract_size * price

    def qty_for_amount(self, amount: Decimal, price: Decimal) -> Decimal:
        """The venue quantity for ``amount`` base units at ``price``, rounded down to the lot."""
        if self.inverse:
            return self.round_qty(amount * price / self.contract_size)
        return self.round_qty(amount / self.contract_size)

    def qty_for_notional(self, notional: Decimal, price: Decimal) -> Decimal:
        """The venue quantity worth ``notional`` quote at ``price``, rounded down to the lot."""
        if self.inverse:
            return self.round_qty(notional / self.contract_size)
        return self.round_qty(notional / (price * self.contract_size))

    def round_qty(self, qty: Decimal) -> Decimal:
        """``qty`` rounded down (toward zero) to a whole number of lots."""
        if self.lot_size is None or self.lot_size <= 0:
            return qty
        return (qty / self.lot_size).to_integral_value(rounding=ROUND_DOWN) * self.lot_size

    def round_price(self, price: Decimal) -> Decimal:
        """``price`` rounded to the nearest tick."""
        if self.tick_size is None or self.tick_size <= 0:
            return price
        return (price / self.tick_size).to_integral_value(ROUND_HALF_EVEN) * self.tick_size

    def order_problem(self, qty: Decimal, price: Decimal) -> str | None:
        """Why an order of ``qty`` at ``price`` breaks the venue's limits, or None. Numbers are
        written without an exponent (``0.00000001``, not ``1E-8``): people read these."""
        if self.min_qty is not None and qty < self.min_qty:
            return f"quantity {qty:f} is below the minimum {self.min_qty:f} of {self.symbol}"
        value = self.notional_of(qty, price)
        if self.min_notional is not None and value < self.min_notional:
            return (
                f"order value {value:f} {self.quote} is below the minimum "
                f"{self.min_notional:f} {self.quote} of {self.symbol}"
            )
        return None


def expiry_code(expiry: float) -> str:
    """cryptofeed's expiry code: ``YY`` + month letter + ``DD`` (2022-05-27 -> ``22K27``)."""
    day = datetime.fromtimestamp(expiry, UTC)
    return f"{day.year % 100:02d}{_MONTH_CODES[day.month - 1]}{day.day:02d}"


def normalized_symbol(
    base: str,
    quote: str,
    kind: InstrumentKind,
    *,
    expiry: float | None = None,
    strike: str | None = None,
    option_type: str | None = None,
) -> str:
    """The cryptofeed-normalized symbol of a market (``BTC-USD-PERP``, ``BTC-USD-22K27``)."""
    pair = f"{base}-{quote}"
    if kind is InstrumentKind.SPOT:
        return pair
    if kind is InstrumentKind.PERPETUAL:
        return f"{pair}-PERP"
    if expiry is None:
        raise ValueError(f"{pair}: a {kind.value} needs an expiry")
    if kind is InstrumentKind.FUTURE:
        return f"{pair}-{expiry_code(expiry)}"
    if strike is None or option_type not in ("C", "P"):
        raise ValueError(f"{pair}: an option needs a strike and option_type C or P")
    return f"{pair}-{strike}-{expiry_code(expiry)}-{option_type}"


def decimal_or_none(value: object) -> Decimal | None:
    """A venue's number (str, int, float) as a Decimal; '' / None / 0 -> None."""
    if value is None or value == "":
        return None
    number = Decimal(str(value))
    if not number.is_finite() or number <= 0:
        return None
    return number.normalize() if number != number.to_integral_value() else number.quantize(ONE)


def step_from_decimals(places: object) -> Decimal | None:
    """A precision given as a number of decimals (``3`` -> ``0.001``)."""
    if places is None or places == "":
        return None
    return Decimal(1).scaleb(-int(str(places)))
