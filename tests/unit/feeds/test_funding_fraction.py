"""Funding rates are fractions on every venue: cryptofeed's Kraken Futures parser passes the
venue's absolute ``funding_rate`` (quote per contract, docs.kraken.com futures websocket
``ticker``: "relative_funding_rate: the absolute funding rate relative to the spot price"),
so the converter publishes the relative one the venue sends beside it."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from cryptofeed.exchanges.kraken_futures import KrakenFutures

from cryptomon.clock import LiveClock
from cryptomon.events import Funding
from cryptomon.feeds.convert import Converter
from cryptomon.feeds.health import FeedHealth
from cryptomon.hub import Hub

# a ticker message with the fields of Kraken's documentation (PF_XBTUSD at 34840: the
# absolute 1.2455 USD is 3.5755e-05 of the price)
TICKER = (
    '{"time":1612270825253,"feed":"ticker","product_id":"PF_XBTUSD","bid":34832.5,'
    '"ask":34847.5,"funding_rate":1.2455,"funding_rate_prediction":1.1,'
    '"relative_funding_rate":3.5755e-05,"relative_funding_rate_prediction":3.2e-05,'
    '"next_funding_rate_time":1612274400000,"openInterest":2541.0,"markPrice":34840.0}'
)


async def parsed(message: dict[str, Any]) -> list[Funding]:
    """``message`` through cryptofeed's own Kraken Futures ticker parser into a converter
    (the parser alone: the feed object is not connected)."""
    hub = Hub()
    seen: list[Funding] = []
    hub.subscribe(Funding, seen.append)
    health = FeedHealth("kraken_futures", ["funding"], hub=hub, clock=LiveClock())
    conv = Converter("kraken_futures", hub=hub, health=health)
    feed = object.__new__(KrakenFutures)
    feed._open_interest_cache = {}  # the parser's own state, as its __init__ sets it

    async def callback(channel: str, obj: Any, receipt: float) -> None:
        if channel == "funding":
            await conv.rare.funding(obj, receipt)

    feed.callback = callback
    await feed._funding(message, "BTC-USD-PERP", 1612270825.3)
    return seen


@pytest.mark.asyncio
async def test_kraken_futures_funding_is_the_relative_rate() -> None:
    """1.2455 (USD per contract) is published as 3.5755e-05, its prediction 3.2e-05."""
    (funding,) = await parsed(json.loads(TICKER, parse_float=Decimal))
    assert funding.rate == 3.5755e-05
    assert funding.predicted_rate == 3.2e-05
    assert funding.ts == 1612270825.253


@pytest.mark.asyncio
async def test_a_relative_rate_left_out_is_zero_or_unknown_by_the_absolute_one() -> None:
    """Kraken leaves out a field that is zero. No relative rate beside an absolute 1.2455
    USD per contract: the fraction is not 0, it is unknown (None), and the absolute amount
    is not published in its place. Beside an absolute rate of 0 it is a real 0 %."""
    message = json.loads(TICKER, parse_float=Decimal)
    del message["relative_funding_rate"], message["relative_funding_rate_prediction"]
    (funding,) = await parsed(message)
    assert funding.rate is None
    assert funding.predicted_rate is None
    message["funding_rate"] = Decimal(0)
    (funding,) = await parsed(message)
    assert funding.rate == 0.0
    assert funding.predicted_rate is None


@pytest.mark.asyncio
async def test_kraken_futures_next_funding_time_and_mark() -> None:
    """cryptofeed gives ``next_funding_rate_time`` (epoch ms) in seconds: published as the
    next whole UTC hour after the message (the venue's hourly funding, the hour its rate is
    realized), and the ``markPrice`` cryptofeed drops (it passes None) is the event's mark."""
    (funding,) = await parsed(json.loads(TICKER, parse_float=Decimal))
    assert funding.next_funding_time == 1612274400.0  # 2021-02-02 14:00:00 UTC
    assert funding.next_funding_time % 3600 == 0
    assert 0 < funding.next_funding_time - funding.ts <= 3600
    assert funding.mark_price == 34840.0


@pytest.mark.asyncio
async def test_a_zero_prediction_left_out_does_not_lose_the_ticker() -> None:
    """Kraken leaves ``funding_rate_prediction`` out when it is zero; cryptofeed's parser read
    it unconditionally and the KeyError lost the message's funding and open interest. The
    class the daemon builds for the venue fills it in: both are published."""
    from cryptomon.feeds.cryptofeed import exchange_class

    message = json.loads(TICKER, parse_float=Decimal)
    del message["funding_rate_prediction"]
    cls = exchange_class("kraken_futures")
    assert exchange_class("KRAKEN_FUTURES") is cls  # one class per venue
    feed: Any = object.__new__(cls)
    feed._open_interest_cache = {}
    seen: list[tuple[str, Any]] = []

    async def callback(channel: str, obj: Any, receipt: float) -> None:
        seen.append((channel, obj))

    feed.callback = callback
    await feed._funding(message, "BTC-USD-PERP", 1612270825.3)
    assert [channel for channel, _ in seen] == ["funding", "open_interest"]
    assert seen[0][1].predicted_rate == 0
    assert seen[1][1].open_interest == Decimal("2541.0")
    plain: Any = object.__new__(KrakenFutures)  # cryptofeed's own class, as it is
    plain._open_interest_cache, plain.callback = {}, callback
    with pytest.raises(KeyError):
        await plain._funding(message, "BTC-USD-PERP", 1612270825.3)
