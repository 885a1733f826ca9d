"""Converter and quality guard: a trade is judged against the book received before it."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from cryptofeed.types import OrderBook
from cryptofeed.types import Ticker as CfTicker
from cryptofeed.types import Trade as CfTrade

from cryptomon.clock import LiveClock
from cryptomon.events import BookTop, FlaggedTrade, Ticker, Trade
from cryptomon.feeds.convert import Converter
from cryptomon.feeds.health import FeedHealth
from cryptomon.hub import Hub
from cryptomon.market.quality import QualityGuard
from tests.unit.feeds.loop_turns import next_turn


def book(bid: str, ask: str) -> OrderBook:
    ob = OrderBook("X", "BTC-USDT", max_depth=20, bids={D(bid): D(1)}, asks={D(ask): D(1)})
    ob.delta = None
    return ob


@pytest.mark.asyncio
async def test_a_move_whose_book_came_first_in_the_same_loop_turn_is_not_quarantined() -> None:
    """The venue's book jumps 15 % and a trade at the new level follows in the same loop turn
    (one network read): the trade is judged against that book (it backs the print), so the
    real trade is published, not quarantined as a bad print."""
    hub = Hub()
    seen: list[object] = []
    hub.subscribe((Trade, FlaggedTrade, BookTop), seen.append)
    health = FeedHealth("x", ["trades", "orderbook"], hub=hub, clock=LiveClock())
    conv = Converter("x", hub=hub, health=health, book_levels=1, depth=1)
    conv.quality = QualityGuard("x")
    conv.quality.on_connected(0.0)
    for i in range(8):  # the market at 100
        await conv.book(book("100", "101"), 1.0 + i)
        await conv.trade(
            CfTrade("X", "BTC-USDT", "buy", D(1), D("100.5"), 1.0 + i, id=f"t{i}"), 1.0 + i
        )
        await next_turn()
    await conv.book(book("115", "116"), 10.0)  # the move: book, then its trade, one turn
    await conv.trade(CfTrade("X", "BTC-USDT", "buy", D(1), D("115.5"), 10.0, id="m"), 10.0)
    await next_turn()
    assert [e for e in seen if isinstance(e, FlaggedTrade)] == []
    moved = [e for e in seen if isinstance(e, Trade) and e.trade_id == "m"]
    assert len(moved) == 1
    assert conv.quality.bad_prints == 0


@pytest.mark.asyncio
async def test_a_bad_first_print_of_a_new_market_is_quarantined_against_its_book() -> None:
    """A market just subscribed: its book top at 100, then a first trade at 1000 in the same
    loop turn. No price history yet, but the book is fresh: the print is quarantined (before,
    a market's first five prices were never judged), the genuine first trade goes out."""
    hub = Hub()
    seen: list[object] = []
    hub.subscribe((Trade, FlaggedTrade), seen.append)
    health = FeedHealth("x", ["trades", "orderbook"], hub=hub, clock=LiveClock())
    conv = Converter("x", hub=hub, health=health, book_levels=1, depth=1)
    conv.quality = QualityGuard("x")
    conv.quality.on_connected(0.0)
    await conv.book(book("100", "101"), 1.0)
    await conv.trade(CfTrade("X", "BTC-USDT", "buy", D(1), D("1000"), 1.0, id="bad"), 1.0)
    await conv.trade(CfTrade("X", "BTC-USDT", "buy", D(1), D("100.5"), 1.0, id="ok"), 1.0)
    await next_turn()
    assert [(type(e), e.trade_id) for e in seen if isinstance(e, Trade)] == [(Trade, "ok")]
    assert [(e.flag, e.trade.trade_id) for e in seen if isinstance(e, FlaggedTrade)] == [
        ("bad_print", "bad")
    ]


@pytest.mark.asyncio
async def test_a_ticker_only_market_has_its_x10_first_print_quarantined() -> None:
    """A market followed by trades and ticker, no book: the ticker reaches the guard, so an
    x10 first print is quarantined against it (before: it went out unjudged); the ticker is
    published as before."""
    hub = Hub()
    seen: list[object] = []
    hub.subscribe((Trade, FlaggedTrade, Ticker), seen.append)
    health = FeedHealth("x", ["trades", "ticker"], hub=hub, clock=LiveClock())
    conv = Converter("x", hub=hub, health=health, book_levels=1, depth=1)
    conv.quality = QualityGuard("x")
    conv.quality.on_connected(0.0)
    await conv.ticker(CfTicker("X", "BTC-USDT", D("100"), D("100.1"), 1.0), 1.0)
    await conv.trade(CfTrade("X", "BTC-USDT", "buy", D(1), D("1000"), 1.1, id="x10"), 1.1)
    await conv.trade(CfTrade("X", "BTC-USDT", "buy", D(1), D("100.1"), 1.2, id="ok"), 1.2)
    await next_turn()
    assert [type(e).__name__ for e in seen] == ["Ticker", "FlaggedTrade", "Trade"]
    assert conv.quality.stats()["ticker_refuted"] == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(("bid", "ask"), [(D(0), D("100.1")), (D("100"), None), (None, None)])
async def test_a_ticker_without_one_side_is_counted_not_published(
    bid: D | None, ask: D | None
) -> None:
    """cryptofeed passes a venue's ticker without a best bid or ask as 0 (Bybit's snapshot
    without ``bid1Price``) or None (Kraken futures): published, a 0 bid made a mid of half the
    ask, a 50 % gap for the cross-exchange divergence detector, and None was a malformed
    message (a warning each time). Counted apart; the next quoted ticker goes out."""
    hub = Hub()
    seen: list[object] = []
    hub.subscribe((Ticker,), seen.append)
    health = FeedHealth("x", ["ticker"], hub=hub, clock=LiveClock())
    conv = Converter("x", hub=hub, health=health, book_levels=1, depth=1)
    await conv.ticker(CfTicker("X", "BTC-USDT", bid, ask, 1.0), 1.0)  # type: ignore[arg-type]
    await conv.ticker(CfTicker("X", "BTC-USDT", D("100"), D("100.1"), 1.1), 1.1)
    await next_turn()
    assert [(e.bid, e.ask) for e in seen] == [(100.0, 100.1)]  # type: ignore[attr-defined]
    assert health.snapshot()["unquoted_tickers"] == 1
    assert health.parse_errors == 0
