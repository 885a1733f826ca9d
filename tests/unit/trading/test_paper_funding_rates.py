"""Funding payments of the paper venue when a rate is unknown: an announcement without a
rate (None: the venue's message did not carry it) pays nothing at its funding time, unlike
a real 0 % rate; a rate announced earlier for the same funding time is kept; and the
converter publishes a rate cryptofeed passes as None (Binance's markPriceUpdate with an empty
``r``) as None, not 0.0."""

from __future__ import annotations

from decimal import Decimal

import pytest
from cryptofeed.types import Funding as CfFunding

from cryptomon.clock import LiveClock, ManualClock
from cryptomon.events import Funding
from cryptomon.feeds.convert import Converter
from cryptomon.feeds.health import FeedHealth
from cryptomon.hub import Hub
from cryptomon.trading.brokers.paper import PaperBroker
from tests.unit.trading.test_futures_paper import EX, PERP, quote
from tests.unit.trading.test_paper_liquidation import order, paper

D = Decimal


def announce(hub: Hub, clock: ManualClock, rate: float | None, next_time: float) -> None:
    now = clock.time()
    hub.publish(
        Funding(
            exchange=EX,
            symbol=PERP,
            ts=now,
            ts_recv=now,
            rate=rate,
            mark_price=20000.0,
            next_funding_time=next_time,
        )
    )


async def long_position() -> tuple[PaperBroker, Hub, ManualClock]:
    broker, hub, clock, _forced, _updates = paper()
    quote(hub, clock, 20000)
    assert (await broker.place_order(order("buy", "0.1"))).filled == D("0.1")
    return broker, hub, clock


def converter(hub: Hub) -> Converter:
    health = FeedHealth(EX, ["funding"], hub=hub, clock=LiveClock())
    return Converter(EX, hub=hub, health=health)


async def from_feed(conv: Converter, clock: ManualClock, rate: Decimal | None, at: float) -> None:
    """A funding message through the converter as cryptofeed passes it (rate None when the
    venue's message did not carry one)."""
    now = clock.time()
    await conv.rare.funding(CfFunding("BINANCE_FUTURES", PERP, D(20000), rate, at, now), now)


@pytest.mark.asyncio
async def test_an_unknown_rate_pays_nothing_and_a_zero_rate_pays_zero() -> None:
    """Long 0.1: the feed never carries the rate for the funding time 60 s ahead; when the
    time passes nothing is paid or recorded (it was published as 0.0 and recorded as a
    payment of 0), the broker's funding handler does not fail, and the balance is only the
    entry's. A real 0 % rate for the next funding time is a payment of 0 at that time."""
    broker, hub, clock = await long_position()
    conv = converter(hub)
    before = (await broker.fetch_balances())["USDT"]
    due = clock.time() + 60
    await from_feed(conv, clock, None, due)
    clock.advance(61)
    await from_feed(conv, clock, D(0), due + 8 * 3600)
    assert await broker.fetch_funding(PERP) == []
    assert (await broker.fetch_balances())["USDT"] == before
    assert hub.stats()["subscribers"]["paper-broker.funding"]["errors"] == 0
    clock.advance(8 * 3600)
    await from_feed(conv, clock, D(0), due + 16 * 3600)
    (payment,) = await broker.fetch_funding(PERP)
    assert (payment.ts, payment.amount, payment.rate) == (due + 8 * 3600, D(0), D(0))
    assert (await broker.fetch_balances())["USDT"] == before


@pytest.mark.asyncio
async def test_a_rate_left_out_later_keeps_the_one_announced_for_the_same_time() -> None:
    """0.01 % announced for the funding time, then an update for the same time without a
    rate: the long pays 0.1 x 20000 x 0.0001 = 0.2 at that time; the next time, whose rate
    is never announced, pays nothing."""
    broker, hub, clock = await long_position()
    due = clock.time() + 60
    announce(hub, clock, 0.0001, due)
    clock.advance(30)
    announce(hub, clock, None, due)
    clock.advance(31)
    announce(hub, clock, None, due + 3600)
    clock.advance(3600)
    announce(hub, clock, None, due + 7200)
    (payment,) = await broker.fetch_funding(PERP)
    assert (payment.ts, payment.amount, payment.rate) == (due, D("-0.2"), D("0.0001"))


@pytest.mark.asyncio
async def test_the_converter_publishes_a_missing_rate_as_none() -> None:
    """cryptofeed's Binance parser passes rate None for a markPriceUpdate with an empty ``r``
    (a dated future: no funding): the event's rate is None, its mark is kept."""
    hub = Hub()
    seen: list[Funding] = []
    hub.subscribe(Funding, seen.append)
    health = FeedHealth("binance_delivery", ["funding"], hub=hub, clock=LiveClock())
    conv = Converter("binance_delivery", hub=hub, health=health)
    raw = CfFunding("BINANCE_DELIVERY", "BTC-USD-22K27", D(16000), None, None, 1672304486.868)
    await conv.rare.funding(raw, 1672304487.0)
    (funding,) = seen
    assert funding.rate is None
    assert funding.mark_price == 16000.0
    assert funding.next_funding_time is None
