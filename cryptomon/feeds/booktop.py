"""BookTop numbers from a cryptofeed order book, kept up to date from its deltas.

Reading the top of a cryptofeed book re-sorts it after every inserted level (DESIGN.md 6), so
:class:`TopTracker` copies the sorted levels (``SortedDict.to_list``) only on a full book, or
when a top level is removed and no spare level is left to replace it. Otherwise it follows the
delta on its own copy of the best ``levels + spare`` levels: changes below them are ignored
(they cannot reach the top), sizes and the depth sum are updated exactly (Decimal), and levels
move between the top and the spares as they are inserted and removed. ``spare`` must not
exceed the book's ``max_depth - levels`` (cryptofeed drops deeper levels without a delta).
:func:`book_top` makes the :class:`~cryptomon.events.BookTop` event from the refreshed state:
the only code that computes BookTop numbers.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from cryptofeed.defines import ASK, BID

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


class SideLevels:
    """The best ``levels + spare_max`` levels of one side (exactly the book's): the top
    ``levels`` with their sum and best level, plus up to ``spare_max`` spare levels below them
    that refill the top when one of its levels is removed, without reading the book.

    Prices are kept in ascending lists (``top_prices``, ``spare_prices``; ``bisect``) next to
    size dicts, so the best, the last top level (``edge``) and the last followed price are at
    the ends of the lists: bids have their best at the end, asks at the start.
    """

    __slots__ = (
        "best",
        "count",
        "depth",
        "float_best",
        "float_depth",
        "float_size",
        "full",
        "is_bid",
        "levels",
        "spare",
        "spare_max",
        "spare_prices",
        "src_best",
        "src_depth",
        "src_size",
        "top",
        "top_prices",
    )

    def __init__(self, is_bid: bool, levels: int, spare_max: int) -> None:
        self.is_bid = is_bid
        self.levels = levels
        self.spare_max = spare_max
        self.top: dict[Any, Any] = {}
        self.spare: dict[Any, Any] = {}
        self.top_prices: list[Any] = []
        self.spare_prices: list[Any] = []
        self.full = False  # the side has ``levels`` levels (else every change re-reads)
        self.best: Any = None
        self.depth: Any = _ZERO
        self.count = 0  # levels in the top (``levels`` once the side has as many)
        # float() of the Decimal best price, its size and the depth, made by ``floats`` (once
        # per BookTop, not per update) and kept while the same Decimal object is current
        self.src_best: Any = None
        self.src_size: Any = None
        self.src_depth: Any = None
        self.float_best = self.float_size = self.float_depth = 0.0

    def load(self, levels: list[tuple[Any, Any]]) -> bool:
        """Read the sorted levels (best first); False if the side is empty."""
        if not levels:
            self.full = False
            return False
        count = self.levels
        head = levels[:count]
        tail = levels[count : count + self.spare_max]
        self.top = dict(head)
        self.spare = dict(tail)
        self.top_prices = sorted(self.top)
        self.spare_prices = sorted(self.spare)
        self.count = len(head)
        self.full = len(head) == count
        self.best = head[0][0]
        self.depth = sum([q for _, q in head], _ZERO)
        return True

    def refill(self, levels: list[tuple[Any, Any]]) -> None:
        """Follow the spare levels of a sorted read of the side (best first) again: a top
        level removed took the best spare's place, and a level below the last one followed
        is not followed (levels between them may be unknown), so the spares only shrink
        between reads. The top is the read's first ``count`` levels already."""
        tail = levels[self.count : self.count + self.spare_max]
        if len(tail) > len(self.spare_prices):
            self.spare = dict(tail)
            prices = [price for price, _ in tail]  # best first: bids descending
            if self.is_bid:
                prices.reverse()
            self.spare_prices = prices

    def floats(self) -> tuple[float, float, float]:
        """The best price, its size and the depth as floats (converted only when their
        Decimal changed since the last call: a Decimal's float() goes through a string)."""
        best = self.best
        if best is not self.src_best:
            self.src_best = best
            self.float_best = float(best)
        size = self.top[best]
        if size is not self.src_size:
            self.src_size = size
            self.float_size = float(size)
        depth = self.depth
        if depth is not self.src_depth:
            self.src_depth = depth
            self.float_depth = float(depth)
        return self.float_best, self.float_size, self.float_depth

    def apply_bids(self, changes: Any) -> bool:  # noqa: PLR0912 - per-update hot path, inlined on purpose
        """Apply delta ``(price, size)`` changes of the bid side in order (the side is
        ``full``); False when the top must be re-read (a top level removed, no spare left)."""
        top, spare = self.top, self.spare
        top_prices, spare_prices = self.top_prices, self.spare_prices
        depth = self.depth
        for price, size in changes:
            if price < (spare_prices[0] if spare_prices else top_prices[0]):
                continue  # below every level followed: cannot reach the top ``levels``
            old = top.get(price)
            if old is not None:
                if size:
                    top[price] = size
                    depth += size - old
                    continue
                if not spare_prices:
                    return False
                del top[price]  # a top level left: the best spare moves up
                del top_prices[bisect_left(top_prices, price)]
                up = spare_prices.pop()
                up_size = spare.pop(up)
                top[up] = up_size
                top_prices.insert(0, up)
                depth += up_size - old
                if price == self.best:
                    self.best = top_prices[-1]
                continue
            old = spare.get(price)
            if old is not None:
                if size:
                    spare[price] = size
                else:
                    del spare[price]
                    del spare_prices[bisect_left(spare_prices, price)]
                continue
            if not size:
                continue  # removing a level that is not there
            if price > top_prices[0]:  # enters the top: its last level becomes the best spare
                edge = top_prices.pop(0)
                out = top.pop(edge)
                spare[edge] = out
                spare_prices.append(edge)
                top[price] = size
                insort(top_prices, price)
                depth += size - out
                if price > self.best:  # noqa: PLR1730 - hot path: a branch, not max/min()
                    self.best = price
            else:
                spare[price] = size
                insort(spare_prices, price)
            if len(spare_prices) > self.spare_max:  # follow spare_max spares at most
                del spare[spare_prices.pop(0)]
        self.depth = depth
        return True

    def apply_asks(self, changes: Any) -> bool:  # noqa: PLR0912 - per-update hot path, inlined on purpose
        """:meth:`apply_bids` for the ask side (best price at the start of the lists)."""
        top, spare = self.top, self.spare
        top_prices, spare_prices = self.top_prices, self.spare_prices
        depth = self.depth
        for price, size in changes:
            if price > (spare_prices[-1] if spare_prices else top_prices[-1]):
                continue
            old = top.get(price)
            if old is not None:
                if size:
                    top[price] = size
                    depth += size - old
                    continue
                if not spare_prices:
                    return False
                del top[price]
                del top_prices[bisect_left(top_prices, price)]
                up = spare_prices.pop(0)
                up_size = spare.pop(up)
                top[up] = up_size
                top_prices.append(up)
                depth += up_size - old
                if price == self.best:
                    self.best = top_prices[0]
                continue
            old = spare.get(price)
            if old is not None:
                if size:
                    spare[price] = size
                else:
                    del spare[price]
                    del spare_prices[bisect_left(spare_prices, price)]
                continue
            if not size:
                continue
            if price < top_prices[-1]:
                edge = top_prices.pop()
                out = top.pop(edge)
                spare[edge] = out
                spare_prices.insert(0, edge)
                top[price] = size
                insort(top_prices, price)
                depth += size - out
                if price < self.best:  # noqa: PLR1730 - hot path: a branch, not max/min()
                    self.best = price
            else:
                spare[price] = size
                insort(spare_prices, price)
            if len(spare_prices) > self.spare_max:
                del spare[spare_prices.pop()]
        self.depth = depth
        return True


class BookState:
    """Everything kept per (feed, symbol) book, bound once: both sides, the time of the last
    BookSnapshot, whether a full book was seen on this connection (gap detection), and the
    book updates not yet published as a BookTop (``pending``, with the times of the latest)."""

    __slots__ = (
        "ask",
        "asks_memo",
        "bid",
        "bids_memo",
        "last_snapshot",
        "loaded",
        "pending",
        "seen",
        "ts",
        "ts_recv",
    )

    def __init__(self, levels: int, spare_max: int) -> None:
        self.bid = SideLevels(True, levels, spare_max)
        self.ask = SideLevels(False, levels, spare_max)
        self.loaded = False  # both sides read from the book (else the next update re-reads)
        self.last_snapshot = float("-inf")
        self.seen = False
        self.pending = 0  # book updates since this symbol's last BookTop
        self.ts = 0.0  # exchange and receipt time of the latest update
        self.ts_recv = 0.0
        # price -> (size object, (price, size) floats) of the last snapshot, per side
        self.bids_memo: dict[Any, tuple[Any, tuple[float, float]]] = {}
        self.asks_memo: dict[Any, tuple[Any, tuple[float, float]]] = {}


def book_top(
    state: BookState, exchange: str, symbol: str, unit: SymbolUnits | None = None
) -> BookTop:
    """The :class:`BookTop` of a book whose ``state`` was refreshed (not crossed, no side
    empty: :meth:`TopTracker.refresh` returned True), at the times of its latest update and
    standing for its ``pending`` updates. The one place BookTop numbers are made.

    With ``unit`` (the market's spec) sizes and depths are base units and the best levels'
    venue quantities go in ``bid_contracts``/``ask_contracts`` where the two differ (an
    inverse market's depth is converted at its side's best price)."""
    # SideLevels.floats of both sides, inlined (once per BookTop): a Decimal's float() only
    # when the object changed since the side's last BookTop
    bid = state.bid
    best = bid.best
    if best is not bid.src_best:
        bid.src_best = best
        bid.float_best = float(best)
    bid_price = bid.float_best
    size = bid.top[best]
    if size is not bid.src_size:
        bid.src_size = size
        bid.float_size = float(size)
    bid_size = bid.float_size
    size = bid.depth
    if size is not bid.src_depth:
        bid.src_depth = size
        bid.float_depth = float(size)
    bid_depth = bid.float_depth
    ask = state.ask
    best = ask.best
    if best is not ask.src_best:
        ask.src_best = best
        ask.float_best = float(best)
    ask_price = ask.float_best
    size = ask.top[best]
    if size is not ask.src_size:
        ask.src_size = size
        ask.float_size = float(size)
    ask_size = ask.float_size
    size = ask.depth
    if size is not ask.src_depth:
        ask.src_depth = size
        ask.float_depth = float(size)
    ask_depth = ask.float_depth
    spread = ask_price - bid_price
    mid = (ask_price + bid_price) * 0.5
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


def base_levels(
    unit: SymbolUnits, levels: tuple[tuple[float, float], ...]
) -> tuple[tuple[float, float], ...]:
    """``(price, size)`` levels in the venue's quantity as base units, each converted at its
    own price as :func:`book_top` converts the best levels (``unit.amount``)."""
    amount = unit.amount
    return tuple([(price, amount(size, price)) for price, size in levels])


def float_levels(
    levels: list[tuple[Any, Any]], memo: dict[Any, tuple[Any, tuple[float, float]]]
) -> tuple[tuple[tuple[float, float], ...], dict[Any, tuple[Any, tuple[float, float]]]]:
    """``levels`` as float pairs, reusing the pair of every level whose size object is unchanged
    since a previous snapshot (Decimal -> float goes through a string: ~0.3 us each, and most
    levels of a book do not change between two snapshots). ``memo`` is updated in place and
    rebuilt from ``levels`` alone when it holds more than three times as many prices (levels
    that left the book). Returns the pairs and the memo to pass next time."""
    out: list[tuple[float, float]] = []
    _pairs(levels, memo, out.append)
    if len(memo) > 3 * len(levels):
        memo = {price: memo[price] for price, _ in levels}
    return tuple(out), memo


def _pairs(
    levels: Iterable[tuple[Any, Any]],
    memo: dict[Any, tuple[Any, tuple[float, float]]],
    append: Callable[[tuple[float, float]], None],
) -> None:
    """Append the float pair of each (price, size) level, from ``memo`` where the level's
    size object is the one it was converted from (``memo`` updated in place)."""
    get = memo.get
    for price, size in levels:
        hit = get(price)
        if hit is None or hit[0] is not size:
            pair = (float(price) if hit is None else hit[1][0], float(size))
            hit = memo[price] = (size, pair)
        append(hit[1])


def followed_levels(
    side: SideLevels, n: int, memo: dict[Any, tuple[Any, tuple[float, float]]]
) -> tuple[tuple[tuple[float, float], ...], dict[Any, tuple[Any, tuple[float, float]]]]:
    """:func:`float_levels` of the side's best ``n`` levels taken from the levels the side
    follows, without a sorted read of the book (the caller checks that the side follows at
    least ``n``: ``count + len(spare_prices) >= n``). The same pairs and memo."""
    top = (side.top_prices[::-1] if side.is_bid else side.top_prices)[:n]
    spare = (side.spare_prices[::-1] if side.is_bid else side.spare_prices)[: n - len(top)]
    out: list[tuple[float, float]] = []
    _pairs(zip(top, map(side.top.__getitem__, top), strict=True), memo, out.append)
    if spare:
        _pairs(zip(spare, map(side.spare.__getitem__, spare), strict=True), memo, out.append)
    if len(memo) > 3 * n:
        memo = {price: memo[price] for price in (*top, *spare)}
    return tuple(out), memo


class TopTracker:
    """Per symbol :class:`BookState` for one feed, brought up to date from each update."""

    def __init__(self, levels: int, spare: int = 0) -> None:
        self.levels = levels
        self.spare = spare  # levels followed below the top (<= the book's max_depth - levels)
        self.states: dict[str, BookState] = {}
        self.reads = 0  # sorted reads of a side (for tests and benchmarks)

    def state(self, symbol: str) -> BookState:
        """The symbol's state, created on first use."""
        state = self.states.get(symbol)
        if state is None:
            state = self.states[symbol] = BookState(self.levels, self.spare)
        return state

    def forget(self, symbol: str) -> None:
        """The book is dropped (resync): the next update re-reads both sides."""
        state = self.states.get(symbol)
        if state is not None:
            state.loaded = False

    def refresh(self, state: BookState, book: Any, delta: Any) -> bool:
        """Bring ``state`` up to date with this update (``delta`` None: a full book); False if
        a side is empty or the book is crossed (check :meth:`crossed`), after which the next
        update re-reads the book."""
        bid = state.bid
        ask = state.ask
        if delta is None or not state.loaded:
            state.loaded = True
            self.reads += 2
            if not bid.load(book.bids.to_list()) or not ask.load(book.asks.to_list()):
                state.loaded = False
                return False
        else:
            changes = delta.get(BID)
            if changes and not (bid.full and bid.apply_bids(changes)):
                self.reads += 1
                if not bid.load(book.bids.to_list()):
                    state.loaded = False
                    return False
            changes = delta.get(ASK)
            if changes and not (ask.full and ask.apply_asks(changes)):
                self.reads += 1
                if not ask.load(book.asks.to_list()):
                    state.loaded = False
                    return False
        if bid.best >= ask.best:
            state.loaded = False
            return False
        return True

    @staticmethod
    def crossed(book: Any) -> bool:
        """True if both sides have levels and the best bid is at or above the best ask."""
        bids, asks = book.bids, book.asks
        return bool(len(bids) and len(asks) and bids.index(0)[0] >= asks.index(0)[0])
