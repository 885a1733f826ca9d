"""Exchange times in milliseconds (cryptofeed's Bybit parser passes the venue's epoch ms
through: trades' ``T``, tickers', funding's, open interest's and books' ``ts``, candles'
``start``/``end``, ``nextFundingTime``) are published as epoch seconds like every venue's."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from cryptofeed.types import Candle as CfCandle
from cryptofeed.types import Funding as CfFunding
from cryptofeed.types import OpenInterest as CfOpenInterest
from cryptofeed.types import OrderBook
from cryptofeed.types import Ticker as CfTicker
from cryptofeed.types import Trade as CfTrade

from cryptomon.clock import LiveClock
from cryptomon.events import BookTop, Candle, Event, Funding, OpenInterest, Ticker, Trade
from cryptomon.feeds.convert import Converter
from cryptomon.feeds.health import FeedHealth
from cryptomon.feeds.times import epoch_s
from cryptomon.hub import Hub
from tests.unit.feeds.loop_turns import next_turn

MS = 1672304486868  # a Bybit trade's T (its docs' example)
RECV = 1672304487.0


def converter() -> tuple[Converter, list[Event]]:
    hub = Hub()
    seen: list[Event] = []
    hub.subscribe((Trade, Ticker, BookTop, Candle, Funding, OpenInterest), seen.append)
    channels = ["trades", "ticker", "orderbook", "candles", "funding", "open_interest"]
    health = FeedHealth("bybit", channels, hub=hub, clock=LiveClock())
    return Converter("bybit", hub=hub, health=health), seen


@pytest.mark.asyncio
async def test_millisecond_times_become_seconds() -> None:
    """Every event built from millisecond times has them in seconds, next to its receipt."""
    conv, seen = converter()
    await conv.trade(CfTrade("BYBIT", "BTC-USDT-PERP", "buy", D(1), D(16000), MS, id="1"), RECV)
    await conv.ticker(CfTicker("BYBIT", "BTC-USDT-PERP", D(16000), D(16001), MS), RECV)
    book = OrderBook("BYBIT", "BTC-USDT-PERP", bids={D(16000): D(1)}, asks={D(16001): D(1)})
    book.delta = None
    book.timestamp = MS
    await conv.book(book, RECV)
    start = 1672304460000
    candle = CfCandle(
        "BYBIT", "BTC-USDT-PERP", start, start + 59999, "1m", None,
        D(1), D(1), D(1), D(1), D(1), True, MS,
    )  # fmt: skip
    await conv.rare.candle(candle, RECV)
    funding = CfFunding("BYBIT", "BTC-USDT-PERP", D(16000), D("0.0001"), 1672329600000, MS)
    await conv.rare.funding(funding, RECV)
    await conv.rare.open_interest(CfOpenInterest("BYBIT", "BTC-USDT-PERP", D(5), MS), RECV)
    await next_turn()
    assert {type(e) for e in seen} == {Trade, Ticker, BookTop, Candle, Funding, OpenInterest}
    for event in seen:
        assert event.ts == pytest.approx(1672304486.868), type(event)
    (bar,) = (e for e in seen if isinstance(e, Candle))
    assert (bar.start, bar.end) == (1672304460.0, pytest.approx(1672304519.999))
    (rate,) = (e for e in seen if isinstance(e, Funding))
    assert rate.next_funding_time == 1672329600.0


def test_seconds_stay_seconds() -> None:
    """Times already in seconds (every other venue), zero and the far future in seconds are
    left as they are."""
    assert epoch_s(1672304486.868) == 1672304486.868
    assert epoch_s(0.0) == 0.0
    assert epoch_s(4102444800.0) == 4102444800.0  # 2100-01-01
