"""cryptofeed's real ``BINANCE_FUTURES`` code (only its endpoint addresses changed) against the
simulator's USD-M venue, through cryptomon's feed adapter: aggTrade, depth snapshot + diffs
(``U``/``u``/``pu``), bookTicker, markPrice (funding) and forceOrder (liquidations) arrive as
cryptomon events; the venue's own fills appear in the public trade stream."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from cryptomon.clock import LiveClock, ManualClock
from cryptomon.config import ExchangeConfig
from cryptomon.events import (
    MARKET_DATA,
    BookSnapshot,
    BookTop,
    Event,
    Funding,
    Liquidation,
    Ticker,
    Trade,
)
from cryptomon.feeds.cryptofeed import CryptofeedFeed
from cryptomon.feeds.simulated import usdm_simulator_class
from cryptomon.hub import Hub
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.usdm import UsdmVenue
from cryptomon.sim.usdm_orders import UsdmError
from tests.util import wait_until

D = Decimal
PERP, VENUE_ID = "BTC-USDT-PERP", "BTCUSDT"


@dataclass
class Rig:
    sim: SimExchange
    venue: UsdmVenue
    feed: CryptofeedFeed
    events: list[Event] = field(default_factory=list)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def client_book(self) -> tuple[dict[D, D], dict[D, D]]:
        book = self.feed.feed._l2_book.get(PERP)
        if book is None:
            return {}, {}
        return dict(book.book.bids.to_list()), dict(book.book.asks.to_list())


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    sim = SimExchange(MarketModel(["BTC-USDT"], seed=2), clock=ManualClock(time.time()))
    venue = UsdmVenue(api_key="k", api_secret="s")
    venue.set_price(VENUE_ID, D(20000))
    sim.add_routes(venue.routes())
    await sim.start(run=False)
    hub = Hub()
    cfg = ExchangeConfig(
        name="binance_futures",
        symbols=[PERP],
        subscriptions=["trades", "orderbook", "ticker", "funding", "liquidations"],
    )
    feed = CryptofeedFeed(
        cfg, feed_class=usdm_simulator_class(sim.rest_url), hub=hub, clock=LiveClock()
    )
    rig = Rig(sim, venue, feed)
    hub.subscribe(list(MARKET_DATA), rig.events.append)
    await feed.start()
    try:
        await wait_until(lambda: venue.streams.clients, timeout=20, message="subscribed")
        yield rig
    finally:
        await feed.stop()
        await sim.stop()


@pytest.mark.asyncio
async def test_futures_streams_reach_cryptomon_through_real_cryptofeed(rig: Rig) -> None:
    """A price move, a print, a liquidation and a funding announcement on the venue arrive as
    BookTop/Ticker (20009.9 / 20010.1), Trade (0.25 sold at 20010), Liquidation and Funding
    (0.0001, mark 20010) events, and cryptofeed's book equals the venue's after the diffs."""
    venue = rig.venue
    (client,) = venue.streams.clients
    assert set(client.streams) == {
        (VENUE_ID, c) for c in ("aggTrade", "depth", "bookTicker", "markPrice", "forceOrder")
    }
    venue.trade(VENUE_ID, "SELL", D("0.25"), D(20010))  # moves the book, then prints
    venue.liquidation(VENUE_ID, "BUY", D("0.5"), D("20012.5"))
    await wait_until(lambda: rig.of(Liquidation), timeout=10, message="liquidation")
    await wait_until(lambda: rig.of(Trade), timeout=10, message="trade")
    (trade,) = rig.of(Trade)
    assert (trade.exchange, trade.symbol) == ("binance_futures", PERP)
    assert (trade.side, trade.price, trade.amount) == ("sell", 20010.0, 0.25)
    (liq,) = rig.of(Liquidation)
    assert (liq.side, liq.price, liq.amount) == ("buy", 20012.5, 0.5)
    await wait_until(lambda: rig.of(Funding), timeout=10, message="funding")
    funding = rig.of(Funding)[-1]
    assert (funding.rate, funding.mark_price) == (0.0001, 20010.0)
    assert funding.next_funding_time is not None
    assert funding.next_funding_time % (8 * 3600) == 0
    ticker = rig.of(Ticker)[-1]
    assert (ticker.bid, ticker.ask) == (20009.9, 20010.1)
    assert rig.of(BookSnapshot)
    await wait_until(lambda: rig.client_book() == venue.streams.books[VENUE_ID], timeout=10)
    venue.set_price(VENUE_ID, D("19990.5"))  # a diff replacing every level
    await wait_until(lambda: rig.client_book() == venue.streams.books[VENUE_ID], timeout=10)
    await wait_until(lambda: rig.of(BookTop)[-1].bid == 19990.4, timeout=10, message="top")
    assert rig.of(BookTop)[-1].ask == 19990.6


@pytest.mark.asyncio
async def test_the_venues_own_fills_are_public_trades(rig: Rig) -> None:
    """A fill of the account's market order is published in aggTrade (the venue publishes its
    fills after every signed request and price move; here the order goes to the book)."""
    book = rig.venue.book
    order = book.new_order({"symbol": VENUE_ID, "side": "BUY", "type": "MARKET", "quantity": "0.2"})
    assert order["status"] == "FILLED"
    rig.venue.set_price(VENUE_ID, D(20000))  # publishes the fills not yet sent
    await wait_until(lambda: rig.of(Trade), timeout=10, message="own fill as a trade")
    (trade,) = rig.of(Trade)
    assert (trade.side, trade.price, trade.amount) == ("buy", 20000.0, 0.2)


def test_depth_of_an_unknown_symbol_is_a_binance_error() -> None:
    """The depth snapshot of a symbol the venue does not list is Binance's -1121."""
    venue = UsdmVenue(api_key="k", api_secret="s")
    with pytest.raises(UsdmError, match="Invalid symbol"):
        venue.streams.depth("ETHUSDT", venue.book.price_of("ETHUSDT"))
