"""Book snapshot levels are base units like the BookTop's, on real recordings of contract
venues replayed through cryptofeed with the venues' own instrument specs (as the daemon runs
them): Gate.io futures (linear contracts of 0.01 QUICK ...), Huobi swaps (100,000 SOS per
contract; inverse ATOM-USD-PERP of 10 USD), OKX (inverse UNI-USD-PERP and a dated inverse
future), Binance USD-M (contracts of one coin: sizes as sent)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from cryptomon.clock import LiveClock
from cryptomon.config import ExchangeConfig
from cryptomon.events import BookSnapshot, BookTop, OrderIntent
from cryptomon.feeds.replay import ReplayFeed, replay_feed_class
from cryptomon.hub import Hub
from cryptomon.market.inputs import MarketInputs
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.state import MarketState
from cryptomon.market.venues import specs_from_recording
from cryptomon.trading.brokers.paper import PaperBroker
from cryptomon.trading.futures import terms_lookup
from tests.unit.trading.helpers import trading_config


def venue_files(shared_data: Path, venue: str) -> list[str]:
    return sorted(str(p) for p in shared_data.glob(f"{venue}.*"))


async def replayed_books(
    shared_data: Path, venue: str, hub: Hub | None = None
) -> tuple[InstrumentRegistry, list[BookSnapshot], list[BookTop]]:
    """Every BookSnapshot and BookTop of one recording replayed with its specs (a snapshot
    after every book update) on ``hub`` (a new one if None)."""
    registry = InstrumentRegistry()
    registry.add(specs_from_recording(shared_data / f"{venue}.0"))
    hub = hub or Hub()
    snaps: list[BookSnapshot] = []
    tops: list[BookTop] = []
    hub.subscribe(BookSnapshot, snaps.append, name="test.snaps")
    hub.subscribe(BookTop, tops.append, name="test.tops")
    files = venue_files(shared_data, venue)
    config = ExchangeConfig(name=venue.lower(), source="replay", files=files, depth=20)
    feed = ReplayFeed(
        config,
        feed_class=replay_feed_class(venue),
        hub=hub,
        clock=LiveClock(),
        market=MarketInputs(registry=registry),
    )
    feed.converter.snapshot_interval = float("-inf")  # every update: many snapshot/top pairs
    await feed.start()
    await feed.done.wait()
    await feed.stop()
    assert feed.error is None
    return registry, snaps, tops


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("venue", "symbols"),
    [
        ("GATEIO_FUTURES", {"QUICK-USDT-PERP"}),
        ("HUOBI_SWAP", {"SOS-USDT-PERP", "ATOM-USD-PERP"}),
        ("OKX", {"UNI-USD-PERP", "BTC-USD-22K27"}),
    ],
)
async def test_contract_snapshot_levels_are_base_units_like_the_top(
    shared_data: Path, venue: str, symbols: set[str]
) -> None:
    """A snapshot taken at a BookTop's latest update (same receipt) has the top's best levels
    at the top's sizes (base units) and the venue's contracts beside them equal to the top's
    ``*_contracts``;
    every level is its contracts converted by the spec at the level's own price."""
    registry, snaps, tops = await replayed_books(shared_data, venue)
    top_at = {(t.symbol, t.ts_recv, t.bid, t.ask): t for t in tops}
    matched: dict[str, int] = defaultdict(int)
    for snap in snaps:
        spec = registry.get(venue.lower(), snap.symbol)
        assert spec is not None
        if not (spec.inverse or spec.contract_size != 1):  # spot, one coin per contract
            assert snap.contract_bids == snap.contract_asks == ()
            continue
        assert len(snap.contract_bids) == len(snap.bids)
        for base, venue_levels in ((snap.bids, snap.venue_bids), (snap.asks, snap.venue_asks)):
            assert [p for p, _ in base] == [p for p, _ in venue_levels]
            assert [s for _, s in base] == pytest.approx(
                [spec.base_amount(s, p) for p, s in venue_levels]
            )
        if not snap.bids or not snap.asks:
            continue
        top = top_at.get((snap.symbol, snap.ts_recv, snap.bids[0][0], snap.asks[0][0]))
        if top is None:
            continue  # no top from this very update (a later one of the same turn)
        assert snap.bids[0][1] == pytest.approx(top.bid_size)
        assert snap.asks[0][1] == pytest.approx(top.ask_size)
        assert snap.contract_bids[0][1] == top.bid_contracts
        assert snap.contract_asks[0][1] == top.ask_contracts
        matched[snap.symbol] += 1
    assert set(matched) >= symbols, matched
    for symbol in symbols:
        spec = registry.get(venue.lower(), symbol)
        assert spec is not None
        assert spec.inverse or spec.contract_size != 1  # contracts differ from coins here
        last = next(s for s in reversed(snaps) if s.symbol == symbol and s.bids)
        assert last.bids[0][1] != last.contract_bids[0][1]


@pytest.mark.asyncio
async def test_one_coin_contracts_keep_their_sizes(shared_data: Path) -> None:
    """Binance USD-M perpetuals (one coin per contract): the snapshot's sizes are the venue's
    as sent, nothing beside them, and equal the top's at the best level."""
    _, snaps, tops = await replayed_books(shared_data, "BINANCE_FUTURES")
    top_at = {(t.symbol, t.ts_recv, t.bid, t.ask): t for t in tops}
    matched = 0
    for snap in snaps:
        assert snap.contract_bids == snap.contract_asks == ()
        assert snap.venue_bids is snap.bids
        if not snap.bids or not snap.asks:
            continue
        top = top_at.get((snap.symbol, snap.ts_recv, snap.bids[0][0], snap.asks[0][0]))
        if top is not None:
            assert (snap.bids[0][1], snap.asks[0][1]) == (top.bid_size, top.ask_size)
            assert top.bid_contracts is None
            matched += 1
    assert matched > 10


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("venue", "symbol"),
    [
        ("GATEIO_FUTURES", "QUICK-USDT-PERP"),
        ("HUOBI_SWAP", "SOS-USDT-PERP"),
        ("HUOBI_SWAP", "ATOM-USD-PERP"),
    ],
)
async def test_paper_market_order_walks_the_snapshot_in_contracts(
    shared_data: Path, venue: str, symbol: str
) -> None:
    """A paper market buy of the first two ask levels' contracts + 1 after a replay: each
    level fills its venue contracts (the snapshot's base sizes are not read as contracts)
    and the last contract goes to the third level."""
    hub = Hub()
    market = MarketState(hub=hub)
    specs = {s.symbol: s for s in specs_from_recording(shared_data / f"{venue}.0")}
    balances = {"ATOM": 1000.0}  # the inverse contracts' margin coin
    cfg = trading_config(leverage=3.0, max_leverage=3.0, paper={"balances": balances})
    terms = terms_lookup(cfg, lambda _ex, sym: specs.get(sym))
    clock = LiveClock()
    broker = PaperBroker(config=cfg.paper, market=market, hub=hub, clock=clock, terms=terms)
    await replayed_books(shared_data, venue, hub)
    snap = market.snapshot(venue.lower(), symbol)
    top = market.top(venue.lower(), symbol)
    assert snap is not None
    assert top is not None
    assert snap.ts >= top.ts  # every update snapshotted: the snapshot is the latest book
    levels = snap.venue_asks[:3]
    assert len(levels) == 3
    assert levels[0] == (top.ask, top.ask_contracts)
    assert [s for _, s in snap.asks[:2]] != [s for _, s in levels[:2]]  # base != contracts
    first, second = (Decimal(str(size)) for _, size in levels[:2])
    order = OrderIntent(
        exchange=venue.lower(),
        symbol=symbol,
        ts=0.0,
        ts_recv=0.0,
        client_order_id="walk2",
        side="buy",
        type="market",
        amount=first + second + 1,
    )
    placed = await broker.place_order(order)
    assert [f.amount for f in placed.fills] == [first, second, Decimal(1)]
    assert [float(f.price) for f in placed.fills] == [p for p, _ in levels]
