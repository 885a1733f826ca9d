"""Book injections for ``crypto-monitor evaluate``: a persistent depth imbalance and a spread
blow-out, written as level updates in the exchange's own book format
(:meth:`~cryptomon.evaluate.frames.TradeFrame.render_book`; OKX, Kraken and Bitfinex level
updates; Binance's ``depthUpdate`` and Gate.io's spot and futures ``order_book_update`` diffs
with update ids chained to the message before; Huobi swap's whole books, applied to ``base``).

Both start from the market's book top just before the point (from the untouched replay):

- **imbalance** of ``m`` (0-1): the best bid's size is set so that bid depth is
  ``(1 + m) / (1 - m)`` x the ask depth and more, re-asserted every half second for the
  detector's persistence plus its smoothing and a second (recorded updates at that price would
  otherwise undo it), then restored to its recorded size;
- **spread** of ``m`` x the current one: every price within ``(m - 1) / 2`` spreads beyond
  each side of the top is deleted, three times 0.3 s apart: the tick grid (up to
  ``MAX_GRID`` prices a side) and every number the recording's book lines of that market
  carry in that range (deleting a price the book does not hold is a no-op in every venue's
  format).
"""

from __future__ import annotations

import itertools
import math
import re
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
    return prices_grid([p for t in tops for p in (t.bid, t.ask)])


def prices_grid(values: Sequence[float]) -> tuple[float, int]:
    """(tick, decimals) of a set of prices (:func:`price_grid`)."""
    prices = sorted({p for p in values if p > 0 and math.isfinite(p)})
    gaps = [b - a for a, b in itertools.pairwise(prices) if b - a > 1e-12 * b]
    gap = min(gaps) if gaps else (prices[0] * 1e-4 if prices else 1e-8)
    exponent = math.floor(math.log10(gap) + 1e-9)
    return 10.0**exponent, max(0, -exponent)


_NUMBER = re.compile(r"-?\d+\.?\d*(?:[eE][-+]?\d+)?")


def mentioned_prices(lines: Sequence[str], marker: str) -> list[float]:
    """Every number in the lines that carry ``marker`` (a market's book lines): a superset of
    the prices its book ever held."""
    out: set[float] = set()
    for line in lines:
        if marker in line:
            _, _, payload = line.partition(": ")
            out.update(abs(float(x)) for x in _NUMBER.findall(payload))
    return sorted(out)


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
    known: Sequence[float] = (),
    base: tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]] | None = None,
) -> list[BookUpdate]:
    """The level updates of one book injection at ``t0`` (``known``: prices the market's
    recorded book lines mention, for the spread's deletions; ``base``: the whole book they
    apply to, for venues that send whole books)."""
    if kind == AnomalyKind.BOOK_IMBALANCE:
        m = min(magnitude, 0.99)
        size = (1.0 + m) / (1.0 - m) * top.ask_depth * 1.5 + top.bid_depth
        big = _venue(size, top.bid_size, top.bid_contracts)
        was = _venue(top.bid_size, top.bid_size, top.bid_contracts)
        hold = cfg.book_imbalance_min_s + 3.0 * cfg.book_imbalance_smoothing_s + 1.0
        steps = max(2, math.ceil(hold / 0.5))
        out = [
            BookUpdate(native, chan, t0 + 0.5 * j, ((top.bid, big),), (), decimals, base)
            for j in range(steps)
        ]
        end = BookUpdate(native, chan, t0 + 0.5 * steps, ((top.bid, was),), (), decimals, base)
        out.append(end)
        return out
    if kind == AnomalyKind.SPREAD:
        width = (magnitude - 1.0) / 2.0 * (top.ask - top.bid)
        count = math.ceil(width / tick) + 1
        grid_bids = {round(top.bid - j * tick, decimals) for j in range(min(count, MAX_GRID))}
        grid_asks = {round(top.ask + j * tick, decimals) for j in range(min(count, MAX_GRID))}
        lo, hi = top.bid - width, top.ask + width
        bids = tuple((p, 0.0) for p in sorted(grid_bids | {p for p in known if lo <= p <= top.bid}))
        asks = tuple((p, 0.0) for p in sorted(grid_asks | {p for p in known if top.ask <= p <= hi}))
        return [
            BookUpdate(native, chan, t0 + 0.3 * j, bids, asks, decimals, base) for j in range(3)
        ]
    raise ValueError(f"not a book injection: {kind}")
