"""An inverse (coin-margined) perpetual in paper mode on a replay of the real HUOBI_SWAP
recording: ATOM-USD-PERP contracts of 10 USD, settled in ATOM. A long opened on the first
book and closed on the last realizes contracts x 10 x (1/entry - 1/exit) ATOM, in the paper
broker's ATOM balance and in the portfolio's contract position."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from cryptomon.clock import LiveClock
from cryptomon.config import ExchangeConfig
from cryptomon.events import BookTop, OrderIntent
from cryptomon.feeds.replay import ReplayFeed, replay_feed_class
from cryptomon.hub import Hub
from cryptomon.market.inputs import MarketInputs
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.state import MarketState
from cryptomon.market.venues import specs_from_recording
from cryptomon.trading.brokers.base import BrokerOrder
from cryptomon.trading.brokers.paper import PaperBroker
from cryptomon.trading.futures import pnl, terms_lookup, value
from cryptomon.trading.portfolio import Portfolio
from tests.unit.trading.helpers import trading_config

D = Decimal
SYMBOL = "ATOM-USD-PERP"


def intent(cid: str, side: str, qty: str, *, reduce_only: bool = False) -> OrderIntent:
    return OrderIntent(
        exchange="huobi_swap",
        symbol=SYMBOL,
        ts=0.0,
        ts_recv=0.0,
        client_order_id=cid,
        side=side,  # type: ignore[arg-type]
        type="market",
        amount=D(qty),
        reduce_only=reduce_only,
    )


def recording(shared_data: Path) -> list[str]:
    return venue_files(shared_data, "HUOBI_SWAP")


def venue_files(shared_data: Path, venue: str) -> list[str]:
    return sorted(str(p) for p in shared_data.glob(f"{venue}.*"))


@pytest.mark.asyncio
async def test_inverse_long_on_a_huobi_swap_replay_realizes_coin_pnl(shared_data: Path) -> None:
    """2 contracts long from the first to the last recorded book of ATOM-USD-PERP at 3x."""
    specs = {s.symbol: s for s in specs_from_recording(shared_data / "HUOBI_SWAP.0")}
    spec = specs[SYMBOL]
    assert spec.inverse
    assert spec.settle == "ATOM"
    cfg = trading_config(leverage=3.0, max_leverage=3.0, paper={"balances": {"ATOM": 5.0}})
    hub, clock = Hub(), LiveClock()
    market = MarketState(hub=hub)
    terms = terms_lookup(cfg, lambda _ex, sym: specs.get(sym))
    broker = PaperBroker(config=cfg.paper, market=market, hub=hub, clock=clock, terms=terms)
    portfolio = Portfolio(quote="USD", cash=D(0), terms=terms)
    entries: list[asyncio.Task[BrokerOrder]] = []

    def first_book(top: BookTop) -> None:
        if top.symbol == SYMBOL and not entries and top.ask > 0:
            entries.append(asyncio.ensure_future(broker.place_order(intent("in", "buy", "2"))))

    hub.subscribe(BookTop, first_book, name="test.first-book")
    config = ExchangeConfig(
        name="huobi_swap", source="replay", files=recording(shared_data), depth=20
    )
    feed = ReplayFeed(config, feed_class=replay_feed_class("HUOBI_SWAP"), hub=hub, clock=clock)
    await feed.start()
    await feed.done.wait()
    await feed.stop()
    assert feed.error is None
    opened = await entries[0]
    closed = await broker.place_order(intent("out", "sell", "2", reduce_only=True))
    for fill in (*opened.fills, *closed.fills):
        portfolio.apply_fill(fill)
    entry, exit_ = opened.avg_price, closed.avg_price
    assert entry is not None
    assert exit_ is not None
    assert entry != exit_  # the book moved between the first and the last snapshot
    hand = pnl(spec, D(2), entry, exit_)
    fees = (value(spec, D(2), entry) + value(spec, D(2), exit_)) * D("0.001")
    position = portfolio.positions[("huobi_swap", SYMBOL)]
    assert position.realized_pnl == hand
    assert position.fees == fees
    assert position.event(0.0, 0.0).settle == "ATOM"
    assert (await broker.fetch_balances())["ATOM"] == D(5) + hand - fees
    assert await broker.fetch_positions() == {}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("venue", "symbol"),
    [("GATEIO_FUTURES", "QUICK-USDT-PERP"), ("HUOBI_SWAP", "SOS-USDT-PERP")],
)
async def test_paper_market_order_takes_the_best_level_in_contracts(
    shared_data: Path, venue: str, symbol: str
) -> None:
    """A paper market buy of the best ask's contracts + 1 on a replay with units (as the
    daemon runs): the best level fills its venue contracts (QUICK: 0.01 coin per contract,
    SOS: 100,000), not its base-unit size read as contracts, and the last contract goes
    one level deeper."""
    specs = {s.symbol: s for s in specs_from_recording(shared_data / f"{venue}.0")}
    registry = InstrumentRegistry()
    registry.add(list(specs.values()))
    cfg = trading_config(leverage=3.0, max_leverage=3.0)
    hub, clock = Hub(), LiveClock()
    market = MarketState(hub=hub)
    terms = terms_lookup(cfg, lambda _ex, sym: specs.get(sym))
    broker = PaperBroker(config=cfg.paper, market=market, hub=hub, clock=clock, terms=terms)
    config = ExchangeConfig(
        name=venue.lower(), source="replay", files=venue_files(shared_data, venue), depth=20
    )
    feed = ReplayFeed(
        config,
        feed_class=replay_feed_class(venue),
        hub=hub,
        clock=clock,
        market=MarketInputs(registry=registry),
    )
    await feed.start()
    await feed.done.wait()
    await feed.stop()
    assert feed.error is None
    top = market.top(venue.lower(), symbol)
    assert top is not None
    assert top.ask_contracts is not None
    assert top.ask_size != top.ask_contracts  # base units beside the venue's contracts
    contracts = D(str(top.ask_contracts))
    order = OrderIntent(
        exchange=venue.lower(),
        symbol=symbol,
        ts=0.0,
        ts_recv=0.0,
        client_order_id="walk",
        side="buy",
        type="market",
        amount=contracts + 1,
    )
    placed = await broker.place_order(order)
    assert [f.amount for f in placed.fills] == [contracts, D(1)]
    assert placed.fills[0].price == D(str(top.ask))
    assert placed.fills[1].price > placed.fills[0].price
