"""BookTop: the converter's incrementally kept numbers always equal a naive computation from
the whole book, and deep changes need no sorted read."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from cryptofeed.types import OrderBook
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptomon.clock import LiveClock
from cryptomon.events import BookTop
from cryptomon.feeds.booktop import TopTracker, book_top
from cryptomon.feeds.convert import Converter
from cryptomon.feeds.health import FeedHealth
from cryptomon.hub import Hub

# one update: (side, price offset in ticks of 0.1 from 100, size in quarter lots; 0 = delete)
UPDATES = st.lists(
    st.lists(
        st.tuples(st.sampled_from(["bid", "ask"]), st.integers(1, 40), st.integers(0, 5)),
        min_size=1,
        max_size=6,
    ),
    min_size=1,
    max_size=40,
)
PRICE = Decimal(100)
TICK = Decimal("0.1")


def reference(book: OrderBook, levels: int, ts: float, receipt: float) -> BookTop:
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
        ts=ts,
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
    )


def converter(levels: int, depth: int) -> tuple[Converter, list[BookTop]]:
    hub = Hub()
    tops: list[BookTop] = []
    hub.subscribe(BookTop, tops.append)
    health = FeedHealth("x", ["orderbook"], hub=hub, clock=LiveClock())
    conv = Converter("x", hub=hub, health=health, book_levels=levels, depth=depth)
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


async def replay(batches: list[list[tuple[str, int, int]]], depth: int, levels: int) -> None:
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
    assert tops[-1] == reference(book, levels, 1.0, 2.0)
    for step, batch in enumerate(batches, start=3):
        book.delta = apply(book, batch)
        published = len(tops)
        await conv.book(book, float(step))
        if not len(book.book.bids) or not len(book.book.asks):
            assert len(tops) == published  # nothing to publish for a one-sided book
            continue
        assert len(tops) == published + 1
        assert tops[-1] == reference(book, levels, 1.0, float(step))


@settings(max_examples=150, deadline=None)
@given(UPDATES, st.sampled_from([(20, 5), (8, 5), (5, 5), (12, 3)]))
def test_published_top_equals_naive_reference(
    batches: list[list[tuple[str, int, int]]], shape: tuple[int, int]
) -> None:
    """After any sequence of deltas, the BookTop the converter publishes equals one computed
    naively from the whole book, whatever the book's depth and the number of levels summed."""
    asyncio.run(replay(batches, *shape))


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
    top = book_top(state, "x", "S", 1.0, 1.0)
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
    assert book_top(state, "x", "S", 1.0, 1.0).levels == 1
