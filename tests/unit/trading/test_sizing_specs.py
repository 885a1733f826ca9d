"""Sizing through the instrument spec (issue 12): a signal's entry is the venue quantity worth
its notional (``qty_for_notional``: lots, contracts), its bracket on the spec's tick; orders
below the spec's minimum quantity or order value are refused by risk and the paper broker with
a reason naming the minimum; a tracked market without a spec is never sized on (logged once)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
import structlog

from cryptomon.clock import ManualClock
from cryptomon.errors import RiskRejected
from cryptomon.events import OrderIntent, OrderState, RiskEvent, Signal
from cryptomon.hub import Hub
from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.state import MarketState
from cryptomon.trading.brokers.base import OrderRejectedError
from cryptomon.trading.brokers.paper import PaperBroker
from cryptomon.trading.engine import TradingEngine
from cryptomon.trading.journal import MemoryJournal
from cryptomon.trading.sizing import notional_budget, spec_problem, venue_qty
from tests import stubs
from tests.unit.trading.helpers import EX, SYM, book, trading_config

D = Decimal
SPOT = InstrumentSpec(
    exchange=EX,
    symbol=SYM,
    kind=InstrumentKind.SPOT,
    base="BTC",
    quote="USDT",
    tick_size=D("0.5"),
    lot_size=D("0.001"),
    min_qty=D("0.001"),
    min_notional=D(10),
)
INVERSE = InstrumentSpec(
    exchange="okx",
    symbol="BTC-USD-PERP",
    kind=InstrumentKind.PERPETUAL,
    base="BTC",
    quote="USD",
    settle="BTC",
    contract_size=D(100),
    inverse=True,
    lot_size=D(1),
    min_qty=D(1),
)


# the ManualClock's start: a signal made now (older ones are not traded: max_signal_age_s)
T_SIGNAL = 1_700_000_000.0


def build(specs: list[InstrumentSpec], **kw: object) -> tuple[TradingEngine, PaperBroker, Hub]:
    hub, clock = Hub(), ManualClock(start=1_700_000_000.0)
    registry = InstrumentRegistry()
    registry.add(specs)
    market = MarketState(hub=hub, instruments=registry)
    cfg = trading_config(**kw)
    broker = PaperBroker(config=cfg.paper, market=market, hub=hub, clock=clock)
    engine = TradingEngine(
        config=cfg,
        hub=hub,
        clock=clock,
        broker=broker,
        market=market,
        journal=MemoryJournal(hub=hub),
    )
    book(hub, clock, bid=20000.0, ask=20001.0, size=5.0)
    return engine, broker, hub


def signal(n: int, symbol: str = SYM) -> Signal:
    return Signal(
        exchange=EX,
        symbol=symbol,
        ts=T_SIGNAL,
        ts_recv=T_SIGNAL,
        side="buy",
        strength=0.9,
        source="test",
        reason="test",
        id=f"sig-{n}",
    )


def test_venue_qty_and_spec_problem_name_the_limits() -> None:
    """Linear: notional / price rounded down to the lot; inverse: notional / contract size in
    whole contracts; a size off the lot, below min qty or min value gets its reason."""
    assert venue_qty(SPOT, D(1000), D(20000), D(0)) == D("0.05")
    assert venue_qty(SPOT, D("1010.9"), D(20000), D("0.0001")) == D("0.050")
    assert venue_qty(INVERSE, D(1050), D(20000), D(1)) == D(10)
    assert venue_qty(None, D(1000), D(20000), D("0.01")) == D("0.05")
    assert spec_problem(SPOT, D("0.0505"), D(20000)) == (
        "lot_size",
        "amount 0.0505 is not a whole number of lots (0.001) of BTC-USDT",
    )
    check, _reason = spec_problem(SPOT, D("0.0004"), D(20000)) or ("", "")
    assert check == "lot_size"  # 0.0004 is not a multiple of 0.001 either
    assert spec_problem(SPOT, D(0), D(20000)) == (
        "min_amount",
        "quantity 0 is below the minimum 0.001 of BTC-USDT",
    )
    assert spec_problem(SPOT, D("0.001"), D(9000)) == (
        "min_notional",
        "order value 9.000 USDT is below the minimum 10 USDT of BTC-USDT",
    )
    assert spec_problem(SPOT, D("0.001"), D(20000)) is None


def test_spec_problem_writes_tiny_numbers_without_an_exponent() -> None:
    """A dust order's reason reads 0.00000001, not 1E-8 (what a person types in the order
    form and reads back in the 409)."""
    assert spec_problem(SPOT, D("0.00000001"), D(20000)) == (
        "lot_size",
        "amount 0.00000001 is not a whole number of lots (0.001) of BTC-USDT",
    )
    assert spec_problem(SPOT, D("0.001"), D("0.0000001")) == (
        "min_notional",
        "order value 0.0000000001 USDT is below the minimum 10 USDT of BTC-USDT",
    )
    tiny_min = replace(SPOT, min_qty=D("1E-7"), lot_size=D("1E-9"))
    assert spec_problem(tiny_min, D("1E-8"), D(20000)) == (
        "min_amount",
        "quantity 0.00000001 is below the minimum 0.0000001 of BTC-USDT",
    )


def test_notional_budget_loses_the_risk_share_at_the_stop() -> None:
    """equity x risk% / stop%: 0.1% of 10000 over a 2% stop is 500 quote; capped; 0 without
    equity or stop distance."""
    budget = {"equity": D(10_000), "stop_pct": D(2), "risk_pct": D("0.1")}
    assert notional_budget(**budget, max_notional=D(1000)) == D(500)
    assert notional_budget(**budget, max_notional=D(400)) == D(400)
    assert notional_budget(**{**budget, "equity": D(0)}, max_notional=D(400)) == 0
    assert notional_budget(**{**budget, "stop_pct": D(0)}, max_notional=D(400)) == 0


@pytest.mark.asyncio
async def test_signal_entry_is_lot_rounded_and_bracketed_on_the_spec_tick() -> None:
    """1% of 10000 risked over a 3% stop at 20000.5, capped at 1000 USDT: 0.04999 BTC rounds
    down to 0.049 (the spec's lot, coarser than the paper venue's 0.0001); the stop and the
    take-profit are multiples of the spec's 0.5 tick."""
    engine, _broker, _hub = build([SPOT], risk_percentage=1.0)
    await engine.start()
    record = await engine.handle_signal(signal(1))
    assert record is not None
    intent = record.intent
    assert intent.amount == D("0.049")
    assert intent.stop_loss is not None
    assert intent.take_profit is not None
    assert intent.stop_loss % D("0.5") == 0
    assert intent.take_profit % D("0.5") == 0
    assert intent.stop_loss < D("20000.5") < intent.take_profit
    await engine.stop()


@pytest.mark.asyncio
async def test_entry_below_the_min_notional_is_refused_naming_the_minimum() -> None:
    """With 60 USDT of equity at risk the order is worth 0.002 x 20000.5 >= 10 USDT, but a
    spec minimum of 50 USDT refuses it: the RiskEvent names the value and the minimum."""
    big_min = InstrumentSpec(**{**_fields(SPOT), "min_notional": D(50)})
    engine, _broker, hub = build([big_min], risk_percentage=0.01)
    events: list[RiskEvent] = []
    hub.subscribe(RiskEvent, events.append)
    await engine.start()
    with pytest.raises(RiskRejected, match="below the minimum 50 USDT of BTC-USDT"):
        await engine.handle_signal(signal(2))
    rejected = [e for e in events if e.kind == "rejected"]
    assert rejected[-1].check == "min_notional"
    assert not engine.portfolio.open_positions()
    await engine.stop()


@pytest.mark.asyncio
async def test_unknown_spec_is_never_sized_and_logged_once() -> None:
    """A tracked market without a spec: two signals, no order, one warning, one RiskEvent."""
    engine, _broker, hub = build([INVERSE])  # the registry knows another market only
    events: list[RiskEvent] = []
    hub.subscribe(RiskEvent, events.append)
    await engine.start()
    with structlog.testing.capture_logs() as logs:
        assert await engine.handle_signal(signal(3)) is None
        assert await engine.handle_signal(signal(4)) is None
    warned = [entry for entry in logs if entry["event"] == "trading.unknown_instrument"]
    assert len(warned) == 1
    unknown = [e for e in events if e.check == "unknown_instrument"]
    assert len(unknown) == 1
    assert "no instrument spec for binance BTC-USDT" in unknown[0].reason
    assert not engine.book.all()
    await engine.stop()


@pytest.mark.asyncio
async def test_paper_broker_refuses_what_the_spec_refuses_but_lets_exits_through() -> None:
    """The paper venue, like a real one, refuses an entry off the lot or below the minimum
    value with the spec's reason; a reduce-only exit below the minimum is not held to it."""
    _engine, broker, _hub = build([InstrumentSpec(**{**_fields(SPOT), "min_notional": D(50)})])

    def intent(amount: str, *, reduce_only: bool = False, n: int = 0) -> OrderIntent:
        return OrderIntent(
            exchange=EX,
            symbol=SYM,
            ts=0.0,
            ts_recv=0.0,
            client_order_id=f"cm-{amount}-{n}",
            side="buy",
            type="market",
            amount=D(amount),
            reduce_only=reduce_only,
        )

    with pytest.raises(OrderRejectedError, match=r"not a whole number of lots \(0.001\)"):
        await broker.place_order(intent("0.0015"))
    below = r"order value 40.0020 USDT is below the minimum 50 USDT"
    with pytest.raises(OrderRejectedError, match=below):
        await broker.place_order(intent("0.002"))
    order = await broker.place_order(intent("0.002", reduce_only=True, n=2))
    assert order.state.value == "filled"


def _fields(obj: object) -> dict[str, object]:
    from dataclasses import fields

    return {f.name: getattr(obj, f.name) for f in fields(obj) if f.init}  # type: ignore[arg-type]


def test_risk_values_a_contract_order_through_its_spec() -> None:
    """1 contract of 0.0001 BTC at 20000 is worth 2 USDT, below a 5 USDT minimum: refused
    naming the value (quantity x price, 20000, would have passed); 3 contracts pass."""
    from cryptomon.trading.risk import Limits, MarketView, PortfolioView, check

    tiny = InstrumentSpec(
        exchange=EX,
        symbol="BTC-USDT-PERP",
        kind=InstrumentKind.PERPETUAL,
        base="BTC",
        quote="USDT",
        settle="USDT",
        contract_size=D("0.0001"),
        lot_size=D(1),
        min_notional=D(5),
    )
    limits = Limits(auto_trading_enabled=True, max_position_size=D(10_000))
    view = MarketView(mid=D(20000), spec=tiny)

    def order(qty: str) -> OrderIntent:
        return OrderIntent(
            exchange=EX,
            symbol="BTC-USDT-PERP",
            ts=0.0,
            ts_recv=0.0,
            client_order_id=f"cm-{qty}",
            side="buy",
            type="market",
            amount=D(qty),
            origin="manual",
        )

    decision = check(order("1"), PortfolioView(equity=D(10_000)), view, limits)
    assert (decision.approved, decision.check) == (False, "min_notional")
    assert decision.reason == "order value 2.0000 USDT is below the minimum 5 USDT of BTC-USDT-PERP"
    assert check(order("3"), PortfolioView(equity=D(10_000)), view, limits).approved
    off_lot = check(order("1.5"), PortfolioView(equity=D(10_000)), view, limits)
    assert off_lot.check == "lot_size"


def test_risk_exposure_of_inverse_contracts_is_their_face_value() -> None:
    """10 inverse contracts of 100 USD are a 1000 USD position (not 10 x the price): within a
    2000 USD cap; 25 are 2500 USD and refused naming that value."""
    from cryptomon.trading.risk import Limits, MarketView, PortfolioView, check

    limits = Limits(
        auto_trading_enabled=True,
        max_position_size=D(2000),
        max_symbol_exposure=D(2000),
        max_total_exposure=D(2000),
    )
    view = MarketView(mid=D(20000), spec=INVERSE)

    def order(qty: str) -> OrderIntent:
        return OrderIntent(
            exchange="okx",
            symbol="BTC-USD-PERP",
            ts=0.0,
            ts_recv=0.0,
            client_order_id=f"cm-inv-{qty}",
            side="buy",
            type="market",
            amount=D(qty),
            origin="manual",
        )

    assert check(order("10"), PortfolioView(equity=D(10_000)), view, limits).approved
    big = check(order("25"), PortfolioView(equity=D(10_000)), view, limits)
    assert (big.check, big.reason) == (
        "max_position_size",
        "position would be 2500 USD (max 2000 USD)",
    )


@pytest.mark.asyncio
async def test_paper_placement_looks_the_price_up_once_and_a_spotless_sell_needs_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A buy that the spec and the funds both price is priced once (the spec check's price
    is the funds check's); a sell checked against neither needs no market price at all."""
    _engine, broker, _hub = build([SPOT])
    looked: list[str] = []
    price_of = broker._price

    def counted(intent: OrderIntent) -> Decimal:
        looked.append(intent.client_order_id)
        return price_of(intent)

    monkeypatch.setattr(broker, "_price", counted)
    buy = intent_for("b1", "buy", D("0.01"))
    placed = await broker.place_order(buy)
    assert placed.state == OrderState.FILLED
    assert looked == ["b1"]
    sell = intent_for("s1", "sell", D("0.005"), reduce_only=True)
    placed = await broker.place_order(sell)
    assert placed.state == OrderState.FILLED
    assert looked == ["b1"]  # reduce-only: no spec minimums; a spot sell: no quote needed
    spot_short = intent_for("s2", "sell", D("0.01"))
    with pytest.raises(OrderRejectedError, match="insufficient balance"):
        await broker.place_order(spot_short)  # the spec check prices it, then funds refuse
    assert looked == ["b1", "s2"]


def intent_for(coid: str, side: str, amount: Decimal, *, reduce_only: bool = False) -> OrderIntent:
    """A market order of ``amount`` on the spec's market (the stubs' intent, no price)."""
    return stubs.intent(
        coid,
        exchange=EX,
        symbol=SYM,
        side=side,
        type="market",
        amount=amount,
        price=None,
        stop_loss=None,
        reduce_only=reduce_only,
    )
