"""A live spot account whose coins someone sells by hand (the venue's website or app: an order
the engine did not send, Binance's ``web_…`` client id), through the real ccxt ``binance``
code on the simulator's spot trading endpoints. The reconciliation sees the base balance below
what the engine's position holds, finds that sale among the account's trades and adopts it as
a ``venue`` order: the position reduced or closed with the PnL of the sale's price and fee in
Decimal, the protection kept for what is left or disarmed, an exit alert, the engine
``active``. A balance that fell without such a sale (a withdrawal, a transfer) books nothing:
it stays a mismatch that says what to do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
import pytest_asyncio

from cryptomon.events import OrderState, OrderUpdate
from cryptomon.hub import Hub
from cryptomon.notify.alerts import AlertBuilder
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.matching import MatchingEngine
from cryptomon.sim.records import SimFill
from cryptomon.trading.engine import TradingEngine
from cryptomon.trading.orders import OrderRecord
from cryptomon.trading.risk import RiskState
from tests.usdm import manual_buy, publish_top, spot_live
from tests.util import wait_until

D = Decimal
KEY, SECRET = "spot-hand-key", "spot-hand-secret"
SYMBOL, VENUE_SYMBOL = "BTC-USDT", "BTCUSDT"
KEY_ = ("simulator", SYMBOL)


@dataclass
class Rig:
    sim: SimExchange
    venue: MatchingEngine
    engine: TradingEngine
    hub: Hub
    updates: list[OrderUpdate]


@pytest_asyncio.fixture
async def rig() -> AsyncIterator[Rig]:
    """A live spot engine (stop-loss and take-profit emulated on the book) on the spot
    simulator with 7,500 USDT; reconciliations are run by the tests."""
    async with spot_live(
        key=KEY, secret=SECRET, seed=13, symbol=SYMBOL, reconcile_interval_s=3600
    ) as live:
        updates: list[OrderUpdate] = []
        live.hub.subscribe(OrderUpdate, updates.append, name="test.updates")
        yield Rig(live.sim, live.endpoints.engine, live.engine, live.hub, updates)


async def buy(rig: Rig, amount: str = "0.01") -> OrderRecord:
    record = await rig.engine.executor.submit(manual_buy(f"spot-{amount}", SYMBOL, amount))
    await wait_until(lambda: record.state is OrderState.FILLED, message="entry filled")
    assert KEY_ in rig.engine.protection.protections
    return record


def sell_by_hand(rig: Rig, amount: str, client_id: str = "web_hand_sale") -> list[SimFill]:
    """Someone sells ``amount`` BTC of the account at market on the venue's website."""
    _, fills = rig.venue.place(
        symbol=VENUE_SYMBOL,
        side="SELL",
        type="MARKET",
        quantity=D(amount),
        client_order_id=client_id,
    )
    assert fills
    return fills


def venue_records(rig: Rig) -> list[OrderRecord]:
    return [r for r in rig.engine.book.all() if r.intent.origin == "venue"]


def realized(entry: OrderRecord, sale: list[SimFill]) -> Decimal:
    """The PnL of a sale at its fills' prices against the entry's average price (before
    fees, like a position's realized PnL)."""
    assert entry.avg_price is not None
    return sum((f.qty * (f.price - entry.avg_price) for f in sale), D(0))


def fees(sale: list[SimFill]) -> Decimal:
    return sum((f.commission for f in sale), D(0))


@pytest.mark.asyncio
async def test_a_partial_sale_by_hand_is_adopted_and_the_rest_stays_protected(rig: Rig) -> None:
    """0.004 of the 0.01 BTC bought is sold by hand: adopted as a ``venue`` order at the
    sale's price and fee, 0.006 left with its stop-loss armed, the cash the venue's USDT,
    no mismatch, ``active``."""
    engine = rig.engine
    entry = await buy(rig)
    stop = engine.protection.protections[KEY_].stop
    sale = sell_by_hand(rig, "0.004")
    assert await engine.reconciler.run(periodic=True) == []
    pos = engine.portfolio.positions[KEY_]
    assert pos.amount == D("0.006") == rig.venue.position("BTC")
    (record,) = venue_records(rig)
    assert (record.state, record.filled, record.intent.side) == (
        OrderState.FILLED,
        D("0.004"),
        "sell",
    )
    assert record.client_order_id == f"venue-{sale[0].order_id}"
    assert record.reason.startswith(
        f"venue order: the venue's order {sale[0].order_id} (web_hand_sale) sell 0.004 "
        f"{SYMBOL} at {sale[0].price}"
    )
    assert pos.realized_pnl == realized(entry, sale)
    assert record.fees == fees(sale)
    assert engine.protection.protections[KEY_].stop == stop
    assert engine.portfolio.cash == rig.venue.position("USDT")
    assert await engine.reconciler.run(periodic=True) == []
    assert engine.risk_state == RiskState.ACTIVE
    assert len(venue_records(rig)) == 1
    assert stop is not None
    bid = float(stop) - 1.0  # the stop-loss fires: it sells what is left, no more
    publish_top(
        rig.hub,
        bid,
        bid + 0.5,
        bid_size=1.0,
        ask_size=1.0,
        depth=(1.0, 1.0),
        levels=1,
        exchange="simulator",
        symbol=SYMBOL,
    )
    await wait_until(lambda: pos.amount == 0, message="the stop-loss sold the rest")
    exits = [r for r in engine.book.all() if r.intent.origin == "stop_loss"]
    assert [(r.state, r.filled) for r in exits] == [(OrderState.FILLED, D("0.006"))]
    assert rig.venue.rejected == 0
    assert rig.venue.position("BTC") == 0


@pytest.mark.asyncio
async def test_a_full_sale_by_hand_closes_the_position_with_an_exit_alert(rig: Rig) -> None:
    """All 0.01 BTC sold by hand: the position closes with the trade's PnL from the sale,
    the protection is disarmed, the exit is alerted like a close by hand on a contract."""
    engine = rig.engine
    entry = await buy(rig)
    sale = sell_by_hand(rig, "0.01")
    assert await engine.reconciler.run(periodic=True) == []
    assert engine.portfolio.positions[KEY_].amount == 0
    assert KEY_ not in engine.protection.protections
    assert engine.portfolio.trades[-1].pnl == realized(entry, sale) - entry.fees - fees(sale)
    assert engine.portfolio.cash == rig.venue.position("USDT")
    assert engine.risk_state == RiskState.ACTIVE
    (record,) = venue_records(rig)
    await wait_until(
        lambda: any(
            u.client_order_id == record.client_order_id and u.state.is_terminal for u in rig.updates
        ),
        timeout=10,
        message="the venue order's final update",
    )
    (done,) = [
        u
        for u in rig.updates
        if u.client_order_id == record.client_order_id and u.state.is_terminal
    ]
    builder = AlertBuilder(api_base_url="http://x")
    builder.build(record.intent)
    alert = builder.build(done)
    assert alert is not None
    assert (alert.event_type, alert.kind) == ("exit", "venue_order")
    assert alert.fields["reason"].startswith("venue order: the venue's order ")


@pytest.mark.asyncio
async def test_a_balance_drop_without_a_sale_books_nothing_and_says_what_to_do(rig: Rig) -> None:
    """0.004 BTC leaves the account without a trade (a withdrawal): no sale is adopted, no
    PnL booked; two periodic runs in a row see the shortfall and the engine goes to
    ``reducing`` with a mismatch that names it and what to do; the coins put back, a
    reconciliation finds nothing and trading can resume."""
    engine = rig.engine
    await buy(rig)
    rig.venue.balance("BTC").free -= D("0.004")
    first = await engine.reconciler.run(periodic=True)
    (mismatch,) = await engine.reconciler.run(periodic=True)
    assert first in ([], [mismatch])
    assert mismatch == (
        "position needs 0.01 BTC but the venue holds 0.006: the venue's trades since the "
        "position opened show no sale cryptomon did not send for the other 0.004 BTC (a "
        "withdrawal or a transfer out of the account?), so cryptomon booked no sale and no "
        "PnL for them; move 0.004 BTC back to the account, then resume trading"
    )
    assert engine.risk_state == RiskState.REDUCING
    pos = engine.portfolio.positions[KEY_]
    assert (pos.amount, pos.realized_pnl) == (D("0.01"), D(0))
    assert venue_records(rig) == []
    assert engine.portfolio.trades == []
    rig.venue.deposit("BTC", D("0.004"))
    assert await engine.reconciler.run(periodic=True) == []
    assert await engine.reconciler.run() == []
    assert engine.risk_state == RiskState.ACTIVE


@pytest.mark.asyncio
async def test_a_buy_fee_paid_in_the_coin_is_no_sale(rig: Rig) -> None:
    """The venue takes a buy's fee in the coin bought (Binance without BNB): the position
    holds the amount less that fee, the balance agrees, nothing is adopted; a sale by hand
    afterwards is adopted for what it sold."""
    rig.venue.buy_fee_in_base = True
    engine = rig.engine
    await buy(rig)
    held = D("0.01") - D("0.00001")
    assert engine.portfolio.positions[KEY_].amount == held == rig.venue.position("BTC")
    assert await engine.reconciler.run(periodic=True) == []
    assert await engine.reconciler.run(periodic=True) == []
    assert venue_records(rig) == []
    sell_by_hand(rig, "0.004")
    assert await engine.reconciler.run(periodic=True) == []
    assert engine.portfolio.positions[KEY_].amount == held - D("0.004")
    assert engine.risk_state == RiskState.ACTIVE


@pytest.mark.asyncio
async def test_a_sale_of_more_than_the_balance_lost_is_adopted_for_what_it_lost(rig: Rig) -> None:
    """0.005 BTC deposited beside the position's 0.01, then 0.008 sold by hand: the balance
    is 0.007, 0.003 below the position; only 0.003 of the sale is the position's (the rest
    sold the deposited coins): adopted with the fee pro rata, the position 0.007."""
    engine = rig.engine
    await buy(rig)
    rig.venue.deposit("BTC", D("0.005"))
    sale = sell_by_hand(rig, "0.008")
    assert await engine.reconciler.run(periodic=True) == []
    assert engine.portfolio.positions[KEY_].amount == D("0.007") == rig.venue.position("BTC")
    (record,) = venue_records(rig)
    assert record.filled == D("0.003")
    assert record.fees == fees(sale) * 3 / 8
    assert "0.003 of the order's 0.008 adopted: the balance fell by no more than that" in (
        record.reason
    )
    assert await engine.reconciler.run(periodic=True) == []
    assert engine.risk_state == RiskState.ACTIVE
