"""BookTop numbers from a cryptofeed order book, kept up to date from its deltas.

Reading the top of a cryptofeed book re-sorts it after every inserted level (DESIGN.md 6), so
:class:`TopTracker` copies the sorted levels (``SortedDict.to_list``) only on a full book, or
when a top level is removed and no spare level is left to replace it. Otherwise it follows the
delta on its own copy of the best ``levels + spare`` levels: changes below them are ignored
(they cannot reach the top), sizes and the depth sum are updated exactly (Decimal), and levels
move between the top and the spares as they are inserted and removed. ``spare`` must not
exceed the book's ``max_depth - levels`` (cryptofeed drops deeper levels without a delta).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from decimal import Decimal
from typing import Any

from cryptofeed.defines import ASK, BID

_ZERO = Decimal(0)
# BookTop numbers: bid, bid_size, ask, ask_size, spread, spread_bps, bid_depth, ask_depth,
# imbalance, levels
TopValues = tuple[float, float, float, float, float, float, float, float, float, int]


class _Side:
    """The best ``n + len(spare)`` levels of one side (exactly the book's): the top ``n`` with
    their sum and best level, plus up to ``k`` spare levels below them that refill the top when
    one of its levels is removed, without reading the book.

    Prices are kept in ascending lists (``tk`` top, ``sk`` spares; ``bisect``) next to size
    dicts, so the best, the n-th (``edge``) and the last followed price (``bound``) are at the
    ends of the lists: bids have their best at the end, asks at the start.
    """

    __slots__ = (
        "best",
        "best_f",
        "best_size_f",
        "count",
        "depth",
        "depth_f",
        "full",
        "is_bid",
        "k",
        "n",
        "sk",
        "spare",
        "tk",
        "top",
    )

    def __init__(self, is_bid: bool, n: int, k: int) -> None:
        self.is_bid = is_bid
        self.n = n
        self.k = k
        self.top: dict[Any, Any] = {}
        self.spare: dict[Any, Any] = {}
        self.tk: list[Any] = []
        self.sk: list[Any] = []
        self.full = False  # the side has at least n levels (else every change re-reads)
        self.best: Any = None
        self.best_f = 0.0
        self.best_size_f = 0.0
        self.depth: Any = _ZERO
        self.depth_f = 0.0
        self.count = 0  # levels in the top (n once the side has n levels)

    def load(self, levels: list[tuple[Any, Any]]) -> bool:
        """Read the sorted levels (best first); False if the side is empty."""
        if not levels:
            self.full = False
            return False
        n = self.n
        head = levels[:n]
        tail = levels[n : n + self.k]
        self.top = dict(head)
        self.spare = dict(tail)
        self.tk = sorted(self.top)
        self.sk = sorted(self.spare)
        self.count = len(head)
        self.full = len(head) == n
        self.best, best_size = head[0]
        self.best_f = float(self.best)
        self.best_size_f = float(best_size)
        self.depth = sum([q for _, q in head], _ZERO)
        self.depth_f = float(self.depth)
        return True

    def apply(self, changes: Any) -> bool:
        """Apply delta ``(price, size)`` changes in order; False when the top must be re-read
        (a top level removed with no spare left, or a side with fewer than n levels)."""
        if not changes:
            return True
        if not self.full:
            return False
        return self._apply_bids(changes) if self.is_bid else self._apply_asks(changes)

    def _apply_bids(self, changes: Any) -> bool:
        top, spare, tk, sk = self.top, self.spare, self.tk, self.sk
        depth = self.depth
        for price, size in changes:
            if price < (sk[0] if sk else tk[0]):
                continue  # below every level followed: cannot reach the top n
            old = top.get(price)
            if old is not None:
                if size:
                    top[price] = size
                    depth += size - old
                    if price == self.best:
                        self.best_size_f = float(size)
                    continue
                if not sk:
                    return False
                del top[price]  # a top level left: the best spare moves up
                del tk[bisect_left(tk, price)]
                up = sk.pop()
                up_size = spare.pop(up)
                top[up] = up_size
                tk.insert(0, up)
                depth += up_size - old
                if price == self.best:
                    self._set_best(tk[-1], top[tk[-1]])
                continue
            old = spare.get(price)
            if old is not None:
                if size:
                    spare[price] = size
                else:
                    del spare[price]
                    del sk[bisect_left(sk, price)]
                continue
            if not size:
                continue  # removing a level that is not there
            if price > tk[0]:  # enters the top n: the n-th level becomes the best spare
                edge = tk.pop(0)
                out = top.pop(edge)
                spare[edge] = out
                sk.append(edge)
                top[price] = size
                insort(tk, price)
                depth += size - out
                if price > self.best:
                    self._set_best(price, size)
            else:
                spare[price] = size
                insort(sk, price)
            if len(sk) > self.k:  # follow at most k spares: forget the last one
                del spare[sk.pop(0)]
        if depth is not self.depth:  # Decimal ops make new objects: changed
            self.depth = depth
            self.depth_f = float(depth)
        return True

    def _apply_asks(self, changes: Any) -> bool:
        top, spare, tk, sk = self.top, self.spare, self.tk, self.sk
        depth = self.depth
        for price, size in changes:
            if price > (sk[-1] if sk else tk[-1]):
                continue
            old = top.get(price)
            if old is not None:
                if size:
                    top[price] = size
                    depth += size - old
                    if price == self.best:
                        self.best_size_f = float(size)
                    continue
                if not sk:
                    return False
                del top[price]
                del tk[bisect_left(tk, price)]
                up = sk.pop(0)
                up_size = spare.pop(up)
                top[up] = up_size
                tk.append(up)
                depth += up_size - old
                if price == self.best:
                    self._set_best(tk[0], top[tk[0]])
                continue
            old = spare.get(price)
            if old is not None:
                if size:
                    spare[price] = size
                else:
                    del spare[price]
                    del sk[bisect_left(sk, price)]
                continue
            if not size:
                continue
            if price < tk[-1]:
                edge = tk.pop()
                out = top.pop(edge)
                spare[edge] = out
                sk.insert(0, edge)
                top[price] = size
                insort(tk, price)
                depth += size - out
                if price < self.best:
                    self._set_best(price, size)
            else:
                spare[price] = size
                insort(sk, price)
            if len(sk) > self.k:
                del spare[sk.pop()]
        if depth is not self.depth:  # Decimal ops make new objects: changed
            self.depth = depth
            self.depth_f = float(depth)
        return True

    def _set_best(self, price: Any, size: Any) -> None:
        self.best = price
        self.best_f = float(price)
        self.best_size_f = float(size)


class BookState:
    """Everything kept per (feed, symbol) book, bound once: both sides, the time of the last
    BookSnapshot and whether a full book was seen on this connection (gap detection)."""

    __slots__ = ("ask", "asks_memo", "bid", "bids_memo", "last_snapshot", "loaded", "seen")

    def __init__(self, n: int, k: int) -> None:
        self.bid = _Side(True, n, k)
        self.ask = _Side(False, n, k)
        self.loaded = False  # both sides read from the book (else the next update re-reads)
        self.last_snapshot = float("-inf")
        self.seen = False
        # price -> (size object, (price, size) floats) of the last snapshot, per side
        self.bids_memo: dict[Any, tuple[Any, tuple[float, float]]] = {}
        self.asks_memo: dict[Any, tuple[Any, tuple[float, float]]] = {}


def float_levels(
    levels: list[tuple[Any, Any]], memo: dict[Any, tuple[Any, tuple[float, float]]]
) -> tuple[tuple[tuple[float, float], ...], dict[Any, tuple[Any, tuple[float, float]]]]:
    """``levels`` as float pairs, reusing the previous snapshot's pair of every level whose
    size object is unchanged (Decimal -> float goes through a string: ~0.3 us each, and most
    levels of a book do not change between two snapshots). Returns the pairs and the new memo.
    """
    out = []
    new: dict[Any, tuple[Any, tuple[float, float]]] = {}
    for price, size in levels:
        hit = memo.get(price)
        if hit is None:
            hit = (size, (float(price), float(size)))
        elif hit[0] is not size:
            hit = (size, (hit[1][0], float(size)))
        new[price] = hit
        out.append(hit[1])
    return tuple(out), new


class TopTracker:
    """Per symbol BookTop numbers for one feed."""

    def __init__(self, levels: int, spare: int = 0) -> None:
        self.levels = levels
        self.spare = spare  # levels followed below the top (<= the book's max_depth - levels)
        self.states: dict[str, BookState] = {}
        self.reads = 0  # sorted reads of a side (for tests and benchmarks)

    def state(self, symbol: str) -> BookState:
        """The symbol's state, created on first use."""
        st = self.states.get(symbol)
        if st is None:
            st = self.states[symbol] = BookState(self.levels, self.spare)
        return st

    def forget(self, symbol: str) -> None:
        """The book is dropped (resync): the next update re-reads both sides."""
        st = self.states.get(symbol)
        if st is not None:
            st.loaded = False

    def refresh(self, st: BookState, book: Any, delta: Any) -> bool:
        """Bring ``st`` up to date with this update; False if a side is empty or the book is
        crossed (check :meth:`crossed`), after which the next update re-reads the book."""
        bid = st.bid
        ask = st.ask
        if delta is None or not st.loaded:
            st.loaded = True
            self.reads += 2
            if not bid.load(book.bids.to_list()) or not ask.load(book.asks.to_list()):
                st.loaded = False
                return False
        else:  # ``_Side.apply`` inlined: this runs on every book update
            changes = delta.get(BID)
            if changes and not (bid.full and bid._apply_bids(changes)):
                self.reads += 1
                if not bid.load(book.bids.to_list()):
                    st.loaded = False
                    return False
            changes = delta.get(ASK)
            if changes and not (ask.full and ask._apply_asks(changes)):
                self.reads += 1
                if not ask.load(book.asks.to_list()):
                    st.loaded = False
                    return False
        if bid.best >= ask.best:
            st.loaded = False
            return False
        return True

    def update(self, symbol: str, book: Any, delta: Any) -> TopValues | None:
        """The BookTop numbers after this update; None if a side is empty or the book is
        crossed (check :meth:`crossed`)."""
        st = self.state(symbol)
        if not self.refresh(st, book, delta):
            return None
        bid, ask = st.bid, st.ask
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
