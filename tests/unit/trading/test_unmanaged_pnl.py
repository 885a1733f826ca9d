"""The unrealized PnL of the part of a venue's contract position that cryptomon does not
manage, which the cash taken from a derivatives account's margin balance leaves out
(``Reconciler._unmanaged_unrealized``): here a same-side excess, the venue holding more of
the engine's side than the engine manages (someone added to it by hand)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cryptomon.clock import ManualClock
from cryptomon.hub import Hub
from cryptomon.market.state import MarketState
from cryptomon.trading.brokers.base import VenuePosition
from cryptomon.trading.brokers.paper import PaperBroker
from cryptomon.trading.engine import TradingEngine
from cryptomon.trading.futures import terms_lookup
from cryptomon.trading.journal import MemoryJournal
from tests.unit.trading.test_futures_paper import EX, PERP, SPEC, config, lookup, quote

D = Decimal


class VenueReporting(PaperBroker):
    """The paper perpetual that also reports the venue's positions with their unrealized PnL
    (as the ccxt broker does), set by the test."""

    venue: dict[str, VenuePosition]

    async def fetch_venue_positions(self) -> dict[str, VenuePosition]:
        return dict(self.venue)


async def engine_long(amount: str, at: float) -> tuple[TradingEngine, VenueReporting, Hub]:
    """The paper perpetual engine holding ``amount`` contracts long, bought at ``at`` + 0.5."""
    hub, clock = Hub(), ManualClock(start=1_700_000_000.0)
    cfg = config()
    market = MarketState(hub=hub)
    broker = VenueReporting(
        config=cfg.paper,
        market=market,
        hub=hub,
        clock=clock,
        allow_short=True,
        terms=terms_lookup(cfg, lookup(SPEC)),
    )
    broker.venue = {}
    engine = TradingEngine(
        config=cfg,
        hub=hub,
        clock=clock,
        broker=broker,
        market=market,
        journal=MemoryJournal(hub=hub),
        specs=lookup(SPEC),
    )
    quote(hub, clock, at)
    await engine.start()
    await engine.place_manual_order(actor="t", exchange=EX, symbol=PERP, side="buy", amount=amount)
    return engine, broker, hub


@pytest.mark.asyncio
async def test_a_same_side_excess_leaves_out_the_unrealized_pnl_of_the_part_added_by_hand() -> None:
    """The engine bought 0.1 at 20000.5; someone bought 0.2 more by hand at 21000: the venue
    holds 0.3 long at its average entry (0.1 * 20000.5 + 0.2 * 21000) / 0.3 = 20666.833...
    At a mark of 22000 it reports 0.3 * 22000 - 6200.05 = 399.95 unrealized. The engine's
    0.1 gains 0.1 * (22000 - 20000.5) = 199.95 (the cash leaves that out on its own: the
    equity adds it); the 0.2 added by hand gains 0.2 * (22000 - 21000) = 200, which is not
    the engine's money. Before, the excess took the venue's figure pro rata,
    399.95 * 0.2 / 0.3 = 266.633..., as if it had been bought at the venue's average entry:
    the cash came out 66.63 short of the wallet (the engine's equity and daily PnL with it),
    for as long as the excess was held."""
    engine, broker, hub = await engine_long("0.1", 20000)
    try:
        pos = engine.portfolio.positions[(EX, PERP)]
        assert (pos.amount, pos.avg_price) == (D("0.1"), D("20000.5"))
        quote(hub, engine.context.clock, 22000)  # type: ignore[arg-type]
        assert pos.mark == D(22000)
        assert pos.unrealized_pnl == D("199.95")
        broker.venue = {
            PERP: VenuePosition(contracts=D("0.3"), unrealized=D("399.95"), settle="USDT")
        }
        reconciler = engine.reconciler
        await reconciler._venue_positions()
        assert reconciler._unmanaged_unrealized("USDT") == D(200)
        # the cash the margin balance gives is the wallet: all of the venue's figure is out
        out = engine.portfolio.contract_unrealized("USDT") + D(200)
        assert out == D("399.95")
        assert reconciler._unmanaged_unrealized("BTC") == 0  # settled in another currency
    finally:
        await engine.stop()
