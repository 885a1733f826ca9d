"""Stop-loss / take-profit prices and the emulated protection of a position (sizing is
:mod:`cryptomon.trading.sizing`).

An emulated :class:`Protection` watches the live book: a long exits when the bid falls to the
stop or rises to the take-profit; a short when the ask rises to the stop or falls to the
take-profit. With a trailing percentage the stop follows the best price seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Literal

ZERO = Decimal(0)
HUNDRED = Decimal(100)


def round_down(value: Decimal, step: Decimal) -> Decimal:
    """Largest multiple of ``step`` not above ``value`` (``step`` <= 0 leaves it alone)."""
    if step <= 0:
        return value
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def round_price(value: Decimal, tick: Decimal, *, up: bool) -> Decimal:
    if tick <= 0:
        return value
    mode = ROUND_CEILING if up else ROUND_FLOOR
    return (value / tick).to_integral_value(rounding=mode) * tick


def bracket(
    *,
    side: Literal["buy", "sell"],
    price: Decimal,
    stop_pct: Decimal,
    take_pct: Decimal,
    tick: Decimal,
) -> tuple[Decimal, Decimal]:
    """(stop_loss, take_profit) prices for an entry at ``price``, rounded away from it."""
    if side == "buy":
        stop = round_price(price * (1 - stop_pct / HUNDRED), tick, up=False)
        take = round_price(price * (1 + take_pct / HUNDRED), tick, up=True)
    else:
        stop = round_price(price * (1 + stop_pct / HUNDRED), tick, up=True)
        take = round_price(price * (1 - take_pct / HUNDRED), tick, up=False)
    return stop, take


@dataclass(slots=True)
class Protection:
    """Stop-loss / take-profit of one position, emulated from the book or native legs."""

    exchange: str
    symbol: str
    long: bool
    stop: Decimal
    take: Decimal | None
    entry_id: str  # client order id of the entry: the key of the exit order ids
    trail_pct: Decimal | None = None
    best: Decimal = ZERO
    native: bool = False
    # a native protection with one leg not at the venue (a restart found half a pair), or
    # one whose outcome is unknown: that side is still watched on the book until the leg
    # rests; "both" when both legs' outcomes are unknown (both sides watched)
    missing: Literal["stop_loss", "take_profit", "both"] | None = None
    stop_order: str | None = None
    take_order: str | None = None
    placed_again: int = 0  # legs placed again after they never reached the venue
    exiting: bool = False
    attempt: int = 0  # emulated exits recorded so far: the next exit's id counts them
    # exit tries the risk checks refused (each took the attempt's id again: nothing was
    # written or sent under it); with ``attempt`` they set the backoff of the next try
    refused: int = 0
    retry_at: float = 0.0  # monotonic time before which a failed exit is not tried again
    # the trailed stop as last persisted (None: nothing to persist yet, the entry's own level)
    # and when (monotonic; None: never, so the first move is written at once)
    saved_stop: Decimal | None = None
    saved_at: float | None = None

    @property
    def stop_on_book(self) -> bool:
        """Whether the stop is watched here (and may trail), not a venue leg resting."""
        return not self.native or self.missing in ("stop_loss", "both")

    def trigger(self, bid: Decimal, ask: Decimal) -> Literal["stop_loss", "take_profit"] | None:
        """Update the trailing stop with the book and say which exit fires, if any (with venue
        legs, only on the side whose leg is :attr:`missing`; the stop trails only while it is
        watched here: a venue leg keeps its price)."""
        if self.native and self.missing is None:
            return None
        stop_side = not self.native or self.missing in ("stop_loss", "both")
        take_side = self.take is not None and (
            not self.native or self.missing in ("take_profit", "both")
        )
        if self.long:
            if stop_side and self.trail_pct is not None and bid > self.best:
                self.best = bid
                self.stop = max(self.stop, bid * (1 - self.trail_pct / HUNDRED))
            if stop_side and bid <= self.stop:
                return "stop_loss"
            if take_side and self.take is not None and bid >= self.take:
                return "take_profit"
            return None
        if stop_side and self.trail_pct is not None and (self.best == 0 or ask < self.best):
            self.best = ask
            self.stop = min(self.stop, ask * (1 + self.trail_pct / HUNDRED))
        if stop_side and ask >= self.stop:
            return "stop_loss"
        if take_side and self.take is not None and ask <= self.take:
            return "take_profit"
        return None


def tighten(prot: Protection, stop: Decimal, best: Decimal) -> bool:
    """``prot`` takes ``stop`` where it is tighter (a stop is never loosened) and the better of
    its best price and ``best`` (0: none seen); True when its stop moved."""
    better = max if prot.long else min
    moved = better(prot.stop, stop) != prot.stop
    prot.stop = better(prot.stop, stop)
    if best != 0:
        prot.best = best if prot.best == 0 else better(prot.best, best)
    return moved


def keep_trail(prot: Protection, old: Protection) -> None:
    """``prot``, armed again by another fill of ``old``'s entry, keeps what ``old`` trailed:
    the tighter stop (never loosened), the best price seen and what was persisted of it; and
    its exit attempts so far: the next exit is a new order (its id counts the attempts; an
    id the executor knows is answered with that order's record, a refused one included),
    after the backoff of the last failure. An exit in flight is not carried: if it fires
    again, its id is the one in flight and the executor answers with that order."""
    tighten(prot, old.stop, old.best)
    prot.saved_stop, prot.saved_at = old.saved_stop, old.saved_at
    prot.attempt, prot.refused, prot.retry_at = old.attempt, old.refused, old.retry_at
