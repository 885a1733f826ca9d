"""The ``simulator_futures`` feed plugin, end to end: the daemon (build_app, SQLite) configured
with ``plugin: simulator_futures`` streams the simulator's USD-M venue through cryptofeed's real
BinanceFutures code; the perpetual's spec comes from the venue's ``/fapi/v1/exchangeInfo``
through the instrument loader, so its trades and book tops carry base units and quote value."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cryptomon.app import build_app
from cryptomon.clock import ManualClock
from cryptomon.config import load_settings
from cryptomon.events import BookTop, Trade
from cryptomon.hub import Hub
from cryptomon.market.instruments import InstrumentKind
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.usdm import UsdmVenue
from tests.util import wait_until

D = Decimal
NAME, PERP, VENUE_ID = "simfutures", "BTC-USDT-PERP", "BTCUSDT"


def config(tmp_path: Path, url: str) -> dict[str, Any]:
    return {
        "exchanges": [
            {
                "name": NAME,
                "plugin": "simulator_futures",
                "url": url,
                "symbols": [PERP],
                "subscriptions": ["trades", "orderbook"],
            }
        ],
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'daemon.db'}"},
        "api": {"enabled": False},
        "logging": {"level": "WARNING"},
    }


@pytest.mark.asyncio
async def test_the_daemon_streams_the_usdm_perpetual_with_its_venue_spec(tmp_path: Path) -> None:
    """The perpetual's spec (linear, USDT-settled, lot 0.001, tick 0.1) is loaded from the venue;
    a 0.25 BTC print at 20010 arrives as a Trade of 0.25 base worth 5002.5 USDT, and the book
    top after a price move is 20009.9 / 20010.1 with the mid in the market state."""
    sim = SimExchange(MarketModel(["BTC-USDT"], seed=2), clock=ManualClock(time.time()))
    venue = UsdmVenue(api_key="k", api_secret="s")
    venue.set_price(VENUE_ID, D(20000))
    sim.add_routes(venue.routes())
    await sim.start(run=False)
    hub = Hub()
    trades: list[Trade] = []
    tops: list[BookTop] = []
    hub.subscribe(Trade, trades.append, name="test.trades")
    hub.subscribe(BookTop, tops.append, name="test.tops")
    app = build_app(load_settings(data=config(tmp_path, sim.rest_url)), hub=hub)
    await app.start()
    try:
        registry, market, feeds = app.services.instruments, app.services.market, app.services.feeds
        assert registry is not None
        assert market is not None
        assert feeds is not None
        feed: Any = feeds.source(NAME)
        assert feed.feed_class.__name__ == "SimulatorBinanceFutures"
        spec = registry.get(NAME, PERP)
        assert spec is not None
        assert (spec.kind, spec.inverse, spec.settle) == (InstrumentKind.PERPETUAL, False, "USDT")
        assert (spec.lot_size, spec.tick_size, spec.contract_size) == (D("0.001"), D("0.1"), 1)
        await wait_until(lambda: venue.streams.clients, timeout=30, message="subscribed")
        venue.trade(VENUE_ID, "SELL", D("0.25"), D(20010))  # moves the book, then prints
        await wait_until(lambda: trades, timeout=15, message="trade")
        (trade,) = trades
        assert (trade.exchange, trade.symbol, trade.side) == (NAME, PERP, "sell")
        assert (trade.price, trade.amount) == (20010.0, 0.25)
        assert trade.notional == pytest.approx(5002.5)
        assert trade.notional_usd == pytest.approx(5002.5)
        await wait_until(
            lambda: tops and (tops[-1].bid, tops[-1].ask) == (20009.9, 20010.1),
            timeout=15,
            message="book top after the move",
        )
        assert tops[-1].symbol == PERP
        assert market.mid(NAME, PERP) == pytest.approx(20010.0)
    finally:
        await app.stop()
        await sim.stop()
