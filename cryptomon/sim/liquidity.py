"""The simulated market's liquidity as the matching engine sees it: a book source, and the
conversion of its float fills into exact lot-sized Decimals."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol

Level = tuple[float, float]


class BookSource(Protocol):
    """The simulated market as the matching engine sees it."""

    def book(self, symbol: str) -> tuple[Sequence[Level], Sequence[Level]]:
        """``(bids, asks)`` best first, for a Binance symbol id such as ``BTCUSDT``."""
        ...

    def take(self, symbol: str, side: str, amount: float) -> list[Level]:
        """A taker order of ``amount`` walks the book and consumes it; returns its fills."""
        ...


def exact_fills(
    taken: Sequence[Level], qty: Decimal, step: Decimal
) -> list[tuple[Decimal, Decimal]]:
    """The book's float fills as lot-sized Decimals that add up to exactly ``qty`` (float
    noise such as 1.9999999999999998 goes to the last fill)."""
    out: list[tuple[Decimal, Decimal]] = []
    left = qty
    for p, s in taken:
        size = min(to_decimal(s).quantize(step, rounding=ROUND_HALF_UP), left)
        if size > 0:
            out.append((to_decimal(p), size))
            left -= size
    if out and 0 < left < step * 2:
        price, size = out[-1]
        out[-1] = (price, size + left)
    return out


def to_decimal(value: float) -> Decimal:
    return Decimal(repr(float(value)))
