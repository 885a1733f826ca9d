"""A paper position on a market whose feed gives neither marks nor trades is liquidated by
the book mid: the Gate.io futures recording (subscribed to books, book tickers and candles;
its trades channel sent nothing, and no funding) replayed through cryptofeed with the venue's
own specs, as the daemon runs it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from cryptomon.clock import LiveClock
from cryptomon.events import OrderIntent, Trade
from cryptomon.hub import Hub
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.state import MarketState
from cryptomon.market.venues import specs_from_recording
from cryptomon.trading.brokers.base import BrokerOrder
from cryptomon.trading.brokers.paper import PaperBroker
from cryptomon.trading.futures import terms_lookup
from tests.integration.test_book_units_recorded import replayed_books
from tests.unit.trading.helpers import book, trading_config

EX = "gateio_futures"
QUICK = "QUICK-USDT-PERP"  # linear, 0.01 QUICK per contract; recorded near 57 USDT
MID_SUB = "paper-broker.book-mid"


@pytest.mark.asyncio
async def test_a_gateio_futures_long_is_liquidated_by_the_recorded_book_mid(
    shared_data: Path,
) -> None:
    """A 5x long of 100 contracts (1 QUICK) bought at 114.01 on a book set at twice the
    recorded price: its estimate is 114.01 x 0.805 = 91.77805. The recording's first book
    of QUICK (mid near 57) reaches it: the venue closes the long there, the reason names the
    book mid, and the BookTop subscription made for it is dropped with the position. No
    trade and no mark of QUICK is in the recording (the mid is the only price there)."""
    registry = InstrumentRegistry()
    registry.add(specs_from_recording(shared_data / "GATEIO_FUTURES.0"))
    hub = Hub()
    market = MarketState(hub=hub, instruments=registry)
    cfg = trading_config(leverage=5.0, max_leverage=5.0, allow_short=True)
    clock = LiveClock()
    broker = PaperBroker(
        config=cfg.paper,
        market=market,
        hub=hub,
        clock=clock,
        allow_short=True,
        terms=terms_lookup(cfg, registry.get),
    )
    forced: list[tuple[OrderIntent, BrokerOrder, str]] = []
    broker.set_forced_listener(lambda i, o, r: forced.append((i, o, r)))
    trades: list[Trade] = []
    hub.subscribe(Trade, trades.append, name="test.trades")
    book(hub, clock, bid=114.0, ask=114.01, size=1000.0, exchange=EX, symbol=QUICK)
    intent = OrderIntent(
        exchange=EX,
        symbol=QUICK,
        ts=0.0,
        ts_recv=0.0,
        client_order_id="long-quick",
        side="buy",
        type="market",
        amount=Decimal(100),
    )
    assert (await broker.place_order(intent)).filled == Decimal(100)
    assert MID_SUB in hub.stats()["subscribers"]
    await replayed_books(shared_data, "GATEIO_FUTURES", hub)
    assert [t for t in trades if t.symbol == QUICK] == []
    assert len(forced) == 1
    liquidation, view, reason = forced[0]
    assert (liquidation.origin, liquidation.side, liquidation.symbol) == (
        "liquidation",
        "sell",
        QUICK,
    )
    estimate = Decimal("114.01") * Decimal("0.805")
    (fill,) = view.fills
    assert (fill.price, fill.amount) == (estimate, Decimal(100))
    assert reason.startswith("liquidation: book mid ")
    assert float(reason.split()[3]) < 60  # the recorded mid, not the book set before
    assert await broker.fetch_positions() == {}
    assert MID_SUB not in hub.stats()["subscribers"]
