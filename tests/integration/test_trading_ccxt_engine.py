"""The order engine with the ccxt broker on the simulator: placements whose outcome is
unknown (dropped response, 429, 5xx, timeout) are settled by lookup, never sent twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from cryptomon.clock import LiveClock, ManualClock
from cryptomon.config import TradingConfig
from cryptomon.errors import RiskRejected
from cryptomon.events import BookTop, OrderIntent, OrderState, RiskEvent
from cryptomon.hub import Hub
from cryptomon.market.state import MarketState
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.trading import API, Fault
from cryptomon.sim.venue import install
from cryptomon.trading.brokers.ccxt import CcxtBroker
from cryptomon.trading.engine import TradingEngine
from cryptomon.trading.journal import MemoryJournal
from cryptomon.trading.orders import OrderRecord, client_order_id
from cryptomon.trading.risk import RiskState
from tests.usdm import SpotLive, manual_buy, sim_top, spot_live
from tests.util import wait_until

KEY, SECRET = "engine-key", "engine-secret"
SYMBOL = "BTC-USDT"


Rig = SpotLive


def publish_top(rig: Rig) -> None:
    sim_top(rig.hub, rig.sim, SYMBOL)


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    async with spot_live(
        key=KEY,
        secret=SECRET,
        seed=11,
        symbol=SYMBOL,
        live={"recv_window_ms": 2500},
        order_timeout_s=0.5,
        unknown_lookups=3,
    ) as r:
        yield r


def buy(key: str, amount: str = "0.01") -> OrderIntent:
    return manual_buy(key, SYMBOL, amount)


def assert_sent_once(rig: Rig, record: OrderRecord) -> None:
    engine = rig.endpoints.engine
    assert rig.endpoints.order_posts == 1
    assert engine.duplicate_client_order_ids == 0
    assert engine.client_order_ids() in ([], [record.client_order_id])


@pytest.mark.asyncio
async def test_dropped_response_is_settled_by_lookup_into_one_filled_order(rig: Rig) -> None:
    """Accepted but the response was lost: unknown, then filled by lookup; one order."""
    rig.endpoints.faults.add(Fault(kind="drop", after_accept=True))
    record = await rig.engine.executor.submit(buy("drop"))
    assert record.state is OrderState.UNKNOWN
    await wait_until(lambda: record.state is OrderState.FILLED, message="settled fill")
    assert_sent_once(rig, record)
    assert rig.endpoints.engine.client_order_ids() == [record.client_order_id]
    assert rig.engine.portfolio.amount("simulator", SYMBOL) == Decimal("0.01")
    assert record.filled == Decimal("0.01")


@pytest.mark.asyncio
async def test_429_without_acceptance_settles_as_rejected_without_resending(rig: Rig) -> None:
    """A 429 the venue did not act on: unknown, then rejected after the lookups; no resend."""
    rig.endpoints.faults.add(Fault(kind="status", status=429, retry_after_s=0, after_accept=False))
    record = await rig.engine.executor.submit(buy("429"))
    assert record.state is OrderState.UNKNOWN
    await wait_until(lambda: record.state is OrderState.REJECTED, message="settled reject")
    assert_sent_once(rig, record)
    assert rig.endpoints.engine.orders == {}
    assert rig.engine.portfolio.amount("simulator", SYMBOL) == 0


@pytest.mark.asyncio
async def test_429_after_acceptance_settles_into_the_accepted_order(rig: Rig) -> None:
    """A 429 answered although the order went through: the lookup finds it; one order."""
    rig.endpoints.faults.add(Fault(kind="status", status=429, retry_after_s=0))
    record = await rig.engine.executor.submit(buy("429b"))
    await wait_until(lambda: record.state is OrderState.FILLED, message="settled fill")
    assert_sent_once(rig, record)
    assert rig.endpoints.engine.client_order_ids() == [record.client_order_id]


@pytest.mark.asyncio
async def test_5xx_after_acceptance_settles_into_the_accepted_order(rig: Rig) -> None:
    """A 503 after acceptance: unknown, then filled by lookup; one order."""
    rig.endpoints.faults.add(Fault(kind="status", status=503))
    record = await rig.engine.executor.submit(buy("503"))
    assert record.state is OrderState.UNKNOWN
    await wait_until(lambda: record.state is OrderState.FILLED, message="settled fill")
    assert_sent_once(rig, record)


@pytest.mark.asyncio
async def test_timeout_then_late_acceptance_is_found_not_resent(rig: Rig) -> None:
    """The venue holds the request past the engine's timeout and accepts it later: the
    engine's lookups find the late order; it is never sent a second time."""
    fault = rig.endpoints.faults.add(Fault(kind="hold", after_accept=False))
    record = await rig.engine.executor.submit(buy("late"))
    assert record.state is OrderState.UNKNOWN
    assert fault.reached.is_set()
    assert rig.endpoints.engine.orders == {}
    fault.release()
    await wait_until(lambda: record.state is OrderState.FILLED, message="late fill found")
    assert_sent_once(rig, record)
    assert rig.endpoints.engine.client_order_ids() == [record.client_order_id]


@pytest.mark.asyncio
async def test_held_request_released_after_more_misses_than_unknown_lookups_is_found(
    rig: Rig,
) -> None:
    """Missing at more lookups than ``unknown_lookups`` but still inside its recv window: not
    concluded absent; released, the venue accepts it late and the engine finds the fill."""
    fault = rig.endpoints.faults.add(Fault(kind="hold", after_accept=False))
    record = await rig.engine.executor.submit(buy("held"))
    assert record.state is OrderState.UNKNOWN
    lookups = rig.endpoints.requests

    def missed(n: int) -> bool:
        return lookups[("GET", f"{API}/order")] >= n

    await wait_until(lambda: missed(4), message="four lookups")  # unknown_lookups is 3
    assert record.state is OrderState.UNKNOWN
    assert rig.endpoints.engine.orders == {}
    fault.release()
    await wait_until(lambda: record.state is OrderState.FILLED, message="late fill found")
    assert_sent_once(rig, record)
    assert rig.engine.portfolio.amount("simulator", SYMBOL) == Decimal("0.01")


@pytest.mark.asyncio
async def test_buy_fee_in_base_entry_and_full_exit_leave_only_dust(rig: Rig) -> None:
    """Binance-style base-currency buy fee: the position is amount - fee, the protective exit
    sells what is held (no oversell refusal), the sub-lot rest is dust; books agree."""
    venue = rig.endpoints.engine
    venue.buy_fee_in_base = True
    record = await rig.engine.executor.submit(buy("basefee", "0.01234"))
    await wait_until(lambda: record.state is OrderState.FILLED, message="entry filled")
    key = ("simulator", SYMBOL)
    held = rig.engine.portfolio.amount(*key)
    assert held == Decimal("0.01234") - Decimal("0.00001234")
    assert venue.position("BTC") == held
    prot = rig.engine.protection.protections[key]
    assert prot.take is not None
    bid = float(prot.take) + 1.0
    now = time.time()
    rig.hub.publish(
        BookTop(
            exchange="simulator",
            symbol=SYMBOL,
            ts=now,
            ts_recv=now,
            bid=bid,
            bid_size=1.0,
            ask=bid + 0.5,
            ask_size=1.0,
            spread=0.5,
            spread_bps=0.5 / bid * 1e4,
            bid_depth=1.0,
            ask_depth=1.0,
            imbalance=0.0,
            levels=1,
        )
    )
    await wait_until(lambda: rig.engine.portfolio.amount(*key) == 0, message="position closed")
    exits = [r for r in rig.engine.book.all() if r.intent.origin == "take_profit"]
    assert [r.state for r in exits] == [OrderState.FILLED]
    assert exits[0].filled == Decimal("0.01232")
    assert venue.rejected == 0
    assert rig.engine.portfolio.dust == {"BTC": Decimal("0.00000766")}
    assert venue.position("BTC") == Decimal("0.00000766")
    assert rig.engine.portfolio.cash == venue.position("USDT")
    assert key not in rig.engine.protection.protections


@pytest.mark.asyncio
async def test_live_equity_comes_from_the_venue_balances(rig: Rig) -> None:
    """Cash and equity are the venue's quote balance (not the paper starting balance), at
    start and again after a deposit on the periodic reconciliation."""
    engine = rig.engine
    assert engine.config.paper.starting_balance == 10_000
    assert engine.portfolio.cash == Decimal(7_500)
    assert engine.portfolio.equity == Decimal(7_500)
    rig.endpoints.engine.deposit("USDT", Decimal(1_000))
    await engine.reconciler.run(periodic=True)
    assert engine.portfolio.equity == Decimal(8_500)
    record = await engine.executor.submit(buy("equity"))
    await wait_until(lambda: record.state is OrderState.FILLED, message="filled")
    await engine.reconciler.run(periodic=True)
    assert engine.portfolio.cash == rig.endpoints.engine.position("USDT")


class PerSymbolBroker(CcxtBroker):
    """The ccxt broker over an exchange class whose ``features`` data says open orders need
    a symbol (as for exchanges without an all-symbols openOrders endpoint)."""

    def _build(self) -> Any:
        ex = super()._build()
        ex.features["spot"]["fetchOpenOrders"]["symbolRequired"] = True
        return ex


@pytest.mark.asyncio
async def test_reconciliation_fetches_open_orders_per_symbol_when_the_venue_needs_it() -> None:
    """A venue refusing openOrders without a symbol: reconciliation asks per configured
    symbol, finds the orphan there and cancels it; the engine starts."""
    sim = SimExchange(MarketModel([SYMBOL], seed=11), clock=ManualClock(time.time()))
    endpoints = install(sim, api_key=KEY, api_secret=SECRET, balances={"USDT": Decimal(5_000)})
    endpoints.open_orders_need_symbol = True
    await sim.start(run=False)
    bids, _ = sim.market.book(SYMBOL)
    orphan = client_order_id("orphan", "entry", "manual")
    endpoints.engine.place(
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        quantity=Decimal("0.01"),
        price=Decimal(f"{bids[0][0] * 0.9:.2f}"),
        client_order_id=orphan,
    )
    cfg = TradingConfig.model_validate(
        {
            "mode": "live",
            "exchange": "simulator",
            "symbols": [SYMBOL],
            "poll_interval_s": 0.05,
            "live": {"exchange": "binance", "api_key": KEY, "secret": SECRET, "url": sim.rest_url},
        }
    )
    hub = Hub()
    await hub.start()
    clock = LiveClock()
    broker = PerSymbolBroker(cfg.live, clock=clock, exchange_name="simulator")
    engine = TradingEngine(
        config=cfg,
        hub=hub,
        clock=clock,
        broker=broker,
        market=MarketState(hub=hub),
        journal=MemoryJournal(hub=hub),
    )
    try:
        await engine.start()
        assert broker.open_orders_need_symbol()
        assert engine.reconciled
        assert endpoints.engine.open_orders() == []
        assert f"orphan order {orphan}" in engine.state_reason
        assert engine.risk_state == RiskState.REDUCING
    finally:
        await engine.stop()
        await hub.stop(1.0)
        await sim.stop()


def resting_buy(rig: Rig, key: str) -> OrderIntent:
    """A limit buy 2 % under the mid (inside the price band): it rests at the venue."""
    bids, _ = rig.sim.market.book(SYMBOL)
    price = (Decimal(str(bids[0][0])) * Decimal("0.98")).quantize(Decimal("0.01"))
    intent = buy(key)
    return OrderIntent(
        **{
            name: getattr(intent, name)
            for name in OrderIntent.__dataclass_fields__
            if name not in ("type", "price")
        },
        type="limit",
        price=price,
    )


@pytest.mark.asyncio
async def test_kill_switch_while_a_placement_is_in_flight_cancels_it_once_it_lands(
    rig: Rig,
) -> None:
    """The kill switch pressed while a resting order's placement is still on its way: the
    cancel cannot find it yet, but once the venue has it, it is canceled there; before, the
    engine marked it canceled ("not found at the venue") while it stayed open at the venue,
    able to fill after the halt, and no later check looked at it again (it was in the book)."""
    fault = rig.endpoints.faults.add(Fault(kind="hold", after_accept=False))
    task = asyncio.ensure_future(rig.engine.executor.submit(resting_buy(rig, "inflight")))
    await wait_until(fault.reached.is_set, message="placement held at the venue")
    record = rig.engine.book.open()[0]
    await rig.engine.kill_switch("t")
    assert rig.engine.risk_state == RiskState.HALTED
    fault.release()
    await task
    venue = rig.endpoints.engine
    await wait_until(lambda: venue.client_order_ids() == [record.client_order_id], message="landed")
    (order,) = venue.orders.values()
    await wait_until(lambda: order.status == "CANCELED", message="canceled at the venue")
    await wait_until(lambda: record.state is OrderState.CANCELED, message="canceled here")
    assert not venue.open_orders()
    assert rig.endpoints.order_posts == 1
    assert rig.engine.portfolio.amount("simulator", SYMBOL) == 0


@pytest.mark.asyncio
async def test_kill_switch_flatten_closes_an_entry_that_was_in_flight(rig: Rig) -> None:
    """Kill switch with flatten pressed while a market entry is on its way to the venue: the
    flatten waits for that placement's answer and closes the position it opened; before, it
    listed the positions at once (none yet) and the entry's fill left the account long after
    the kill switch had reported everything flat."""
    fault = rig.endpoints.faults.add(Fault(kind="hold", after_accept=False))
    task = asyncio.ensure_future(rig.engine.executor.submit(buy("inflight-entry")))
    await wait_until(fault.reached.is_set, message="placement held at the venue")
    kill = asyncio.ensure_future(rig.engine.kill_switch("t", flatten=True))
    await wait_until(lambda: rig.engine.risk_state == RiskState.HALTED, message="halted")
    fault.release()
    entry = await task
    result = await kill
    assert entry.state is OrderState.FILLED
    assert [f["symbol"] for f in result["flatten"]] == [SYMBOL]
    key = ("simulator", SYMBOL)
    await wait_until(lambda: rig.engine.portfolio.amount(*key) == 0, message="flat")
    assert rig.endpoints.engine.position("BTC") == 0


@pytest.mark.asyncio
async def test_a_cancel_the_venue_failed_to_answer_is_sent_again(rig: Rig) -> None:
    """A cancel answered with a 503 before the venue acted on it leaves the order resting; the
    engine asks again on its next poll until the venue has canceled it. Before, the order sat
    in ``cancel_pending`` for good while it rested (and could fill) at the venue: polling saw
    it open and waited for a cancel nobody would send again."""
    record = await rig.engine.executor.submit(resting_buy(rig, "cancel-503"))
    assert record.state is OrderState.SUBMITTED
    fault = rig.endpoints.faults.add(
        Fault(kind="status", status=503, method="DELETE", path=f"{API}/order", after_accept=False)
    )
    await rig.engine.cancel_order(record.client_order_id, "t")
    assert fault.reached.is_set()
    assert record.state is OrderState.CANCEL_PENDING
    venue = rig.endpoints.engine
    (order,) = venue.orders.values()
    await wait_until(lambda: order.status == "CANCELED", message="canceled at the venue")
    await wait_until(lambda: record.state is OrderState.CANCELED, message="canceled here")
    assert not venue.open_orders()


@pytest.mark.asyncio
async def test_kill_switch_flattens_even_when_a_cancel_fails(rig: Rig) -> None:
    """One cancel the venue refuses, and whose lookup then fails too, does not stop the kill
    switch: the order is reported under ``cancel_pending`` (not ``canceled``: the venue has
    not confirmed it), the flatten still closes the position (and the order is canceled on a
    later poll). Before, the lookup's error escaped the
    kill switch: no flatten, and the caller got an error instead of a halted, flat account."""
    entry = await rig.engine.executor.submit(buy("held-long", "0.005"))
    assert entry.state is OrderState.FILLED
    resting = await rig.engine.executor.submit(resting_buy(rig, "cancel-fails"))
    assert resting.state is OrderState.SUBMITTED
    rig.endpoints.faults.add(
        Fault(kind="status", status=422, method="DELETE", path=f"{API}/order", after_accept=False)
    )
    rig.endpoints.faults.add(
        Fault(kind="status", status=503, method="GET", path=f"{API}/order", times=10_000)
    )
    out = await rig.engine.kill_switch("t", flatten=True)
    rig.endpoints.faults.clear()
    assert rig.engine.risk_state == RiskState.HALTED
    assert [f["state"] for f in out["flatten"]] == ["filled"]
    assert rig.engine.portfolio.amount("simulator", SYMBOL) == 0
    assert out["canceled"] == []  # not claimed: the venue has not confirmed it
    assert out["cancel_pending"] == [resting.client_order_id]
    (order,) = [o for o in rig.endpoints.engine.orders.values() if o.type == "LIMIT"]
    await wait_until(lambda: order.status == "CANCELED", message="canceled on a later poll")


@pytest.mark.asyncio
async def test_kill_switch_closes_an_entry_whose_placement_timed_out_and_filled_later(
    rig: Rig,
) -> None:
    """Kill switch with flatten pressed while a market entry's placement is held at the venue
    past the engine's timeout: the flatten finds nothing to close (the entry is ``unknown``),
    its cancel finds no order yet, and the venue then accepts and fills it. The lookup by
    client order id finds the fill, which is reported (a ``kill_switch`` risk event naming
    the order) and closed at once by a reduce-only exit: the account ends flat. Before, the
    late fill left a position open while trading was halted."""
    events: list[RiskEvent] = []
    rig.hub.subscribe(RiskEvent, events.append, name="test.risk")
    fault = rig.endpoints.faults.add(Fault(kind="hold", after_accept=False))
    task = asyncio.ensure_future(rig.engine.executor.submit(buy("timed-out-entry")))
    await wait_until(fault.reached.is_set, message="placement held at the venue")
    result = await rig.engine.kill_switch("t", flatten=True)
    entry = await task
    assert entry.state is OrderState.UNKNOWN
    assert result["flatten"] == []
    assert result["cancel_pending"] == [entry.client_order_id]
    fault.release()
    await wait_until(lambda: entry.state is OrderState.FILLED, message="late fill found")
    key = ("simulator", SYMBOL)
    await wait_until(lambda: rig.engine.portfolio.amount(*key) == 0, message="closed here")
    assert rig.endpoints.engine.position("BTC") == 0
    assert rig.engine.risk_state == RiskState.HALTED
    (late,) = [e for e in events if e.client_order_id == entry.client_order_id]
    assert late.kind == "kill_switch"
    assert "filled after trading was halted" in late.reason
    exits = [r for r in rig.engine.book.all() if r.intent.reduce_only]
    assert [(r.intent.side, r.intent.amount, r.state) for r in exits] == [
        ("sell", Decimal("0.01"), OrderState.FILLED)
    ]


@pytest.mark.asyncio
async def test_a_partial_fill_the_cancel_reports_is_booked_though_the_trades_failed(
    rig: Rig,
) -> None:
    """A limit buy takes 0.004 of its 0.01 on arrival and rests; its answer is lost and the
    cancel that follows reports 0.004 filled, while the venue's trade list (myTrades) fails.
    The order is not closed without that fill: once the trades can be read it ends canceled
    with 0.004 booked, as held at the venue. Before, it was closed canceled with nothing
    booked and never looked at again: 0.004 BTC held that the engine did not know of."""
    venue = rig.endpoints.engine
    venue.paused = True  # no fills but the one on arrival
    _, asks = rig.sim.market.book(SYMBOL)
    ask, size = asks[0]
    venue.books.take("BTCUSDT", "buy", size - 0.004)  # 0.004 left at the best ask
    publish_top(rig)
    intent = resting_buy(rig, "partial-cancel")
    intent = OrderIntent(
        **{
            name: getattr(intent, name)
            for name in OrderIntent.__dataclass_fields__
            if name != "price"
        },
        price=Decimal(str(ask)),
    )
    trades = rig.endpoints.faults.add(
        Fault(kind="status", status=503, method="GET", path=f"{API}/myTrades", times=10_000)
    )
    rig.endpoints.faults.add(Fault(kind="drop", after_accept=True))
    record = await rig.engine.executor.submit(intent)
    assert record.state is OrderState.UNKNOWN
    (order,) = venue.orders.values()
    assert order.executed_qty == Decimal("0.004")
    await rig.engine.cancel_order(record.client_order_id, "t")
    assert order.status == "CANCELED"
    await wait_until(lambda: trades.hits >= 2, message="the trade list asked and failing")
    assert record.is_open  # not closed without its fill
    rig.endpoints.faults.clear()
    await wait_until(lambda: record.state is OrderState.CANCELED, message="settled")
    assert record.filled == Decimal("0.004")
    assert rig.engine.portfolio.amount("simulator", SYMBOL) == Decimal("0.004")
    assert venue.position("BTC") == Decimal("0.004")


@pytest.mark.asyncio
async def test_an_order_for_a_market_the_venue_does_not_list_says_so(rig: Rig) -> None:
    """A manual order for a symbol the venue does not list is refused before anything is
    sent, its reason naming the market once (not an empty ``order  rejected:`` inside)."""
    with pytest.raises(RiskRejected) as refused:
        await rig.engine.executor.submit(manual_buy("no-such", "ETH-USDT", "0.1"))
    assert str(refused.value) == "market info unavailable: ETH-USDT is not a market of binance"
    assert rig.endpoints.order_posts == 0
