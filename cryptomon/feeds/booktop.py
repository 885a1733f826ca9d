"""BookTop numbers from a cryptofeed order book, read once per symbol and loop turn.

A book update costs the converter nothing here: it keeps a reference to the symbol's
cryptofeed book (:attr:`BookState.book`, which cryptofeed updates in place) and marks the
symbol dirty. At the end of the loop turn :meth:`TopTracker.read` reads each dirty book's top
once: the best ``levels`` of each side (``SortedDict.to_list``, sorted and cut at the book's
``max_depth`` by cryptofeed's C order book; a side is re-sorted only after a price level was
inserted or removed), their Decimal sum and the best level as floats. Under load one read
stands for many updates (DESIGN.md section 7). :func:`book_top` makes the
:class:`~cryptomon.events.BookTop` event from the state read: the only code that computes
BookTop numbers.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cryptomon.events import BookTop
from cryptomon.feeds.fastevents import factory
from cryptomon.market.units import SymbolUnits

_ZERO = Decimal(0)
# the order in which book_top passes the fields (checked by ``factory``)
BOOK_TOP_FIELDS = (
    *("exchange", "symbol", "ts", "ts_recv", "bid", "bid_size", "ask", "ask_size"),
    *("spread", "spread_bps", "bid_depth", "ask_depth", "imbalance", "levels", "updates"),
    *("bid_contracts", "ask_contracts"),
)
_new_top = factory(BookTop, BOOK_TOP_FIELDS)


class SideTop:
    """The top ``levels`` levels of one side as last read: the best level as floats, the
    Decimal sum of their sizes as a float and how many there are."""

    __slots__ = ("best", "best_float", "best_size_float", "count", "depth_float", "head")

    def __init__(self) -> None:
        self.head: list[tuple[Any, Any]] = []
        self.best: Any = None
        self.best_float = 0.0
        self.best_size_float = 0.0
        self.depth_float = 0.0
        self.count = 0

    def take(self, head: list[tuple[Any, Any]]) -> None:
        """Keep the numbers of ``head``: the side's best levels, best first (not empty); a head
        equal to the last one (same level objects: nothing changed in it) costs no conversion."""
        if head == self.head:
            return
        self.head = head
        best, size = head[0]
        if best is not self.best:
            self.best = best
            self.best_float = float(best)
        self.best_size_float = float(size)
        self.count = len(head)
        self.depth_float = float(sum([q for _, q in head], _ZERO))


class BookState:
    """Everything kept per (feed, symbol) book, bound once: both sides, the time of the last
    BookSnapshot, whether a full book was seen on this connection (gap detection), and the
    book updates not yet published as a BookTop (``pending``, with the times of the latest and
    the cryptofeed book they changed: ``book``, read at the end of the loop turn)."""

    __slots__ = (
        "ask",
        "asks_memo",
        "bid",
        "bids_memo",
        "book",
        "last_snapshot",
        "pending",
        "receipt",
        "seen",
        "timestamp",
        "ts",
        "ts_recv",
    )

    def __init__(self) -> None:
        self.bid = SideTop()
        self.ask = SideTop()
        self.book: Any = None  # cryptofeed's book of the latest update (order_book.OrderBook)
        self.last_snapshot = float("-inf")
        self.seen = False
        self.pending = 0  # book updates since this symbol's last BookTop
        self.timestamp: Any = None  # the latest update's times as cryptofeed gave them
        self.receipt = 0.0
        self.ts = 0.0  # exchange and receipt time of the latest update (set by the flush)
        self.ts_recv = 0.0
        # price -> (size object, (price, size) floats) of the last snapshot, per side
        self.bids_memo: dict[Any, tuple[Any, tuple[float, float]]] = {}
        self.asks_memo: dict[Any, tuple[Any, tuple[float, float]]] = {}


def book_top(
    state: BookState, exchange: str, symbol: str, unit: SymbolUnits | None = None
) -> BookTop:
    """The :class:`BookTop` of a book whose ``state`` was refreshed (not crossed, no side
    empty: :meth:`TopTracker.read` returned True), at the times of its latest update and
    standing for its ``pending`` updates. The one place BookTop numbers are made.

    With ``unit`` (the market's spec) sizes and depths are base units and the best levels'
    venue quantities go in ``bid_contracts``/``ask_contracts`` where the two differ (an
    inverse market's depth is converted at its side's best price)."""
    bid = state.bid
    ask = state.ask
    bid_price = bid.best_float
    ask_price = ask.best_float
    spread = ask_price - bid_price
    mid = (ask_price + bid_price) * 0.5
    bid_depth = bid.depth_float
    ask_depth = ask.depth_float
    bid_size = bid.best_size_float
    ask_size = ask.best_size_float
    bid_contracts = ask_contracts = None
    if unit is not None and unit.contracts_differ:
        bid_contracts, ask_contracts = bid_size, ask_size
        bid_size = unit.amount(bid_size, bid_price)
        ask_size = unit.amount(ask_size, ask_price)
        bid_depth = unit.amount(bid_depth, bid_price)
        ask_depth = unit.amount(ask_depth, ask_price)
    total = bid_depth + ask_depth
    return _new_top(
        exchange,
        symbol,
        state.ts,
        state.ts_recv,
        bid_price,
        bid_size,
        ask_price,
        ask_size,
        spread,
        spread / mid * 10_000 if mid > 0 else 0.0,
        bid_depth,
        ask_depth,
        (bid_depth - ask_depth) / total if total > 0 else 0.0,
        bid.count if bid.count < ask.count else ask.count,
        state.pending,
        bid_contracts,
        ask_contracts,
    )


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
    """Per symbol :class:`BookState` for one feed; reads the top of a book when asked."""

    def __init__(self, levels: int) -> None:
        self.levels = levels
        self.states: dict[str, BookState] = {}
        self.reads = 0  # reads of a book's top (for tests and benchmarks)

    def state(self, symbol: str) -> BookState:
        """The symbol's state, created on first use."""
        state = self.states.get(symbol)
        if state is None:
            state = self.states[symbol] = BookState()
        return state

    def read(self, state: BookState) -> tuple[list[Any], list[Any]] | None:
        """Read the top of ``state.book`` into ``state``; returns the sorted levels read (bids,
        asks: best first, at most the book's ``max_depth``), or None if a side is empty or the
        book is crossed (check :meth:`crossed`)."""
        book = state.book
        self.reads += 1
        bids = book.bids.to_list()
        asks = book.asks.to_list()
        if not bids or not asks or bids[0][0] >= asks[0][0]:
            return None
        levels = self.levels
        state.bid.take(bids[:levels])
        state.ask.take(asks[:levels])
        return bids, asks

    @staticmethod
    def crossed(book: Any) -> bool:
        """True if both sides have levels and the best bid is at or above the best ask."""
        bids, asks = book.bids, book.asks
        return bool(len(bids) and len(asks) and bids.index(0)[0] >= asks.index(0)[0])
