"""BookTop: what the converter publishes at the end of each loop turn always equals a naive
computation from the whole book, its conflated update counts add up, and deep changes need no
sorted read."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from cryptofeed.types import OrderBook
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptomon.clock import LiveClock
from cryptomon.events import BookSnapshot, BookTop
from cryptomon.feeds.booktop import TopTracker, book_top
from cryptomon.feeds.convert import Converter
from cryptomon.feeds.health import FeedHealth
from cryptomon.hub import Hub
from tests.unit.feeds.loop_turns import next_turn

# a level change: (side, price offset in ticks of 0.1 from 100, size in quarter lots; 0 = delete)
CHANGE = st.tuples(st.sampled_from(["bid", "ask"]), st.integers(1, 40), st.integers(0, 5))
UPDATE = st.lists(CHANGE, min_size=1, max_size=6)  # one exchange message
TURNS = st.lists(st.lists(UPDATE, min_size=1, max_size=5), min_size=1, max_size=20)
PRICE = Decimal(100)
TICK = Decimal("0.1")


def reference(book: OrderBook, levels: int, receipt: float, updates: int) -> BookTop:
    """The BookTop computed the obvious way: sort every level of the book, sum the best."""
    bids = sorted(book.book.bids.to_dict().items(), reverse=True)[:levels]
    asks = sorted(book.book.asks.to_dict().items())[:levels]
    bid, ask = float(bids[0][0]), float(asks[0][0])
    bid_depth = float(sum(size for _, size in bids))
    ask_depth = float(sum(size for _, size in asks))
    mid = (bid + ask) / 2
    return BookTop(
        exchange="x",
        symbol="S",
        ts=1.0,
        ts_recv=receipt,
        bid=bid,
        bid_size=float(bids[0][1]),
        ask=ask,
        ask_size=float(asks[0][1]),
        spread=ask - bid,
        spread_bps=(ask - bid) / mid * 10_000,
        bid_depth=bid_depth,
        ask_depth=ask_depth,
        imbalance=(bid_depth - ask_depth) / (bid_depth + ask_depth),
        levels=min(len(bids), len(asks)),
        updates=updates,
    )


def converter(levels: int, depth: int) -> tuple[Converter, list[BookTop]]:
    hub = Hub()
    tops: list[BookTop] = []
    hub.subscribe(BookTop, tops.append)
    health = FeedHealth("x", ["orderbook"], hub=hub, clock=LiveClock())
    # never yield within a turn: a turn is exactly the updates the test hands over
    conv = Converter(
        "x", hub=hub, health=health, book_levels=levels, depth=depth, loop_yield_every=0
    )
    return conv, tops


def apply(book: OrderBook, batch: list[tuple[str, int, int]]) -> dict[str, list]:
    """Change the cryptofeed book as an exchange message would; returns cryptofeed's delta."""
    delta: dict[str, list[tuple[Decimal, Decimal]]] = {"bid": [], "ask": []}
    for side, ticks, lots in batch:
        price = PRICE - ticks * TICK if side == "bid" else PRICE + ticks * TICK
        size = Decimal(lots) / 4
        levels = book.book.bids if side == "bid" else book.book.asks
        if size == 0:
            if price in levels:
                del levels[price]
        else:
            levels[price] = size
        delta[side].append((price, size))
    return delta


def two_sided(book: OrderBook) -> bool:
    return bool(len(book.book.bids) and len(book.book.asks))


async def replay(turns: list[list[list[tuple[str, int, int]]]], depth: int, levels: int) -> None:
    conv, tops = converter(levels, depth)
    book = OrderBook(
        "X",
        "S",
        max_depth=depth,
        bids={PRICE - i * TICK: Decimal(1) for i in range(1, 16)},
        asks={PRICE + i * TICK: Decimal(1) for i in range(1, 16)},
    )
    book.timestamp = 1.0
    await conv.book(book, 2.0)
    await next_turn()
    assert tops == [reference(book, levels, 2.0, updates=1)]
    callbacks, receipt = 1, 2.0
    for turn in turns:
        published = len(tops)
        for changes in turn:
            book.delta = apply(book, changes)
            receipt += 1.0
            callbacks += 1
            await conv.book(book, receipt)
        assert len(tops) == published  # nothing before the turn is over
        await next_turn()
        if not two_sided(book):
            assert len(tops) == published  # no top for a one-sided book
            continue
        assert len(tops) == published + 1  # one top per symbol and turn, from the latest book
        conflated = callbacks - sum(top.updates for top in tops[:published])
        assert tops[-1] == reference(book, levels, receipt, updates=conflated)
    if two_sided(book):
        assert sum(top.updates for top in tops) == callbacks
    assert conv.health.book_tops == len(tops)


@settings(max_examples=150, deadline=None)
@given(TURNS, st.sampled_from([(20, 5), (8, 5), (5, 5), (12, 3)]))
def test_last_top_of_each_turn_equals_naive_reference(
    turns: list[list[list[tuple[str, int, int]]]], shape: tuple[int, int]
) -> None:
    """After any sequence of deltas, grouped in loop turns, the converter publishes one BookTop
    per turn equal to one computed naively from the whole book, whatever the book's depth and
    the number of levels summed; its ``updates`` are the book updates since the previous one."""
    asyncio.run(replay(turns, *shape))


def naive_levels(levels: dict[Decimal, Decimal], depth: int, *, bids: bool) -> tuple:
    """The best ``depth`` levels as float pairs, from the whole side sorted afresh."""
    ordered = sorted(levels.items(), reverse=bids)[:depth]
    return tuple((float(price), float(size)) for price, size in ordered)


async def replay_snapshots(
    updates: list[list[tuple[str, int, int]]], depth: int, levels: int, start: int
) -> None:
    conv, _ = converter(levels, depth)
    snapshots: list[BookSnapshot] = []
    conv.hub.subscribe(BookSnapshot, snapshots.append)
    book = OrderBook(
        "X",
        "S",
        max_depth=depth,
        bids={PRICE - i * TICK: Decimal(1) for i in range(1, start + 1)},
        asks={PRICE + i * TICK: Decimal(1) for i in range(1, start + 1)},
    )
    book.timestamp = 1.0
    expected = []
    for receipt, changes in enumerate([[], *updates]):
        if changes:
            book.delta = apply(book, changes)
        await conv.book(book, float(receipt))  # a second apart: a snapshot every update
        if two_sided(book) and book.book.bids.index(0)[0] < book.book.asks.index(0)[0]:
            bids = naive_levels(book.book.bids.to_dict(), depth, bids=True)
            asks = naive_levels(book.book.asks.to_dict(), depth, bids=False)
            expected.append((float(receipt), bids, asks))
        if receipt % 4 == 3:
            await next_turn()
    await next_turn()
    assert [(s.ts_recv, s.bids, s.asks) for s in snapshots] == expected


@settings(max_examples=150, deadline=None)
@given(
    st.lists(UPDATE, min_size=1, max_size=60),
    st.sampled_from([(20, 5), (8, 5), (5, 5), (12, 3), (6, 2)]),
    st.sampled_from([3, 8, 15]),
)
def test_snapshot_levels_equal_naive_reference(
    updates: list[list[tuple[str, int, int]]], shape: tuple[int, int], start: int
) -> None:
    """Every BookSnapshot carries the best ``depth`` levels of the book at its update, as a
    naive sort of the whole book gives them, whether they come from the levels the converter
    follows or from a sorted read (books shorter and deeper than ``depth``, levels removed from
    the top and the spares, levels inserted, loop turns in between)."""
    asyncio.run(replay_snapshots(updates, *shape, start))


@pytest.mark.asyncio
async def test_one_top_per_symbol_per_turn() -> None:
    """Updates of two symbols interleaved in one turn make one BookTop each, from each book's
    latest state, with their own update counts; the next turn starts counting afresh."""
    conv, tops = converter(2, 5)
    books = {
        symbol: OrderBook(
            "X", symbol, max_depth=5, bids={Decimal(99): Decimal(1)}, asks={Decimal(101): 1}
        )
        for symbol in ("A", "B")
    }
    for receipt, symbol, size in [(1.0, "A", 2), (2.0, "B", 3), (3.0, "A", 4), (4.0, "A", 5)]:
        books[symbol].book.bids[Decimal(99)] = Decimal(size)
        books[symbol].delta = {"bid": [(Decimal(99), Decimal(size))], "ask": []}
        books[symbol].timestamp = receipt
        await conv.book(books[symbol], receipt)
    await next_turn()
    summary = [(top.symbol, top.bid_size, top.updates, top.ts_recv) for top in tops]
    assert summary == [("A", 5.0, 3, 4.0), ("B", 3.0, 1, 2.0)]
    await conv.book(books["B"], 5.0)
    await next_turn()
    assert (tops[-1].symbol, tops[-1].updates) == ("B", 1)


def test_deep_changes_do_not_reread() -> None:
    """Size changes in the top and changes below the summed levels need no sorted read."""
    book = OrderBook(
        "X",
        "S",
        max_depth=20,
        bids={Decimal(100 - i): Decimal(1) for i in range(1, 10)},
        asks={Decimal(100 + i): Decimal(1) for i in range(1, 10)},
    )
    tracker = TopTracker(3)
    state = tracker.state("S")
    assert tracker.refresh(state, book.book, None)
    reads = tracker.reads
    book.book.bids[Decimal(99)] = Decimal(2)
    book.book.bids[Decimal(92)] = Decimal(7)
    delta = {"bid": [(Decimal(99), Decimal(2)), (Decimal(92), Decimal(7))], "ask": []}
    assert tracker.refresh(state, book.book, delta)
    assert tracker.reads == reads
    top = book_top(state, "x", "S")
    assert top.bid_size == 2.0
    assert top.bid_depth == 4.0  # 2 + 1 + 1 over 3 levels


def test_empty_side_and_crossed_book_are_refused() -> None:
    """No refresh of a one-sided book or a crossed one; crossed() tells them apart."""
    one_sided = OrderBook("X", "S", bids={Decimal(1): Decimal(1)})
    crossed = OrderBook("X", "S", bids={Decimal(2): Decimal(1)}, asks={Decimal(1): Decimal(1)})
    tracker = TopTracker(3)
    assert not tracker.refresh(tracker.state("A"), one_sided.book, None)
    assert not TopTracker.crossed(one_sided.book)
    assert not tracker.refresh(tracker.state("B"), crossed.book, None)
    assert TopTracker.crossed(crossed.book)


@pytest.mark.parametrize("levels", [1, 10])
def test_levels_count(levels: int) -> None:
    """``levels`` is the number of levels summed, capped by the shorter side."""
    book = OrderBook(
        "X", "S", bids={Decimal(9): Decimal(1), Decimal(8): Decimal(1)}, asks={Decimal(11): 1}
    )
    tracker = TopTracker(levels)
    state = tracker.state("S")
    assert tracker.refresh(state, book.book, None)
    assert book_top(state, "x", "S").levels == 1


@pytest.mark.asyncio
async def test_a_snapshot_read_refills_the_spare_levels() -> None:
    """Top levels removed take the spares' places and a level below the last followed one is
    not followed, so the spares shrink until a snapshot reads the sorted book: that read
    follows the spares again (the next snapshots come from them), and every snapshot is the
    book's best ``depth`` levels."""
    conv, _ = converter(5, 10)
    snapshots: list[BookSnapshot] = []
    conv.hub.subscribe(BookSnapshot, snapshots.append)
    book = OrderBook(
        "X",
        "S",
        max_depth=10,
        bids={PRICE - i * TICK: Decimal(1) for i in range(1, 21)},
        asks={PRICE + i * TICK: Decimal(1) for i in range(1, 21)},
    )
    book.timestamp = 1.0
    await conv.book(book, 0.0)
    state = conv._books["S"]
    assert len(state.bid.spare_prices) == 5
    book.delta = apply(book, [("bid", 1, 0), ("bid", 2, 0)])  # two top levels removed
    await conv.book(book, 0.5)  # within the snapshot interval: no snapshot
    assert len(state.bid.spare_prices) == 3
    await conv.book(book, 1.5)  # a snapshot: 8 followed levels for a depth of 10, a read
    assert len(state.bid.spare_prices) == 5
    assert state.bid.spare_prices == sorted(PRICE - i * TICK for i in range(8, 13))
    book.delta = apply(book, [("bid", 3, 3)])
    await conv.book(book, 3.0)
    await next_turn()
    expected = [naive_levels(book.book.bids.to_dict(), 10, bids=True)]
    assert [s.bids for s in snapshots[-1:]] == expected
    assert len(snapshots) == 3
