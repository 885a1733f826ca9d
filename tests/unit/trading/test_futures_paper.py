"""Perpetuals in paper mode: the paper broker's margin, shorts and funding, and the engine on
it: a 5x long and a 5x short open with their stop-loss and take-profit, pay or receive
funding, close, and end with the PnL of the hand computation."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from cryptomon.clock import ManualClock
from cryptomon.config.trading import TradingConfig
from cryptomon.errors import RiskRejected
from cryptomon.events import Funding, OrderIntent, Signal
from cryptomon.hub import Hub
from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
from cryptomon.market.state import MarketState
from cryptomon.trading.brokers.base import FundingSource, OrderRejectedError
from cryptomon.trading.brokers.paper import PaperBroker
from cryptomon.trading.engine import TradingEngine
from cryptomon.trading.futures import terms_lookup
from cryptomon.trading.journal import Journal, MemoryJournal
from tests.unit.trading.helpers import book, trading_config
from tests.util import wait_until

D = Decimal
EX = "binance_futures"
PERP = "BTC-USDT-PERP"
SPEC = InstrumentSpec(
    exchange=EX,
    symbol=PERP,
    kind=InstrumentKind.PERPETUAL,
    base="BTC",
    quote="USDT",
    settle="USDT",
    tick_size=D("0.1"),
    lot_size=D("0.001"),
    min_qty=D("0.001"),
    min_notional=D(5),
)


def lookup(spec: InstrumentSpec):  # type: ignore[no-untyped-def]
    def specs(exchange: str, symbol: str) -> InstrumentSpec | None:
        return spec if (exchange, symbol) == (EX, PERP) else None

    return specs


def config(**kw: object):  # type: ignore[no-untyped-def]
    base = {
        "max_leverage": 5.0,
        "leverage": 5.0,
        "allow_short": True,
        "max_position_size": 60_000.0,
        "max_symbol_exposure": 60_000.0,
        "max_total_exposure": 60_000.0,
        "stop_loss_percentage": 3.0,
        "take_profit_percentage": 6.0,
        "price_band_percentage": 50.0,
    }
    base.update(kw)
    return trading_config(**base)


def build(
    spec: InstrumentSpec = SPEC, **kw: object
) -> tuple[TradingEngine, PaperBroker, Hub, ManualClock]:
    hub, clock = Hub(), ManualClock(start=1_700_000_000.0)
    engine = perp_engine(hub, clock, config(**kw), MemoryJournal(hub=hub), spec)
    assert isinstance(engine.broker, PaperBroker)
    return engine, engine.broker, hub, clock


def perp_engine(
    hub: Hub, clock: ManualClock, cfg: TradingConfig, journal: Journal, spec: InstrumentSpec = SPEC
) -> TradingEngine:
    """The paper engine (shorts allowed) on ``spec``'s market, journaled by ``journal``."""
    market = MarketState(hub=hub)
    broker = PaperBroker(
        config=cfg.paper,
        market=market,
        hub=hub,
        clock=clock,
        allow_short=True,
        terms=terms_lookup(cfg, lookup(spec)),
    )
    return TradingEngine(
        config=cfg,
        hub=hub,
        clock=clock,
        broker=broker,
        market=market,
        journal=journal,
        specs=lookup(spec),
    )


def quote(hub: Hub, clock: ManualClock, mid: float) -> None:
    book(hub, clock, bid=mid - 0.5, ask=mid + 0.5, size=10.0, exchange=EX, symbol=PERP)


def funding(hub: Hub, clock: ManualClock, rate: float, mark: float, next_time: float) -> None:
    now = clock.time()
    hub.publish(
        Funding(
            exchange=EX,
            symbol=PERP,
            ts=now,
            ts_recv=now,
            rate=rate,
            mark_price=mark,
            next_funding_time=next_time,
        )
    )


def pay_funding(hub: Hub, clock: ManualClock, rate: float, mark: float) -> None:
    """An announcement of ``rate`` for a funding time 60 s ahead, then the next one after it."""
    due = clock.time() + 60
    funding(hub, clock, rate, mark, due)
    clock.advance(61)
    funding(hub, clock, rate, mark, due + 8 * 3600)


@pytest.mark.asyncio
async def test_5x_long_pays_funding_and_takes_profit_at_the_hand_pnl() -> None:
    """Long 0.1 at 20000.5 (5x): SL/TP armed, 0.01% funding paid on 20000, TP at 21200.5 exit
    realizes 0.1 x (exit - entry) - funding - taker fees, in USDT, at the broker too."""
    engine, broker, hub, clock = build()
    assert isinstance(broker, FundingSource)
    quote(hub, clock, 20000)
    await engine.start()
    await engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="buy", amount="0.1", stop_loss="19400"
    )
    pos = engine.portfolio.positions[(EX, PERP)]
    assert pos.amount == D("0.1")
    assert (await broker.fetch_balances())["USDT"] == D(10_000) - D("2.00005")  # fee only
    prot = engine.protection.protections[(EX, PERP)]
    assert prot.stop is not None
    assert prot.take is not None
    view = pos.event(0.0, 0.0)
    assert view.leverage == D(5)
    assert view.initial_margin == D("0.1") * D("20000.5") / 5
    assert view.liquidation_price == D("20000.5") * (1 - D("0.2") + D("0.005"))
    pay_funding(hub, clock, 0.0001, 20000.0)
    assert await engine.funding.sync() == 1
    assert pos.contract is not None
    assert pos.contract.funding == D("-0.2")  # 0.1 x 20000 x 0.0001
    quote(hub, clock, float(prot.take) + 1)
    await wait_until(lambda: pos.amount == 0, timeout=5)
    trip = engine.portfolio.trades[-1]
    exit_fill = D(str(float(prot.take) + 0.5))
    entry_fee = D("0.1") * D("20000.5") * D("0.001")
    exit_fee = D("0.1") * exit_fill * D("0.001")
    hand = D("0.1") * (exit_fill - D("20000.5")) - D("0.2") - entry_fee - exit_fee
    assert trip.side == "long"
    assert trip.pnl == hand
    assert (await broker.fetch_balances())["USDT"] == D(10_000) + hand
    assert engine.portfolio.cash == D(10_000) + hand
    await engine.stop()


@pytest.mark.asyncio
async def test_5x_short_receives_funding_and_stops_out_at_the_hand_pnl() -> None:
    """Short 0.1 at 19999.5 (5x): funding at +0.01% is received; the stop at 20599.5 fires
    and the loss equals the hand computation."""
    engine, broker, hub, clock = build()
    quote(hub, clock, 20000)
    await engine.start()
    await engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="sell", amount="0.1", stop_loss="20600"
    )
    pos = engine.portfolio.positions[(EX, PERP)]
    assert pos.amount == D("-0.1")
    assert pos.event(0.0, 0.0).side == "short"
    assert await broker.fetch_positions() == {PERP: D("-0.1")}
    pay_funding(hub, clock, 0.0001, 20000.0)
    await engine.funding.sync()
    assert pos.contract is not None
    assert pos.contract.funding == D("0.2")
    quote(hub, clock, 20600.5)  # ask 20601 above the stop
    await wait_until(lambda: pos.amount == 0, timeout=5)
    trip = engine.portfolio.trades[-1]
    fees = (D("0.1") * D("19999.5") + D("0.1") * D(20601)) * D("0.001")
    hand = D("-0.1") * (D(20601) - D("19999.5")) + D("0.2") - fees
    assert trip.side == "short"
    assert trip.pnl == hand
    assert (await broker.fetch_balances())["USDT"] == D(10_000) + hand
    await engine.stop()


@pytest.mark.asyncio
async def test_risk_rejects_liquidation_inside_the_stop_through_the_engine() -> None:
    """At 20x a 10% stop lies beyond the liquidation price: the order is refused, none sent."""
    engine, broker, hub, clock = build(max_leverage=20.0, leverage=20.0)
    quote(hub, clock, 20000)
    await engine.start()
    with pytest.raises(RiskRejected, match="liquidation price"):
        await engine.place_manual_order(
            actor="t", exchange=EX, symbol=PERP, side="buy", amount="0.1", stop_loss="18000"
        )
    assert await broker.fetch_open_orders() == []
    assert await broker.fetch_positions() == {}
    await engine.stop()


def intent(side: str, amount: str, *, reduce_only: bool = False) -> OrderIntent:
    return OrderIntent(
        exchange=EX,
        symbol=PERP,
        ts=0.0,
        ts_recv=0.0,
        client_order_id=f"c-{side}-{amount}-{reduce_only}",
        side=side,  # type: ignore[arg-type]
        type="market",
        amount=D(amount),
        reduce_only=reduce_only,
    )


@pytest.mark.asyncio
async def test_paper_broker_refuses_missing_margin_and_non_reducing_reduce_only() -> None:
    """An entry needing more margin than is free, and a reduce-only order without a position,
    are refused by the paper venue with the amounts in the reason."""
    _engine, broker, hub, clock = build()
    quote(hub, clock, 20000)
    with pytest.raises(OrderRejectedError, match=r"insufficient margin: .* USDT needed at 5"):
        await broker.place_order(intent("buy", "2.6"))
    with pytest.raises(OrderRejectedError, match="would not reduce"):
        await broker.place_order(intent("sell", "0.1", reduce_only=True))
    order = await broker.place_order(intent("sell", "2"))  # a short needs margin, no coins
    assert order.filled == D(2)
    assert (await broker.market(PERP)).max_leverage >= D(5)


@pytest.mark.asyncio
async def test_paper_broker_needs_margin_for_the_opposite_side_of_a_flip() -> None:
    """A sell through a 2 BTC long into a 4 BTC short needs the short's margin (16000 USDT at
    5x, the long's margin is freed): refused on a 10000 USDT account. Before, an order that
    first reduced the position was never checked for margin, so the paper venue opened any
    short behind a long. A flip the margin covers still fills."""
    _engine, broker, hub, clock = build()
    quote(hub, clock, 20000)
    assert (await broker.place_order(intent("buy", "2"))).filled == D(2)
    with pytest.raises(OrderRejectedError, match=r"insufficient margin: 16\d*\.?\d* USDT"):
        await broker.place_order(intent("sell", "6"))
    assert await broker.fetch_positions() == {PERP: D(2)}
    order = await broker.place_order(intent("sell", "3"))  # short 1: 4000 margin
    assert order.filled == D(3)
    assert await broker.fetch_positions() == {PERP: D(-1)}


@pytest.mark.asyncio
async def test_signal_entry_on_a_contract_is_sized_in_contracts() -> None:
    """A buy signal's risk-sized base amount becomes contracts of the market's size: with
    0.01 BTC per contract, 100x the base amount, short side included."""
    small = replace(SPEC, contract_size=D("0.01"), lot_size=D(1), min_qty=D(1))
    engine, _broker, hub, clock = build(small, auto_trading_enabled=True, risk_percentage=0.1)
    quote(hub, clock, 20000)
    await engine.start()
    sig = Signal(
        exchange=EX,
        symbol=PERP,
        ts=clock.time(),
        ts_recv=clock.time(),
        side="sell",
        strength=0.9,
        source="test",
        reason="test",
        id="sig-perp",
    )
    record = await engine.handle_signal(sig)
    assert record is not None
    # 0.1% of 10000 = 10 risked over a 3% stop at 19999.5 -> 0.0166 BTC -> 1 contract
    assert record.intent.amount == D(1)
    assert engine.portfolio.positions[(EX, PERP)].amount == D(-1)
    await engine.stop()
