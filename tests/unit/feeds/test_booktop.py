"""TopTracker: incremental BookTop numbers always equal a full re-read of the book."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from cryptofeed.types import OrderBook
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptomon.feeds.booktop import TopTracker

# an operation: (side, price offset in ticks from 100, size in lots; 0 = delete)
ops = st.lists(
    st.lists(
        st.tuples(st.sampled_from(["bid", "ask"]), st.integers(1, 40), st.integers(0, 5)),
        min_size=1,
        max_size=6,
    ),
    min_size=1,
    max_size=40,
)


def fresh(levels: int, book: OrderBook) -> object:
    return TopTracker(levels).update("S", book.book, None)


def check(batches: list[list[tuple[str, int, int]]], max_depth: int, n: int) -> None:
    book = OrderBook(
        "X",
        "S",
        max_depth=max_depth,
        bids={D(100) - D(i) / 10: D(1) for i in range(1, 16)},
        asks={D(100) + D(i) / 10: D(1) for i in range(1, 16)},
    )
    tracker = TopTracker(n, spare=min(n, max_depth - n))
    assert tracker.update("S", book.book, None) == fresh(n, book)
    for batch in batches:
        delta: dict[str, list[tuple[D, D]]] = {"bid": [], "ask": []}
        for side, ticks, lots in batch:
            price = D(100) - D(ticks) / 10 if side == "bid" else D(100) + D(ticks) / 10
            size = D(lots) / 4
            levels = book.book.bids if side == "bid" else book.book.asks
            if size == 0:
                if price in levels:
                    del levels[price]
            else:
                levels[price] = size
            delta[side].append((price, size))
        if not len(book.book.bids) or not len(book.book.asks):
            return
        assert tracker.update("S", book.book, delta) == fresh(n, book)


@settings(max_examples=150, deadline=None)
@given(ops, st.sampled_from([(20, 5), (8, 5), (5, 5), (12, 3)]))
def test_incremental_equals_full_reread(
    batches: list[list[tuple[str, int, int]]], shape: tuple[int, int]
) -> None:
    """After any sequence of deltas, the tracker's numbers equal a fresh computation, whatever
    the book's max_depth and the number of spare levels followed."""
    check(batches, *shape)


def test_deep_changes_do_not_reread() -> None:
    """Size changes in the top and changes below the n-th level need no sorted read."""
    book = OrderBook(
        "X",
        "S",
        max_depth=20,
        bids={D(100 - i): D(1) for i in range(1, 10)},
        asks={D(100 + i): D(1) for i in range(1, 10)},
    )
    tracker = TopTracker(3)
    tracker.update("S", book.book, None)
    reads = tracker.reads
    book.book.bids[D(99)] = D(2)
    book.book.bids[D(92)] = D(7)
    vals = tracker.update("S", book.book, {"bid": [(D(99), D(2)), (D(92), D(7))], "ask": []})
    assert tracker.reads == reads
    assert vals is not None
    assert vals[1] == 2.0  # best bid size
    assert vals[6] == 4.0  # bid depth over 3 levels: 2 + 1 + 1


def test_empty_side_and_crossed_book_give_none() -> None:
    """No numbers for a one-sided book or a crossed one; crossed() tells them apart."""
    one_sided = OrderBook("X", "S", bids={D(1): D(1)})
    crossed = OrderBook("X", "S", bids={D(2): D(1)}, asks={D(1): D(1)})
    assert TopTracker(3).update("S", one_sided.book, None) is None
    assert not TopTracker.crossed(one_sided.book)
    assert TopTracker(3).update("S", crossed.book, None) is None
    assert TopTracker.crossed(crossed.book)


@pytest.mark.parametrize("n", [1, 10])
def test_levels_count(n: int) -> None:
    """``levels`` is the number of levels summed, capped by the shorter side."""
    book = OrderBook("X", "S", bids={D(9): D(1), D(8): D(1)}, asks={D(11): D(1)})
    vals = TopTracker(n).update("S", book.book, None)
    assert vals is not None
    assert vals[9] == 1
