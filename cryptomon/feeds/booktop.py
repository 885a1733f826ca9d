"""BookTop numbers from a cryptofeed order book, kept up to date from its deltas.

Reading the top of a cryptofeed book re-sorts it after every inserted level (DESIGN.md 6), so
:class:`TopTracker` copies the sorted levels (``SortedDict.to_list``) only on a full book (or
when a delta is too tangled to follow). Otherwise it follows the delta: changes deeper than the
``levels``-th level are ignored (they cannot change the numbers); size changes in the top and
a new level entering the top are applied arithmetically (Decimal, exact); a level leaving the
top brings the next one up with one indexed read of the (already updated) book side.
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

    __slots__ = (
        "best",
        "best_f",
        "best_size_f",
        "count",
        "depth",
        "depth_f",
        "edge",
        "is_bid",
        "n",
        "top",
    )

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
        self.count = 0  # levels in ``top`` (n once the side has n levels)

    def load(self, levels: list[tuple[Any, Any]]) -> bool:
        """Read the sorted levels (best first); False if the side is empty."""
        if not levels:
            self.top = {}
            self.edge = None
            return False
        n = self.n
        head = levels[:n]
        self.top = dict(head)
        self.count = len(head)
        self.best, best_size = head[0]
        self.best_f = float(self.best)
        self.best_size_f = float(best_size)
        self.depth = sum([q for _, q in head], _ZERO)
        self.depth_f = float(self.depth)
        self.edge = head[-1][0] if len(levels) >= n else None
        return True

    def apply(self, changes: Any, book: Any) -> bool:
        """Apply delta ``(price, size)`` changes (``book`` is already updated); False when the
        top must be re-read."""
        if not changes:
            return True
        edge = self.edge
        if edge is None:
            return False
        top = self.top
        is_bid = self.is_bid
        if len(changes) == 1:  # the common case: one level changed
            price = changes[0][0]
            if (price < edge) if is_bid else (price > edge):
                return True
            inside = 1
        else:
            inside = 0  # changes at or above the n-th level when the delta began
            for price, _ in changes:
                if not ((price < edge) if is_bid else (price > edge)):
                    inside += 1
            if not inside:
                return True
        for price, size in changes:
            if (price < edge) if is_bid else (price > edge):
                continue  # deeper than the (current) n-th level
            old = top.get(price)
            if old is not None and size:  # a top level's size changed
                top[price] = size
                self.depth += size - old
                if price == self.best:
                    self.best_size_f = float(size)
            elif old is not None:  # a top level left: the next one moves up
                side = book.bids if is_bid else book.asks
                if inside > 1 or len(side) < self.n:
                    return False
                del top[price]
                edge_price, edge_size = side.index(self.n - 1)
                top[edge_price] = edge_size
                self.depth += edge_size - old
                self.edge = edge_price
                if price == self.best:
                    self._set_best(*side.index(0))
            elif size:  # a new level inside the top pushes the n-th one out
                self.depth += size - top.pop(edge)
                top[price] = size
                self.edge = edge = min(top) if is_bid else max(top)
                if (price > self.best) if is_bid else (price < self.best):
                    self._set_best(price, size)
        self.depth_f = float(self.depth)
        return True

    def _set_best(self, price: Any, size: Any) -> None:
        self.best = price
        self.best_f = float(price)
        self.best_size_f = float(size)


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
        if delta is None or not bid.apply(delta.get(BID, ()), book):
            self.reads += 1
            if not bid.load(book.bids.to_list()):
                self.forget(symbol)
                return None
        if delta is None or not ask.apply(delta.get(ASK, ()), book):
            self.reads += 1
            if not ask.load(book.asks.to_list()):
                self.forget(symbol)
                return None
        if bid.best >= ask.best:
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
            bid.count if bid.count < ask.count else ask.count,
        )

    @staticmethod
    def crossed(book: Any) -> bool:
        bids, asks = book.bids, book.asks
        return bool(len(bids) and len(asks) and bids.index(0)[0] >= asks.index(0)[0])
