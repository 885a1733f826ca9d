"""The paper broker's contract money against hand computations of the venues' formulas
(Binance COIN-M / BitMEX-style inverse, OKX-style linear with a contract size): resting limit
orders filled by public trades in contracts, funding only for positions open at the funding
time."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cryptomon.clock import ManualClock
from cryptomon.events import OrderIntent, OrderState, Trade
from cryptomon.hub import Hub
from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
from cryptomon.market.state import MarketState
from cryptomon.trading.brokers.paper import PaperBroker
from cryptomon.trading.futures import terms_lookup
from tests.unit.trading.helpers import book, trading_config

D = Decimal
EX = "binance_delivery"
INVERSE = InstrumentSpec(
    exchange=EX,
    symbol="BTC-USD-PERP",
    kind=InstrumentKind.PERPETUAL,
    base="BTC",
    quote="USD",
    settle="BTC",
    contract_size=D(100),  # 100 USD per contract (Binance COIN-M BTCUSD_PERP)
    inverse=True,
    tick_size=D("0.1"),
    lot_size=D(1),
    min_qty=D(1),
)
LINEAR = InstrumentSpec(
    exchange=EX,
    symbol="ETH-USDT-PERP",
    kind=InstrumentKind.PERPETUAL,
    base="ETH",
    quote="USDT",
    settle="USDT",
    contract_size=D("0.1"),  # 0.1 ETH per contract (OKX ETH-USDT-SWAP)
    tick_size=D("0.01"),
    lot_size=D(1),
    min_qty=D(1),
)
SPECS = {s.symbol: s for s in (INVERSE, LINEAR)}


def build() -> tuple[PaperBroker, Hub, ManualClock]:
    hub, clock = Hub(), ManualClock(start=1_700_000_000.0)
    cfg = trading_config(
        leverage=5.0,
        max_leverage=5.0,
        allow_short=True,
        paper={
            "taker_fee": 0.0005,
            "maker_fee": 0.0002,
            "starting_balance": 10_000.0,
            "balances": {"BTC": 1.0},
        },
    )
    broker = PaperBroker(
        config=cfg.paper,
        market=MarketState(hub=hub),
        hub=hub,
        clock=clock,
        allow_short=True,
        terms=terms_lookup(cfg, lambda ex, sym: SPECS.get(sym) if ex == EX else None),
    )
    return broker, hub, clock


def intent(
    symbol: str, side: str, amount: str, *, price: str | None = None, n: int = 1
) -> OrderIntent:
    return OrderIntent(
        exchange=EX,
        symbol=symbol,
        ts=0.0,
        ts_recv=0.0,
        client_order_id=f"c-{n}",
        side=side,  # type: ignore[arg-type]
        type="limit" if price is not None else "market",
        amount=D(amount),
        price=D(price) if price is not None else None,
    )


def public_trade(
    hub: Hub, clock: ManualClock, symbol: str, price: float, amount: float, contracts: float
) -> None:
    """A public sell as the feed converter publishes it: ``amount`` in base units,
    ``contracts`` the venue's quantity."""
    now = clock.time()
    hub.publish(
        Trade(
            exchange=EX,
            symbol=symbol,
            ts=now,
            ts_recv=now,
            price=price,
            amount=amount,
            side="sell",
            contracts=contracts,
        )
    )


@pytest.mark.asyncio
async def test_resting_inverse_limit_fills_in_contracts_from_a_public_trade() -> None:
    """A resting buy of 10 BTC-USD contracts (100 USD each) at 50000, crossed by a public
    sell of 20 contracts (2000 USD = 0.04 BTC) at 49990, fills all 10 contracts at 50000;
    the maker fee is 10 x 100 / 50000 x 0.0002 = 0.000004 BTC. Before, the fill took the
    trade's base amount as contracts: 0.04 of a contract."""
    broker, hub, clock = build()
    book(hub, clock, bid=50100, ask=50101, size=50, exchange=EX, symbol=INVERSE.symbol)
    order = await broker.place_order(intent(INVERSE.symbol, "buy", "10", price="50000"))
    assert order.state == OrderState.SUBMITTED
    public_trade(hub, clock, INVERSE.symbol, 49990.0, 0.04, 20.0)
    view = await broker.fetch_order(INVERSE.symbol, "c-1")
    assert view is not None
    assert view.filled == D(10)
    assert view.state == OrderState.FILLED
    assert view.fills[0].fee == D("0.000004")
    assert view.fills[0].fee_currency == "BTC"
    assert await broker.fetch_positions() == {INVERSE.symbol: D(10)}
    assert (await broker.fetch_balances())["BTC"] == D(1) - D("0.000004")


@pytest.mark.asyncio
async def test_resting_linear_limit_with_a_contract_size_fills_in_contracts() -> None:
    """ETH-USDT contracts of 0.1 ETH: a resting sell of 30 contracts at 3000 crossed by a
    public buy of 50 contracts (5 ETH) fills 30 contracts, not 5."""
    broker, hub, clock = build()
    book(hub, clock, bid=2990, ask=2991, size=100, exchange=EX, symbol=LINEAR.symbol)
    await broker.place_order(intent(LINEAR.symbol, "sell", "30", price="3000"))
    now = clock.time()
    hub.publish(
        Trade(
            exchange=EX,
            symbol=LINEAR.symbol,
            ts=now,
            ts_recv=now,
            price=3001.0,
            amount=5.0,
            side="buy",
            contracts=50.0,
        )
    )
    view = await broker.fetch_order(LINEAR.symbol, "c-1")
    assert view is not None
    assert view.filled == D(30)
    assert await broker.fetch_positions() == {LINEAR.symbol: D(-30)}
    # fee: 30 x 0.1 ETH x 3000 = 9000 USDT x 0.0002 = 1.8 USDT
    assert (await broker.fetch_balances())["USDT"] == D(10_000) - D("1.8")
