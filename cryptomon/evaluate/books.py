"""Book injections for ``crypto-monitor evaluate``: a persistent depth imbalance and a spread
blow-out, written as level updates in the exchange's own book format
(:meth:`~cryptomon.evaluate.frames.TradeFrame.render_book`; OKX, Kraken and Bitfinex, whose
recorded books are level updates without a sequence chain to rewrite).

Both start from the market's book top just before the point (from the untouched replay):

- **imbalance** of ``m`` (0-1): the best bid's size is set so that bid depth is
  ``(1 + m) / (1 - m)`` x the ask depth and more, re-asserted every half second for the
  detector's persistence plus its smoothing and a second (recorded updates at that price would
  otherwise undo it), then restored to its recorded size;
- **spread** of ``m`` x the current one: every price on the tick grid within
  ``(m - 1) / 2`` spreads inside each side of the top is deleted (deleting a price the book
  does not hold is a no-op in every venue's format), three times 0.3 s apart.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from cryptomon.config import AnomalyDetectionConfig
from cryptomon.evaluate.frames import BookUpdate
from cryptomon.events import BookTop
from cryptomon.kinds import AnomalyKind

BOOK_KINDS = frozenset({AnomalyKind.BOOK_IMBALANCE, AnomalyKind.SPREAD})
MAX_GRID = 5000  # deleted prices per side at most (a finer grid than that is coarsened)


def price_grid(tops: Sequence[BookTop]) -> tuple[float, int]:
    """(tick, decimals) of a market's prices from its recorded tops: the power of ten at or
    below the smallest gap between distinct prices (a finer grid than the venue's is
    harmless: deleting a price nobody quotes changes nothing)."""
    prices = sorted({p for t in tops for p in (t.bid, t.ask) if p > 0 and math.isfinite(p)})
    gaps = [b - a for a, b in itertools.pairwise(prices) if b - a > 1e-12 * b]
    gap = min(gaps) if gaps else (prices[0] * 1e-4 if prices else 1e-8)
    exponent = math.floor(math.log10(gap) + 1e-9)
    return 10.0**exponent, max(0, -exponent)


def _venue(size: float, base: float, contracts: float | None) -> float:
    """``size`` base units in the venue's units (the top's contracts per base unit)."""
    if contracts is None or base <= 0:
        return size
    return size * contracts / base


def book_updates(
    kind: AnomalyKind,
    magnitude: float,
    top: BookTop,
    *,
    native: str,
    chan: str,
    t0: float,
    tick: float,
    decimals: int,
    cfg: AnomalyDetectionConfig,
) -> list[BookUpdate]:
    """The level updates of one book injection at ``t0``."""
    if kind == AnomalyKind.BOOK_IMBALANCE:
        m = min(magnitude, 0.99)
        size = (1.0 + m) / (1.0 - m) * top.ask_depth * 1.5 + top.bid_depth
        big = _venue(size, top.bid_size, top.bid_contracts)
        was = _venue(top.bid_size, top.bid_size, top.bid_contracts)
        hold = cfg.book_imbalance_min_s + 3.0 * cfg.book_imbalance_smoothing_s + 1.0
        steps = max(2, math.ceil(hold / 0.5))
        out = [
            BookUpdate(native, chan, t0 + 0.5 * j, ((top.bid, big),), (), decimals)
            for j in range(steps)
        ]
        out.append(BookUpdate(native, chan, t0 + 0.5 * steps, ((top.bid, was),), (), decimals))
        return out
    if kind == AnomalyKind.SPREAD:
        width = (magnitude - 1.0) / 2.0 * (top.ask - top.bid)
        n = math.ceil(width / tick) + 1
        # a coarser grid stays on the venue's (powers of ten of the tick)
        step = tick * 10.0 ** max(0, math.ceil(math.log10(n / MAX_GRID)))
        count = math.ceil(width / step) + 1
        bids = tuple((round(top.bid - j * step, decimals), 0.0) for j in range(count))
        asks = tuple((round(top.ask + j * step, decimals), 0.0) for j in range(count))
        return [BookUpdate(native, chan, t0 + 0.3 * j, bids, asks, decimals) for j in range(3)]
    raise ValueError(f"not a book injection: {kind}")
