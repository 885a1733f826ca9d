"""Converter: cryptofeed objects to hub events; BookTop maths, crossed books, gaps, throttling."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from cryptofeed.types import OrderBook
from cryptofeed.types import Trade as CfTrade

from cryptomon.clock import LiveClock
from cryptomon.events import BookSnapshot, BookTop, FeedStatus, Trade
from cryptomon.feeds.convert import Converter
from cryptomon.feeds.health import FeedHealth
from cryptomon.hub import Hub
from tests.unit.feeds.loop_turns import next_turn


def make(book_levels: int = 2, depth: int = 3) -> tuple[Converter, list[object]]:
    hub = Hub()
    seen: list[object] = []
    hub.subscribe((Trade, BookTop, BookSnapshot, FeedStatus), seen.append)
    health = FeedHealth("x", ["trades", "orderbook"], hub=hub, clock=LiveClock())
    conv = Converter(
        "x",
        hub=hub,
        health=health,
        book_levels=book_levels,
        depth=depth,
        book_snapshot_interval_s=1.0,
    )
    return conv, seen


def book(bids: dict[str, str], asks: dict[str, str], delta: object = None) -> OrderBook:
    ob = OrderBook(
        "X",
        "BTC-USDT",
        max_depth=20,
        bids={D(p): D(s) for p, s in bids.items()},
        asks={D(p): D(s) for p, s in asks.items()},
    )
    ob.delta = delta
    ob.timestamp = 1.5
    return ob


@pytest.mark.asyncio
async def test_trade_is_converted_to_float_event() -> None:
    """A cryptofeed Trade becomes a Trade event with floats, side and id, under our name."""
    conv, seen = make()
    t = CfTrade("BINANCE", "BTC-USDT", "sell", D("0.5"), D("100.25"), 1.25, id="7")
    await conv.trade(t, 2.0)
    ev = next(e for e in seen if isinstance(e, Trade))
    assert (ev.exchange, ev.symbol, ev.price, ev.amount, ev.side, ev.trade_id) == (
        "x",
        "BTC-USDT",
        100.25,
        0.5,
        "sell",
        "7",
    )
    assert (ev.ts, ev.ts_recv) == (1.25, 2.0)
    assert conv.health.channels["trades"].messages == 1


@pytest.mark.asyncio
async def test_book_top_depth_imbalance_and_snapshot() -> None:
    """BookTop sums the top book_levels levels; a BookSnapshot carries the top depth levels."""
    conv, seen = make(book_levels=2, depth=3)
    ob = book({"99": "1", "98": "2", "97": "4", "96": "8"}, {"101": "3", "102": "1", "103": "5"})
    await conv.book(ob, 10.0)
    await next_turn()
    top = next(e for e in seen if isinstance(e, BookTop))
    assert (top.bid, top.bid_size, top.ask, top.ask_size) == (99.0, 1.0, 101.0, 3.0)
    assert top.spread == 2.0
    assert top.spread_bps == pytest.approx(2 / 100 * 1e4)
    assert (top.bid_depth, top.ask_depth, top.levels) == (3.0, 4.0, 2)
    assert top.imbalance == pytest.approx((3 - 4) / 7)
    snap = next(e for e in seen if isinstance(e, BookSnapshot))
    assert snap.bids == ((99.0, 1.0), (98.0, 2.0), (97.0, 4.0))
    assert snap.asks == ((101.0, 3.0), (102.0, 1.0), (103.0, 5.0))


@pytest.mark.asyncio
async def test_snapshots_are_throttled_by_receipt_time() -> None:
    """BookSnapshot at most once per interval of receipt time; the updates of one loop turn
    make one BookTop, at the latest update's time."""
    conv, seen = make()
    ob = book({"99": "1"}, {"101": "1"}, delta={"bid": []})
    for t in (10.0, 10.3, 10.9, 11.0, 11.5):
        await conv.book(ob, t)
    await next_turn()
    assert [(e.updates, e.ts_recv) for e in seen if isinstance(e, BookTop)] == [(5, 11.5)]
    assert [e.ts_recv for e in seen if isinstance(e, BookSnapshot)] == [10.0, 11.0]
    assert conv.health.book_tops == 1


@pytest.mark.asyncio
async def test_snapshots_resume_when_receipt_time_steps_back() -> None:
    """A receipt time earlier than the last snapshot's (a replay's REST snapshot stamped with
    today's clock, then the recording's times) restarts the interval instead of silencing
    the market's snapshots for the rest of the run."""
    conv, seen = make()
    ob = book({"99": "1"}, {"101": "1"}, delta={"bid": []})
    for t in (1_800_000_000.0, 100.0, 100.5, 101.2):
        await conv.book(ob, t)
        await next_turn()
    assert [e.ts_recv for e in seen if isinstance(e, BookSnapshot)] == [
        1_800_000_000.0,
        100.0,
        101.2,
    ]


@pytest.mark.asyncio
async def test_crossed_book_is_not_published_and_resyncs() -> None:
    """A crossed book is counted, not published, and asks the feed to resync that symbol."""
    conv, seen = make()
    resynced: list[str] = []
    conv.on_crossed = resynced.append
    await conv.book(book({"101": "1"}, {"100": "1"}), 1.0)
    await next_turn()
    assert not any(isinstance(e, BookTop) for e in seen)
    assert resynced == ["BTC-USDT"]
    assert conv.health.crossed == 1


@pytest.mark.asyncio
async def test_full_book_after_deltas_is_a_gap() -> None:
    """On a delta-based feed, a second full book on one connection is a gap and a resync."""
    conv, seen = make()
    await conv.book(book({"99": "1"}, {"101": "1"}), 1.0)  # initial snapshot: not a gap
    await conv.book(book({"99": "1"}, {"101": "1"}, delta={"bid": []}), 1.1)
    await conv.book(book({"99": "1"}, {"101": "1"}), 1.2)  # re-snapshot after deltas
    statuses = [e.status for e in seen if isinstance(e, FeedStatus) and e.channel]
    assert statuses == ["gap", "resync"]
    assert conv.health.channels["orderbook"].gaps == 1
    conv.reset_connection()
    await conv.book(book({"99": "1"}, {"101": "1"}), 1.3)  # after reconnect: expected
    assert conv.health.channels["orderbook"].gaps == 1
