"""Liquidation in paper mode: the hand-computed close of a position at its liquidation
estimate (linear and inverse, long and short), the paper venue closing a position whose mark
reaches it (isolated and cross at the estimate risk checks the stop against, a gap filled at
the estimate, the mark preferred to trades, resting orders canceled), and the engine adopting
the venue's forced close: intent, fill, position closed, balance and exit alert on the hub."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from cryptomon.clock import ManualClock
from cryptomon.events import Fill, Funding, OrderIntent, OrderState, OrderUpdate, PositionUpdate
from cryptomon.hub import Hub
from cryptomon.market.instruments import InstrumentKind, InstrumentSpec
from cryptomon.market.state import MarketState
from cryptomon.notify.alerts import AlertBuilder
from cryptomon.trading.brokers.base import BrokerOrder
from cryptomon.trading.brokers.paper import PaperBroker
from cryptomon.trading.futures import ContractTerms, liquidation_close, terms_lookup
from cryptomon.trading.risk_exposure import liquidation_check
from tests.unit.trading.helpers import book, trade
from tests.unit.trading.test_futures_paper import EX, PERP, SPEC, build, config, lookup, quote
from tests.util import wait_until

D = Decimal
LINEAR = InstrumentSpec(
    exchange="x",
    symbol="BTC-USDT-PERP",
    kind=InstrumentKind.PERPETUAL,
    base="BTC",
    quote="USDT",
    settle="USDT",
)
INVERSE = InstrumentSpec(
    exchange="x",
    symbol="BTC-USD-PERP",
    kind=InstrumentKind.PERPETUAL,
    base="BTC",
    quote="USD",
    inverse=True,
    contract_size=D(100),
)
TINY = D("1e-25")


def test_linear_long_and_short_lose_their_initial_margin_at_the_estimate() -> None:
    """0.1 BTC at 20000, 10x, mmr 0.5%: long liquidates at 20000 x (1 - 0.1 + 0.005) = 18100,
    PnL 0.1 x (18100 - 20000) = -190, fee the rest of the 200 margin: 10 (= 0.1 x 20000 x
    0.005). The short mirrors it at 21900."""
    assert liquidation_close(LINEAR, D("0.1"), D(20000), D(10), D("0.005")) == (
        D(18100),
        D(-190),
        D(10),
    )
    assert liquidation_close(LINEAR, D("-0.1"), D(20000), D(10), D("0.005")) == (
        D(21900),
        D(-190),
        D(10),
    )
    assert liquidation_close(LINEAR, D(0), D(20000), D(10), D("0.005")) is None


def test_inverse_long_and_short_lose_their_initial_margin_at_the_estimate() -> None:
    """10 contracts of 100 USD at 20000, 10x, mmr 0.5% (margin 0.005 BTC): the long
    liquidates at 20000 / 1.095, PnL 1000 x (1/20000 - 1.095/20000) = -0.00475 BTC, fee
    0.00025 BTC; the short at 20000 / 0.905 with the same loss and fee."""
    price, loss, fee = liquidation_close(INVERSE, D(10), D(20000), D(10), D("0.005")) or ()
    assert abs(price - D(20000) / D("1.095")) < TINY
    assert abs(loss - D("-0.00475")) < TINY
    assert abs(fee - D("0.00025")) < TINY
    price, loss, fee = liquidation_close(INVERSE, D(-10), D(20000), D(10), D("0.005")) or ()
    assert abs(price - D(20000) / D("0.905")) < TINY
    assert abs(loss - D("-0.00475")) < TINY
    assert abs(fee - D("0.00025")) < TINY


def paper(
    margin_mode: str = "isolated", spec: InstrumentSpec = SPEC
) -> tuple[
    PaperBroker, Hub, ManualClock, list[tuple[OrderIntent, BrokerOrder, str]], list[BrokerOrder]
]:
    hub, clock = Hub(), ManualClock(start=1_700_000_000.0)
    cfg = config(margin_mode=margin_mode)
    broker = PaperBroker(
        config=cfg.paper,
        market=MarketState(hub=hub),
        hub=hub,
        clock=clock,
        allow_short=True,
        terms=terms_lookup(cfg, lookup(spec)),
    )
    forced: list[tuple[OrderIntent, BrokerOrder, str]] = []
    updates: list[BrokerOrder] = []
    broker.set_forced_listener(lambda i, o, r: forced.append((i, o, r)))
    broker.set_listener(updates.append)
    return broker, hub, clock, forced, updates


def order(side: str, amount: str, **kw: object) -> OrderIntent:
    return OrderIntent(
        exchange=EX,
        symbol=PERP,
        ts=0.0,
        ts_recv=0.0,
        client_order_id=f"c-{side}-{amount}-{kw.get('price')}",
        side=side,  # type: ignore[arg-type]
        type=kw.get("type", "market"),  # type: ignore[arg-type]
        amount=D(amount),
        price=kw.get("price"),  # type: ignore[arg-type]
    )


def mark(hub: Hub, clock: ManualClock, price: float) -> None:
    now = clock.time()
    hub.publish(Funding(exchange=EX, symbol=PERP, ts=now, ts_recv=now, rate=0.0, mark_price=price))


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["isolated", "cross"])
async def test_a_gap_past_the_estimate_liquidates_at_the_estimate(mode: str) -> None:
    """Long 0.5 at 20000.5 with 5x: the estimate 20000.5 x 0.805 = 16100.4025 is the one
    risk checks the stop against (a stop below it is refused), in isolated and cross mode.
    A mark at 16200 leaves it open; a mark jumping to 15000 closes it at 16100.4025 (not
    15000), losing the 2000.05 margin: PnL -1950.04875 and fee 50.00125, plus the entry's
    taker fee 10.00025. The resting order of the market is canceled first."""
    broker, hub, clock, forced, updates = paper(mode)
    quote(hub, clock, 20000)
    assert (await broker.place_order(order("buy", "0.5"))).filled == D("0.5")
    resting = await broker.place_order(order("buy", "0.1", type="limit", price=D(17000)))
    assert resting.state == OrderState.SUBMITTED
    estimate = D("20000.5") * D("0.805")
    terms = broker.margin.terms(EX, PERP) if broker.margin else None
    assert isinstance(terms, ContractTerms)
    assert terms.margin_mode == mode
    assert terms.liquidation(True, D("20000.5")) == estimate
    below = replace(order("buy", "0.5"), stop_loss=estimate - 1)
    refused = liquidation_check(below, terms, D("20000.5"))
    assert refused is not None
    assert refused.check == "liquidation_inside_stop"
    mark(hub, clock, 16200.0)
    assert forced == []
    mark(hub, clock, 15000.0)
    assert len(forced) == 1
    intent, view, reason = forced[0]
    assert intent.origin == "liquidation"
    assert intent.side == "sell"
    assert intent.reduce_only
    assert view.state == OrderState.FILLED
    (fill,) = view.fills
    assert fill.price == estimate
    assert fill.amount == D("0.5")
    assert fill.fee == D("0.5") * D("20000.5") * D("0.005")
    assert reason.startswith("liquidation: mark 15000")
    assert await broker.fetch_positions() == {}
    assert await broker.fetch_open_orders() == []
    assert [u.state for u in updates] == [OrderState.CANCELED]
    margin = D("0.5") * D("20000.5") / 5
    entry_fee = D("0.5") * D("20000.5") * D("0.001")
    assert (await broker.fetch_balances())["USDT"] == D(10_000) - entry_fee - margin
    assert await broker.fetch_order(PERP, intent.client_order_id) == view


@pytest.mark.asyncio
async def test_a_short_is_liquidated_by_trades_when_the_venue_announces_no_mark() -> None:
    """Short 0.5 at 19999.5, 5x: estimate 19999.5 x 1.195 = 23899.4025. Without a mark the
    trade prices are watched; the first print at 24000 closes it at the estimate."""
    broker, hub, clock, forced, _updates = paper()
    quote(hub, clock, 20000)
    await broker.place_order(order("sell", "0.5"))
    trade(hub, clock, price=23000.0, amount=1.0, exchange=EX, symbol=PERP)
    assert forced == []
    trade(hub, clock, price=24000.0, amount=1.0, exchange=EX, symbol=PERP)
    (fill,) = forced[0][1].fills
    assert fill.side == "buy"
    assert fill.price == D("19999.5") * D("1.195")
    assert await broker.fetch_positions() == {}


@pytest.mark.asyncio
async def test_once_the_venue_announces_a_mark_trades_do_not_liquidate() -> None:
    """A wick in the trades below the estimate does not liquidate a market with a mark."""
    broker, hub, clock, forced, _updates = paper()
    quote(hub, clock, 20000)
    await broker.place_order(order("buy", "0.5"))
    mark(hub, clock, 20000.0)
    trade(hub, clock, price=15000.0, amount=1.0, exchange=EX, symbol=PERP)
    assert forced == []
    assert await broker.fetch_positions() == {PERP: D("0.5")}
    mark(hub, clock, 16000.0)
    assert len(forced) == 1


@pytest.mark.asyncio
async def test_the_engine_adopts_a_paper_liquidation_with_its_events() -> None:
    """Through the engine: a 5x long of 0.5 opened with a manual order; the mark falls past
    the estimate (the book, where the emulated stop looks, does not move): the venue's
    liquidation order, its fill, the closed position and the final update with its reason
    are published on the hub, the cash equals the broker's balance, the trade's PnL is the
    lost margin and both fees, and the update makes an exit alert."""
    engine, broker, hub, clock = build()
    seen: list[object] = []
    for kind in (OrderIntent, OrderUpdate, Fill, PositionUpdate):
        hub.subscribe(kind, seen.append, name=f"test.{kind.__name__}")
    quote(hub, clock, 20000)
    await engine.start()
    await engine.place_manual_order(actor="t", exchange=EX, symbol=PERP, side="buy", amount="0.5")
    pos = engine.portfolio.positions[(EX, PERP)]
    assert pos.amount == D("0.5")
    mark(hub, clock, 20000.0)
    mark(hub, clock, 15000.0)
    await wait_until(lambda: pos.amount == 0, timeout=5)
    estimate = D("20000.5") * D("0.805")
    intents = [e for e in seen if isinstance(e, OrderIntent) and e.origin == "liquidation"]
    assert len(intents) == 1
    coid = intents[0].client_order_id
    await wait_until(
        lambda: any(
            isinstance(e, OrderUpdate) and e.client_order_id == coid and e.state.is_terminal
            for e in seen
        ),
        timeout=5,
    )
    (done,) = [
        e
        for e in seen
        if isinstance(e, OrderUpdate) and e.client_order_id == coid and e.state.is_terminal
    ]
    assert done.state == OrderState.FILLED
    assert done.reason.startswith("liquidation:")
    fills = [e for e in seen if isinstance(e, Fill) and e.client_order_id == coid]
    assert [(f.price, f.amount) for f in fills] == [(estimate, D("0.5"))]
    closed = [e for e in seen if isinstance(e, PositionUpdate) and e.amount == 0]
    assert closed
    margin = D("0.5") * D("20000.5") / 5
    entry_fee = D("0.5") * D("20000.5") * D("0.001")
    balance = D(10_000) - entry_fee - margin
    assert (await broker.fetch_balances())["USDT"] == balance
    assert engine.portfolio.cash == balance
    assert engine.portfolio.trades[-1].pnl == -margin - entry_fee
    assert (EX, PERP) not in engine.protection.protections
    builder = AlertBuilder(api_base_url="http://x")
    builder.build(intents[0])
    alert = builder.build(done)
    assert alert is not None
    assert (alert.event_type, alert.kind) == ("exit", "liquidation")
    await engine.stop()


@pytest.mark.asyncio
async def test_an_inverse_short_in_cross_mode_loses_its_coin_margin() -> None:
    """10 inverse contracts of 100 USD short at 19999.5 with 5x in cross mode (settled in
    BTC): the estimate is 19999.5 / 0.805; a trade beyond it closes the short there and the
    BTC balance loses the entry fee and the whole initial margin, value / 5."""
    inverse = replace(
        SPEC, quote="USD", settle="BTC", inverse=True, contract_size=D(100), lot_size=D(1)
    )
    broker, hub, clock, forced, _updates = paper("cross", inverse)
    broker.balances["BTC"] = D(1)
    quote(hub, clock, 20000)
    assert (await broker.place_order(order("sell", "10"))).filled == D(10)
    trade(hub, clock, price=24000.0, amount=1.0, exchange=EX, symbol=PERP)
    assert forced == []
    trade(hub, clock, price=26000.0, amount=1.0, exchange=EX, symbol=PERP)
    (fill,) = forced[0][1].fills
    assert fill.price == D("19999.5") / D("0.805")
    assert fill.fee_currency == "BTC"
    value = D(10) * D(100) / D("19999.5")
    expected = D(1) - value * D("0.001") - value / 5
    assert abs((await broker.fetch_balances())["BTC"] - expected) < TINY


MID_SUB = "paper-broker.book-mid"


@pytest.mark.asyncio
async def test_without_marks_or_trades_the_book_mid_liquidates() -> None:
    """Long 0.5 at 20000.5, 5x (estimate 16100.4025) on a market that has shown no mark and
    no trade: a book mid of 16200 leaves it open, one of 16000 held for the confirmation
    (``mid_confirm_ms``, 1 s of event time) closes it at the estimate, named in the reason;
    the BookTop subscription exists only while that position does."""
    broker, hub, clock, forced, _updates = paper()
    assert MID_SUB not in hub.stats()["subscribers"]
    quote(hub, clock, 20000)
    await broker.place_order(order("buy", "0.5"))
    assert MID_SUB in hub.stats()["subscribers"]
    quote(hub, clock, 16200)
    assert forced == []
    quote(hub, clock, 16000)
    assert forced == []  # the first top across it is not enough
    clock.advance(1.0)
    quote(hub, clock, 16000)
    (fill,) = forced[0][1].fills
    assert fill.price == D("20000.5") * D("0.805")
    assert forced[0][2].startswith("liquidation: book mid 16000")
    assert MID_SUB not in hub.stats()["subscribers"]


@pytest.mark.asyncio
async def test_a_market_with_trades_or_a_mark_does_not_watch_the_book() -> None:
    """A position on a market with a trade seen before it opened adds no BookTop subscriber
    (no work per book update) and a mid past the estimate does not close it; a position
    watching the mid stops at the market's first trade, and at its first mark."""
    broker, hub, clock, forced, _updates = paper()
    trade(hub, clock, price=20000.0, amount=1.0, exchange=EX, symbol=PERP)
    quote(hub, clock, 20000)
    await broker.place_order(order("buy", "0.5"))
    assert MID_SUB not in hub.stats()["subscribers"]
    quote(hub, clock, 15000)
    assert forced == []
    assert await broker.fetch_positions() == {PERP: D("0.5")}

    broker, hub, clock, forced, _updates = paper()
    quote(hub, clock, 20000)
    await broker.place_order(order("buy", "0.5"))
    assert MID_SUB in hub.stats()["subscribers"]
    trade(hub, clock, price=20000.0, amount=1.0, exchange=EX, symbol=PERP)
    assert MID_SUB not in hub.stats()["subscribers"]
    quote(hub, clock, 15000)
    assert forced == []

    broker, hub, clock, forced, _updates = paper()
    quote(hub, clock, 20000)
    await broker.place_order(order("buy", "0.5"))
    mark(hub, clock, 20000.0)
    assert MID_SUB not in hub.stats()["subscribers"]
    quote(hub, clock, 15000)
    assert forced == []
    assert await broker.fetch_positions() == {PERP: D("0.5")}


@pytest.mark.asyncio
async def test_a_position_restored_after_a_restart_watches_the_book_mid() -> None:
    """Long 0.5 at 20000.5 restored after a restart, before any mark or trade: a book mid
    past its estimate (16000) held for 1 s of event time closes it at 16100.4025."""
    broker, hub, clock, forced, _updates = paper()
    broker.restore_positions([(EX, PERP, D("0.5"), D("20000.5"))])
    assert MID_SUB in hub.stats()["subscribers"]
    quote(hub, clock, 16000)
    clock.advance(1.0)
    quote(hub, clock, 16000)
    (fill,) = forced[0][1].fills
    assert fill.price == D("20000.5") * D("0.805")
    assert await broker.fetch_positions() == {}


@pytest.mark.asyncio
async def test_a_wide_book_mid_does_not_liquidate() -> None:
    """Long 0.5 at 20000.5, 5x (estimate 16100.4025), watching the book mid: a thin book
    whose bid fell away (bid 1000, ask 31000: mid 16000, spread 188% of it) for seconds is
    not a price, whatever its mid: each such top is skipped and counted
    (``mid_max_spread``, 2% by default), and the position stays open."""
    broker, hub, clock, forced, _updates = paper()
    quote(hub, clock, 20000)
    await broker.place_order(order("buy", "0.5"))
    for _ in range(5):
        book(hub, clock, bid=1000.0, ask=31000.0, size=1.0, exchange=EX, symbol=PERP)
        clock.advance(1.0)
    assert forced == []
    assert await broker.fetch_positions() == {PERP: D("0.5")}
    assert broker.stats()["mid_skipped_spread"] == 5
    assert broker.stats()["mid_unconfirmed"] == 0


@pytest.mark.asyncio
async def test_a_book_mid_must_stay_past_the_estimate_to_liquidate() -> None:
    """A mid past the estimate (16000) that comes back (20000) before 1 s of event time
    passed does not liquidate, and the next crossing starts the wait again: only a mid past
    it on every top for 1 s closes the position; the tops that waited are counted."""
    broker, hub, clock, forced, _updates = paper()
    quote(hub, clock, 20000)
    await broker.place_order(order("buy", "0.5"))
    quote(hub, clock, 16000)
    clock.advance(0.5)
    quote(hub, clock, 20000)
    clock.advance(0.6)
    quote(hub, clock, 16000)  # 1.1 s after the first crossing, but it came back between
    assert forced == []
    clock.advance(0.5)
    quote(hub, clock, 16050)
    assert forced == []
    assert broker.stats()["mid_unconfirmed"] == 3
    clock.advance(0.5)
    quote(hub, clock, 16000)
    assert len(forced) == 1
    assert forced[0][2].startswith("liquidation: book mid 16000")
    assert await broker.fetch_positions() == {}
