"""BookTop numbers from a cryptofeed order book, kept up to date from its deltas.

Reading the top of a cryptofeed book re-sorts it after every inserted level (DESIGN.md 6), so
:class:`TopTracker` reads the sorted levels (``SortedDict.to_list``) only when it must: on a
full book, and when a delta inserts or removes a level within the top ``levels`` of a side.
Size changes of levels already in the top are applied arithmetically (Decimal, exact) and
changes deeper than the ``levels``-th level are ignored -- they cannot change the numbers.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cryptofeed.defines import ASK, BID

_ZERO = Decimal(0)
# BookTop numbers: bid, bid_size, ask, ask_size, spread, spread_bps, bid_depth, ask_depth,
# imbalance, levels
TopValues = tuple[float, float, float, float, float, float, float, float, float, int]


class _Side:
    """Top ``n`` levels of one side: sizes by price, their sum, the best level, the edge."""

    __slots__ = ("best", "best_f", "best_size_f", "depth", "depth_f", "edge", "is_bid", "n", "top")

    def __init__(self, is_bid: bool, n: int) -> None:
        self.is_bid = is_bid
        self.n = n
        self.top: dict[Any, Any] = {}
        self.best: Any = None
        self.best_f = 0.0
        self.best_size_f = 0.0
        self.depth: Any = _ZERO
        self.depth_f = 0.0
        self.edge: Any = None  # the n-th price; None while the side has fewer than n levels

    def load(self, levels: list[tuple[Any, Any]]) -> bool:
        """Read the sorted levels (best first); False if the side is empty."""
        if not levels:
            self.top = {}
            self.edge = None
            return False
        n = self.n
        head = levels[:n]
        self.top = dict(head)
        self.best, best_size = head[0]
        self.best_f = float(self.best)
        self.best_size_f = float(best_size)
        self.depth = sum([q for _, q in head], _ZERO)
        self.depth_f = float(self.depth)
        self.edge = head[-1][0] if len(levels) >= n else None
        return True

    def apply(self, changes: Any) -> bool:
        """Apply delta ``(price, size)`` changes; False when the top must be re-read."""
        edge = self.edge
        if edge is None:
            return not changes
        top = self.top
        is_bid = self.is_bid
        changed = False
        for price, size in changes:
            if (price < edge) if is_bid else (price > edge):
                continue  # deeper than the top n levels
            old = top.get(price)
            if old is None or not size:
                return False  # a level enters or leaves the top: re-read
            top[price] = size
            self.depth += size - old
            if price == self.best:
                self.best_size_f = float(size)
            changed = True
        if changed:
            self.depth_f = float(self.depth)
        return True


class TopTracker:
    """Per symbol BookTop numbers for one feed."""

    def __init__(self, levels: int) -> None:
        self.levels = levels
        self._sides: dict[str, tuple[_Side, _Side]] = {}
        self.reads = 0  # sorted reads of a side (for tests and benchmarks)

    def forget(self, symbol: str) -> None:
        self._sides.pop(symbol, None)

    def update(self, symbol: str, book: Any, delta: Any) -> TopValues | None:
        """The BookTop numbers after this update; None if a side is empty or the book is
        crossed (check :meth:`crossed`)."""
        sides = self._sides.get(symbol)
        if sides is None:
            sides = self._sides[symbol] = (_Side(True, self.levels), _Side(False, self.levels))
            delta = None
        bid, ask = sides
        reread = False
        if delta is None or not bid.apply(delta.get(BID, ())):
            self.reads += 1
            reread = True
            if not bid.load(book.bids.to_list()):
                self.forget(symbol)
                return None
        if delta is None or not ask.apply(delta.get(ASK, ())):
            self.reads += 1
            reread = True
            if not ask.load(book.asks.to_list()):
                self.forget(symbol)
                return None
        if reread and bid.best >= ask.best:
            self.forget(symbol)
            return None
        bid_f = bid.best_f
        ask_f = ask.best_f
        spread = ask_f - bid_f
        mid = (ask_f + bid_f) / 2
        bd = bid.depth_f
        ad = ask.depth_f
        total = bd + ad
        return (
            bid_f,
            bid.best_size_f,
            ask_f,
            ask.best_size_f,
            spread,
            spread / mid * 10_000 if mid > 0 else 0.0,
            bd,
            ad,
            (bd - ad) / total if total > 0 else 0.0,
            min(len(bid.top), len(ask.top)),
        )

    @staticmethod
    def crossed(book: Any) -> bool:
        bids, asks = book.bids, book.asks
        return bool(len(bids) and len(asks) and bids.index(0)[0] >= asks.index(0)[0])
