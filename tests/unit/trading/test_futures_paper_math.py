"""The paper broker's contract money against hand computations of the venues' formulas
(Binance COIN-M / BitMEX-style inverse, OKX-style linear with a contract size): resting limit
orders filled by public trades in contracts, funding only for positions open at the funding
time."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cryptomon.clock import ManualClock
from cryptomon.events import Funding, OrderIntent, OrderState, Trade
from cryptomon.hub import Hub
from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
from cryptomon.market.state import MarketState
from cryptomon.trading.brokers.paper import PaperBroker
from cryptomon.trading.engine import TradingEngine
from cryptomon.trading.futures import terms_lookup
from cryptomon.trading.journal import MemoryJournal
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


def announce(hub: Hub, clock: ManualClock, rate: float, mark: float, next_time: float) -> None:
    now = clock.time()
    hub.publish(
        Funding(
            exchange=EX,
            symbol=INVERSE.symbol,
            ts=now,
            ts_recv=now,
            rate=rate,
            mark_price=mark,
            next_funding_time=next_time,
        )
    )


@pytest.mark.asyncio
async def test_paper_funding_skips_a_position_opened_after_the_funding_time() -> None:
    """0.01% announced for T; a long of 10 BTC-USD contracts opened 10 s after T (before the
    next announcement) was not held at T: no payment, the BTC balance moves by the taker fee
    only (10 x 100 / 50000.1 x 0.0005). Before, the paper venue charged it 0.000002 BTC, which
    the engine (payment time T before the position opened) never booked."""
    broker, hub, clock = build()
    book(hub, clock, bid=50000, ask=50000.1, size=50, exchange=EX, symbol=INVERSE.symbol)
    due = clock.time() + 60
    announce(hub, clock, 0.0001, 50000.0, due)
    clock.advance(70)
    order = await broker.place_order(intent(INVERSE.symbol, "buy", "10"))
    assert order.filled == D(10)
    clock.advance(10)
    announce(hub, clock, 0.0001, 50000.0, due + 8 * 3600)
    assert await broker.fetch_funding(INVERSE.symbol) == []
    fee = D(1000) / D("50000.1") * D("0.0005")
    assert (await broker.fetch_balances())["BTC"] == D(1) - fee


@pytest.mark.asyncio
async def test_paper_funding_charges_a_position_closed_after_the_funding_time() -> None:
    """A long of 10 BTC-USD contracts held at T and closed 10 s after it, before the next
    announcement, pays 10 x 100 / 50000 (mark) x 0.0001 = 0.000002 BTC for T, once. Before,
    the close came first and the position escaped the payment."""
    broker, hub, clock = build()
    book(hub, clock, bid=50000, ask=50000.1, size=50, exchange=EX, symbol=INVERSE.symbol)
    due = clock.time() + 60
    announce(hub, clock, 0.0001, 50000.0, due)
    await broker.place_order(intent(INVERSE.symbol, "buy", "10", n=1))
    clock.advance(70)
    await broker.place_order(intent(INVERSE.symbol, "sell", "10", n=2))
    clock.advance(10)
    announce(hub, clock, 0.0001, 50000.0, due + 8 * 3600)
    (payment,) = await broker.fetch_funding(INVERSE.symbol)
    assert payment.ts == due
    assert payment.amount == D("-0.000002")
    assert payment.currency == "BTC"
    # entry 50000.1, exit 50000: 1000 x (1/50000.1 - 1/50000) BTC, taker fees both ways
    pnl = D(1000) * (1 / D("50000.1") - 1 / D(50000))
    fees = (D(1000) / D("50000.1") + D(1000) / D(50000)) * D("0.0005")
    assert (await broker.fetch_balances())["BTC"] == D(1) + pnl - fees - D("0.000002")


@pytest.mark.asyncio
async def test_engine_books_the_funding_of_a_position_closed_before_the_sync() -> None:
    """A 0.1 BTC USDT-perp long (5x) held at the funding time T (0.01% on mark 20000 = 0.2
    USDT paid) and closed 10 s after T, before the engine's funding sync: the sync still books
    the payment into the closed round trip, so the engine's cash equals the paper venue's
    balance. Before, the sync asked about open positions only and the payment was lost."""
    from tests.unit.trading import test_futures_paper as perp

    engine, broker, hub, clock = perp.build()
    perp.quote(hub, clock, 20000)
    await engine.start()
    due = clock.time() + 60
    perp.funding(hub, clock, 0.0001, 20000.0, due)
    await engine.place_manual_order(
        actor="t", exchange=perp.EX, symbol=perp.PERP, side="buy", amount="0.1"
    )
    clock.advance(70)
    await engine.place_manual_order(
        actor="t", exchange=perp.EX, symbol=perp.PERP, side="sell", amount="0.1"
    )
    pos = engine.portfolio.positions[(perp.EX, perp.PERP)]
    assert pos.amount == 0
    clock.advance(10)
    perp.funding(hub, clock, 0.0001, 20000.0, due + 8 * 3600)
    assert await engine.funding.sync() == 1
    fees = (D("0.1") * D("20000.5") + D("0.1") * D("19999.5")) * D("0.001")
    hand = D("0.1") * (D("19999.5") - D("20000.5")) - D("0.2") - fees
    (trip,) = engine.portfolio.trades
    assert trip.pnl == hand
    assert pos.realized_pnl == hand + fees
    assert (await broker.fetch_balances())["USDT"] == D(10_000) + hand
    assert engine.portfolio.cash == D(10_000) + hand
    assert await engine.funding.sync() == 0  # once
    await engine.stop()


@pytest.mark.asyncio
async def test_a_coin_account_sizes_and_checks_inverse_entries_in_the_coin() -> None:
    """An account kept in BTC (``paper.quote_currency: BTC``, 1 BTC; a COIN-M wallet) and a
    buy signal on BTC-USD contracts of 100 USD at mid 20000: 2% risk over a 3% stop is
    0.667 BTC, capped at max_position_size 0.5 BTC = 10000 USD = 100 contracts, and risk
    values them at 10000 / 20000.05 BTC, within the BTC limits. Before, the BTC budget was
    read as USD (0.5 / 100 = 0.005 contracts: "less than one lot") and a manual order of 100
    contracts was a 10000 "BTC" position, refused by max_position_size."""
    from cryptomon.events import Signal

    hub, clock = Hub(), ManualClock(start=1_700_000_000.0)
    cfg = trading_config(
        leverage=5.0,
        max_leverage=5.0,
        allow_short=True,
        auto_trading_enabled=True,
        risk_percentage=2.0,
        stop_loss_percentage=3.0,
        take_profit_percentage=6.0,
        max_position_size=0.5,
        max_symbol_exposure=0.5,
        max_total_exposure=1.0,
        paper={
            "quote_currency": "BTC",
            "starting_balance": 1.0,
            "taker_fee": 0.0005,
            "maker_fee": 0.0002,
        },
    )

    def specs(exchange: str, symbol: str) -> InstrumentSpec | None:
        return SPECS.get(symbol) if exchange == EX else None

    market = MarketState(hub=hub)
    broker = PaperBroker(
        config=cfg.paper,
        market=market,
        hub=hub,
        clock=clock,
        allow_short=True,
        terms=terms_lookup(cfg, specs),
    )
    engine = TradingEngine(
        config=cfg,
        hub=hub,
        clock=clock,
        broker=broker,
        market=market,
        journal=MemoryJournal(hub=hub),
        specs=specs,
    )
    book(hub, clock, bid=20000, ask=20000.1, size=500, exchange=EX, symbol=INVERSE.symbol)
    await engine.start()
    sig = Signal(
        exchange=EX,
        symbol=INVERSE.symbol,
        ts=clock.time(),
        ts_recv=clock.time(),
        side="buy",
        strength=0.9,
        source="test",
        reason="test",
        id="sig-coin",
    )
    record = await engine.handle_signal(sig)
    assert record is not None
    assert record.intent.amount == D(100)
    assert record.state == OrderState.FILLED
    pos = engine.portfolio.positions[(EX, INVERSE.symbol)]
    assert pos.amount == D(100)
    # the margin and fee came out of the same BTC balance: 10000 / 20000.1 BTC x 0.0005 fee
    fee = D(10_000) / D("20000.1") * D("0.0005")
    assert (await broker.fetch_balances())["BTC"] == D(1) - fee
    assert engine.portfolio.cash == D(1) - fee
    await engine.stop()


def inverse_engine(
    journal: object | None = None,
) -> tuple[TradingEngine, PaperBroker, Hub, ManualClock, MemoryJournal]:
    """An engine on a paper account of 10000 USDT plus 1 BTC (``paper.balances``) trading
    the BTC-USD contracts at 5x."""
    hub, clock = Hub(), ManualClock(start=1_700_000_000.0)
    cfg = trading_config(
        leverage=5.0,
        max_leverage=5.0,
        max_position_size=100_000.0,
        max_symbol_exposure=100_000.0,
        max_total_exposure=100_000.0,
        price_band_percentage=50.0,
        paper={"taker_fee": 0.0005, "balances": {"BTC": 1.0}},
    )

    def specs(exchange: str, symbol: str) -> InstrumentSpec | None:
        return SPECS.get(symbol) if exchange == EX else None

    market = MarketState(hub=hub)
    broker = PaperBroker(
        config=cfg.paper,
        market=market,
        hub=hub,
        clock=clock,
        allow_short=True,
        terms=terms_lookup(cfg, specs),
    )
    store = journal if isinstance(journal, MemoryJournal) else MemoryJournal(hub=hub)
    engine = TradingEngine(
        config=cfg,
        hub=hub,
        clock=clock,
        broker=broker,
        market=market,
        journal=store,
        specs=specs,
    )
    return engine, broker, hub, clock, store


@pytest.mark.asyncio
async def test_the_paper_coin_balance_of_inverse_contracts_survives_the_engine_start() -> None:
    """``paper.balances: {BTC: 1}`` is the margin of coin-margined contracts: after the engine
    starts (and after a restart on the same journal) the paper venue still holds it, plus the
    coin PnL of the closed trades. Before, the engine's start replaced the paper balances by
    the quote cash alone: 0 BTC, every inverse entry refused for margin."""
    engine, broker, hub, clock, journal = inverse_engine()
    book(hub, clock, bid=20000, ask=20000.1, size=500, exchange=EX, symbol=INVERSE.symbol)
    await engine.start()
    assert (await broker.fetch_balances())["BTC"] == D(1)
    await engine.place_manual_order(
        actor="t", exchange=EX, symbol=INVERSE.symbol, side="buy", amount="10"
    )
    book(hub, clock, bid=25000, ask=25000.1, size=500, exchange=EX, symbol=INVERSE.symbol)
    await engine.place_manual_order(
        actor="t", exchange=EX, symbol=INVERSE.symbol, side="sell", amount="10"
    )
    await engine.stop()
    # 1000 USD long 20000.1 -> 25000: 1000 x (1/20000.1 - 1/25000) BTC, 0.05% taker fees
    pnl = D(1000) * (1 / D("20000.1") - 1 / D(25000))
    fees = (D(1000) / D("20000.1") + D(1000) / D(25000)) * D("0.0005")
    assert (await broker.fetch_balances())["BTC"] == D(1) + pnl - fees
    engine2, broker2, hub2, clock2, _ = inverse_engine(journal)
    book(hub2, clock2, bid=25000, ask=25000.1, size=500, exchange=EX, symbol=INVERSE.symbol)
    await engine2.start()
    assert (await broker2.fetch_balances())["BTC"] == D(1) + pnl - fees
    await engine2.stop()


@pytest.mark.asyncio
async def test_an_inverse_order_reports_the_harmonic_average_fill_price() -> None:
    """A market buy of 60 BTC-USD contracts walking 50 at 20000.1 and 10 at 20001.1 has an
    average price of 60 / (50/20000.1 + 10/20001.1) (the venue's avgPrice of a coin-margined
    order, and the position's entry); before, the order showed the arithmetic 20000.2666..."""
    engine, _broker, hub, clock, _ = inverse_engine()
    book(hub, clock, bid=20000, ask=20000.1, size=50, exchange=EX, symbol=INVERSE.symbol)
    await engine.start()
    shown = await engine.place_manual_order(
        actor="t", exchange=EX, symbol=INVERSE.symbol, side="buy", amount="60"
    )
    harmonic = D(60) / (D(50) / D("20000.1") + D(10) / D("20001.1"))
    (record,) = engine.context.book.all()
    assert record.filled == D(60)
    assert record.avg_price == harmonic
    assert engine.portfolio.positions[(EX, INVERSE.symbol)].avg_price == harmonic
    assert shown["avg_price"] == f"{harmonic.normalize():f}"
    await engine.stop()
