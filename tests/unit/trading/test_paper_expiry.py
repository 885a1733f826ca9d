"""Expiry of a dated future in paper mode, on the ManualClock: at the expiry the paper venue
settles the position at the last price seen before it, cancels the market's resting orders
and refuses new orders; the engine adopts the settlement like a venue's own order."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from cryptomon.clock import ManualClock
from cryptomon.events import Fill, OrderIntent, OrderState, OrderUpdate
from cryptomon.hub import Hub
from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
from cryptomon.market.state import MarketState
from cryptomon.trading.brokers.base import OrderRejectedError
from cryptomon.trading.brokers.paper import PaperBroker
from cryptomon.trading.futures import terms_lookup
from tests.unit.trading.helpers import trade
from tests.unit.trading.test_futures_paper import EX, PERP, SPEC, build, config, quote
from tests.util import wait_until

D = Decimal
START = 1_700_000_000.0
EXPIRY = START + 3600
FUTURE = replace(SPEC, kind=InstrumentKind.FUTURE, expiry=EXPIRY)


def order(side: str, amount: str, coid: str) -> OrderIntent:
    return OrderIntent(
        exchange=EX,
        symbol=PERP,
        ts=0.0,
        ts_recv=0.0,
        client_order_id=coid,
        side=side,  # type: ignore[arg-type]
        type="market",
        amount=D(amount),
    )


@pytest.mark.asyncio
async def test_a_dated_future_settles_at_the_last_price_before_its_expiry() -> None:
    """Long 0.1 at 20000.5 (5x) with a resting buy at 19000. The last trade before the
    expiry is at 20100 (one at the expiry, 25000, is not counted). When the clock passes the
    expiry, the engine's poll lets the venue settle: a settlement fill of 0.1 at 20100
    stamped at the expiry, no fee, the resting order canceled, the position closed with PnL
    0.1 x (20100 - 20000.5) less the entry fee, the same at the broker; then an order on the
    expired market is refused with the reason."""
    engine, broker, hub, clock = build(FUTURE)
    seen: list[object] = []
    hub.subscribe(Fill, seen.append, name="test.fill")
    hub.subscribe(OrderUpdate, seen.append, name="test.update")
    quote(hub, clock, 20000)
    await engine.start()
    await engine.place_manual_order(actor="t", exchange=EX, symbol=PERP, side="buy", amount="0.1")
    placed = await engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="buy", amount="0.1", type="limit", price="19000"
    )
    rest = engine.book.get(placed["client_order_id"])
    assert rest is not None
    assert rest.state == OrderState.SUBMITTED
    pos = engine.portfolio.positions[(EX, PERP)]
    clock.set(EXPIRY - 10)
    trade(hub, clock, price=20100.0, amount=1.0, exchange=EX, symbol=PERP)
    clock.set(EXPIRY)
    trade(hub, clock, price=25000.0, amount=1.0, exchange=EX, symbol=PERP)
    await wait_until(lambda: pos.amount == 0, timeout=5)
    await wait_until(lambda: rest.state == OrderState.CANCELED, timeout=5)
    (fill,) = [f for f in seen if isinstance(f, Fill) and "settlement" in f.client_order_id]
    assert (fill.side, fill.amount, fill.price, fill.fee) == ("sell", D("0.1"), D(20100), D(0))
    assert fill.ts == EXPIRY
    await wait_until(
        lambda: any(
            isinstance(u, OrderUpdate)
            and u.client_order_id == fill.client_order_id
            and u.state == OrderState.FILLED
            and u.reason.startswith("settlement: ")
            for u in seen
        ),
        timeout=5,
    )
    hand = D("0.1") * (D(20100) - D("20000.5")) - D("0.1") * D("20000.5") * D("0.001")
    assert engine.portfolio.trades[-1].pnl == hand
    assert (await broker.fetch_balances())["USDT"] == D(10_000) + hand
    assert engine.portfolio.cash == D(10_000) + hand
    with pytest.raises(OrderRejectedError, match=r"expired at 2023-11-14T23:13:20Z"):
        await broker.place_order(order("buy", "0.1", "after"))
    await engine.stop()


@pytest.mark.asyncio
async def test_the_expiry_is_noticed_by_the_engine_poll_without_market_data() -> None:
    """No event after the expiry at all (the market stopped trading): moving the ManualClock
    past it wakes the engine's poll, whose broker reads settle the position at the last
    trade before the expiry, with the resting order canceled."""
    engine, broker, hub, clock = build(FUTURE)
    quote(hub, clock, 20000)
    await engine.start()
    await engine.place_manual_order(actor="t", exchange=EX, symbol=PERP, side="sell", amount="0.1")
    placed = await engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="sell", amount="0.1", type="limit", price="21000"
    )
    rest = engine.book.get(placed["client_order_id"])
    assert rest is not None
    pos = engine.portfolio.positions[(EX, PERP)]
    trade(hub, clock, price=19900.0, amount=1.0, exchange=EX, symbol=PERP)
    assert pos.amount == D("-0.1")
    await wait_until(lambda: clock.sleepers > 0, timeout=5)  # the poll waits on the clock
    clock.set(EXPIRY + 1)
    await wait_until(lambda: pos.amount == 0 and rest.state == OrderState.CANCELED, timeout=5)
    assert await broker.fetch_positions() == {}
    hand = D("-0.1") * (D(19900) - D("19999.5")) - D("0.1") * D("19999.5") * D("0.001")
    await wait_until(lambda: engine.portfolio.cash == D(10_000) + hand, timeout=5)
    await engine.stop()


@pytest.mark.asyncio
async def test_a_perpetual_never_expires() -> None:
    """Without an expiry nothing is settled, however far the clock moves."""
    _engine, broker, hub, clock = build()
    quote(hub, clock, 20000)
    await broker.place_order(order("buy", "0.1", "p"))
    clock.set(EXPIRY + 10 * 86400)
    trade(hub, clock, price=20000.0, amount=1.0, exchange=EX, symbol=PERP)
    assert await broker.fetch_positions() == {PERP: D("0.1")}
    assert (await broker.place_order(order("buy", "0.1", "q"))).filled == D("0.1")


@pytest.mark.asyncio
async def test_an_expiry_learned_after_the_first_order_still_applies() -> None:
    """The market's spec is unknown when its first order rests (the registry resolves it
    later): once known, the expiry still cancels the order and refuses new ones. Before, the
    missing expiry of the first look was kept for good."""
    known: dict[tuple[str, str], InstrumentSpec] = {}
    hub, clock = Hub(), ManualClock(start=START)
    cfg = config()
    broker = PaperBroker(
        config=cfg.paper,
        market=MarketState(hub=hub),
        hub=hub,
        clock=clock,
        allow_short=True,
        terms=terms_lookup(cfg, lambda ex, sym: known.get((ex, sym))),
    )
    quote(hub, clock, 20000)
    limit = replace(order("buy", "0.1", "early"), type="limit", price=D(19000))
    assert (await broker.place_order(limit)).state == OrderState.SUBMITTED
    known[(EX, PERP)] = FUTURE
    clock.set(EXPIRY)
    trade(hub, clock, price=20000.0, amount=1.0, exchange=EX, symbol=PERP)
    assert await broker.fetch_open_orders() == []
    with pytest.raises(OrderRejectedError, match="expired at"):
        await broker.place_order(order("buy", "0.1", "late"))
