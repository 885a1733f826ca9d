"""/api/v1/market/orderbook on real recordings replayed with units, as the daemon runs them:
book levels in base units on derivative markets, like the top and the trades."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from cryptomon.clock import LiveClock
from cryptomon.config import ExchangeConfig
from cryptomon.feeds.replay import ReplayFeed, replay_feed_class
from cryptomon.hub import Hub
from cryptomon.market.inputs import MarketInputs
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.state import MarketState
from cryptomon.market.venues import specs_from_recording
from tests.integration.api.conftest import StartApi


def venue_files(shared_data: Path, venue: str) -> list[str]:
    return sorted(str(p) for p in shared_data.glob(f"{venue}.*"))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("venue", "symbol"),
    [
        ("GATEIO_FUTURES", "QUICK-USDT-PERP"),  # 0.01 QUICK per contract
        ("HUOBI_SWAP", "SOS-USDT-PERP"),  # 100,000 SOS per contract
        ("HUOBI_SWAP", "ATOM-USD-PERP"),  # inverse: 10 USD per contract
        ("OKX", "BTC-USDT"),  # spot: as sent
    ],
)
async def test_orderbook_levels_are_base_units_like_the_top(
    shared_data: Path, start_api: StartApi, venue: str, symbol: str
) -> None:
    """The levels of a replayed derivative book are its venue's contracts converted by the
    spec (QUICK: 100 contracts at 56.91 are 1 QUICK), the unit of ``top``'s sizes; a spot
    book's levels are the snapshot's as they are."""
    registry = InstrumentRegistry()
    registry.add(specs_from_recording(shared_data / f"{venue}.0"))
    hub = Hub()
    market = MarketState(hub=hub, instruments=registry)
    api = await start_api(hub=hub, market=market)
    config = ExchangeConfig(
        name=venue.lower(), source="replay", files=venue_files(shared_data, venue), depth=20
    )
    feed = ReplayFeed(
        config,
        feed_class=replay_feed_class(venue),
        hub=hub,
        clock=LiveClock(),
        market=MarketInputs(registry=registry),
    )
    await feed.start()
    await feed.done.wait()
    await feed.stop()
    assert feed.error is None
    snap = market.snapshot(venue.lower(), symbol)
    spec = registry.get(venue.lower(), symbol)
    assert snap is not None
    assert spec is not None
    status, book = await api.get(
        f"/api/v1/market/orderbook?exchange={venue.lower()}&symbol={symbol}&depth=5"
    )
    assert status == 200
    for side, levels in (("bids", snap.venue_bids), ("asks", snap.venue_asks)):
        assert [p for p, _ in book[side]] == [p for p, _ in levels[:5]]
        sizes = [spec.base_amount(s, p) for p, s in levels[:5]]
        assert [s for _, s in book[side]] == pytest.approx(sizes)
    assert book["bids"] == [list(level) for level in snap.bids[:5]]  # the feed converted them
    if spec.kind != "spot":
        assert book["bids"][0][1] != snap.venue_bids[0][1]  # not the venue's contracts
    top = book["top"]
    for side in ("bids", "asks"):  # the top's best level, in the same unit, when it is the same
        price = top["bid" if side == "bids" else "ask"]
        size = top["bid_size" if side == "bids" else "ask_size"]
        same = [s for p, s in book[side] if p == price]
        if same and snap.ts >= top["ts"]:
            assert same[0] == pytest.approx(size)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("venue", "symbol"),
    [
        ("GATEIO_FUTURES", "QUICK-USDT-PERP"),  # 0.01 QUICK per contract
        ("HUOBI_SWAP", "ATOM-USD-PERP"),  # inverse: 10 USD per contract
        ("OKX", "BTC-USDT"),  # spot: nothing beside the sizes
    ],
)
async def test_orderbook_and_top_carry_the_venue_contracts(
    shared_data: Path, start_api: StartApi, venue: str, symbol: str
) -> None:
    """Beside the base-unit levels and top sizes, the route gives the venue's contracts like
    BookSnapshot does: ``contract_bids``/``contract_asks`` are the snapshot's contract
    levels (the same prices) and the top's ``bid_contracts``/``ask_contracts`` the BookTop's;
    on spot they are empty and null. Without a snapshot (a top only) the one level each side
    has its contracts beside it too."""
    registry = InstrumentRegistry()
    registry.add(specs_from_recording(shared_data / f"{venue}.0"))
    hub = Hub()
    market = MarketState(hub=hub, instruments=registry)
    api = await start_api(hub=hub, market=market)
    config = ExchangeConfig(
        name=venue.lower(), source="replay", files=venue_files(shared_data, venue), depth=20
    )
    feed = ReplayFeed(
        config,
        feed_class=replay_feed_class(venue),
        hub=hub,
        clock=LiveClock(),
        market=MarketInputs(registry=registry),
    )
    await feed.start()
    await feed.done.wait()
    await feed.stop()
    assert feed.error is None
    exchange = venue.lower()
    snap = market.snapshot(exchange, symbol)
    top = market.top(exchange, symbol)
    spec = registry.get(exchange, symbol)
    assert snap is not None
    assert top is not None
    assert spec is not None
    url = f"/api/v1/market/orderbook?exchange={exchange}&symbol={symbol}&depth=5"
    status, book = await api.get(url)
    assert status == 200
    assert book["contract_bids"] == [list(level) for level in snap.contract_bids[:5]]
    assert book["contract_asks"] == [list(level) for level in snap.contract_asks[:5]]
    assert book["top"]["bid_contracts"] == top.bid_contracts
    assert book["top"]["ask_contracts"] == top.ask_contracts
    if spec.kind == "spot":
        assert book["contract_bids"] == book["contract_asks"] == []
        assert book["top"]["bid_contracts"] is None
        return
    assert len(book["contract_bids"]) == len(book["bids"]) == 5
    for base, contracts in (
        (book["bids"], book["contract_bids"]),
        (book["asks"], book["contract_asks"]),
    ):
        assert [p for p, _ in contracts] == [p for p, _ in base]
        assert [s for _, s in base] == pytest.approx([spec.base_amount(s, p) for p, s in contracts])
    assert book["top"]["bid_contracts"] is not None
    assert book["top"]["bid_size"] == pytest.approx(spec.base_amount(top.bid_contracts, top.bid))
    # a market with a top and no snapshot yet: the top's level with its contracts beside it
    hub.publish(replace(top, symbol="ZZZ-USDT-PERP"))
    status, only_top = await api.get(
        f"/api/v1/market/orderbook?exchange={exchange}&symbol=ZZZ-USDT-PERP"
    )
    assert status == 200
    assert only_top["bids"] == [[top.bid, top.bid_size]]
    assert only_top["contract_bids"] == [[top.bid, top.bid_contracts]]
    assert only_top["contract_asks"] == [[top.ask, top.ask_contracts]]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("venue", "symbol"),
    [
        ("HUOBI_SWAP", "SOS-USDT-PERP"),  # 100,000 SOS per contract
        ("HUOBI_SWAP", "ATOM-USD-PERP"),  # inverse: 10 USD per contract
        ("OKX", "BTC-USD-22K27"),  # inverse future: 100 USD per contract
        ("OKX", "BTC-USDT"),  # spot: nothing beside the amounts
    ],
)
async def test_trades_carry_the_venue_contracts(
    shared_data: Path, start_api: StartApi, venue: str, symbol: str
) -> None:
    """Beside each trade's base-unit ``amount`` the route gives the venue's ``contracts`` as
    the Trade event has them (the amount is those contracts converted by the spec, at the
    trade's price on an inverse contract); on spot ``contracts`` is null."""
    registry = InstrumentRegistry()
    registry.add(specs_from_recording(shared_data / f"{venue}.0"))
    hub = Hub()
    market = MarketState(hub=hub, instruments=registry)
    api = await start_api(hub=hub, market=market)
    config = ExchangeConfig(
        name=venue.lower(), source="replay", files=venue_files(shared_data, venue), depth=20
    )
    feed = ReplayFeed(
        config,
        feed_class=replay_feed_class(venue),
        hub=hub,
        clock=LiveClock(),
        market=MarketInputs(registry=registry),
    )
    await feed.start()
    await feed.done.wait()
    await feed.stop()
    assert feed.error is None
    exchange = venue.lower()
    trades = market.trades(exchange, symbol, limit=100)
    spec = registry.get(exchange, symbol)
    assert trades
    assert spec is not None
    status, body = await api.get(f"/api/v1/market/trades?exchange={exchange}&symbol={symbol}")
    assert status == 200
    got = body["trades"]
    assert [t["trade_id"] for t in got] == [t.trade_id for t in trades]
    assert [t["amount"] for t in got] == [t.amount for t in trades]
    assert [t["contracts"] for t in got] == [t.contracts for t in trades]
    if spec.kind == "spot":
        assert all(t["contracts"] is None for t in got)
        return
    for t in got:
        assert t["contracts"] is not None
        assert t["contracts"] != pytest.approx(t["amount"])  # two units, not one number twice
        assert t["amount"] == pytest.approx(spec.base_amount(t["contracts"], t["price"]))
