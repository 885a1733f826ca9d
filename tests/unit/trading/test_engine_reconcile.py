"""Startup reconciliation: the engine starts in ``reducing``, settles what the journal left
open, cancels orphans, checks balances, and only then allows new orders."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal

import pytest

from cryptomon.clock import ManualClock
from cryptomon.errors import RiskRejected, TemporaryError
from cryptomon.events import Fill, OrderIntent, OrderState, OrderUpdate, RiskEvent
from cryptomon.trading.brokers.base import BrokerOrder
from cryptomon.trading.engine import TradingEngine
from cryptomon.trading.journal import MemoryJournal
from cryptomon.trading.orders import client_order_id
from cryptomon.trading.reconcile import READ_ATTEMPTS
from cryptomon.trading.risk import RiskState
from tests.unit.trading.brokers_for_tests import ScriptedBroker
from tests.unit.trading.helpers import EX, SYM, Collector, advance_until, book, d, paper_engine
from tests.util import wait_until

S = OrderState


def _intent(coid: str, amount: str = "1") -> OrderIntent:
    return OrderIntent(
        exchange=EX,
        symbol=SYM,
        ts=0.0,
        ts_recv=0.0,
        client_order_id=coid,
        side="buy",
        type="market",
        amount=d(amount),
        origin="manual",
    )


async def _journal_with_filled_buy(
    name: str, amount: str, *, fee: str, fee_currency: str
) -> MemoryJournal:
    """A journal holding one filled manual buy of ``amount`` at 100 (its fill included)."""
    journal = MemoryJournal()
    coid = client_order_id(name, "manual", "manual")
    await journal.record_intent(_intent(coid, amount))
    journal.states[coid] = (S.FILLED, f"x-{name}")
    journal.add_fill(
        Fill(
            exchange=EX,
            symbol=SYM,
            ts=1.0,
            ts_recv=1.0,
            trade_id=f"t-{name}",
            client_order_id=coid,
            side="buy",
            amount=d(amount),
            price=d(100),
            fee=d(fee),
            fee_currency=fee_currency,
        )
    )
    return journal


def _engine(
    journal: MemoryJournal | None = None,
) -> tuple[TradingEngine, ScriptedBroker, MemoryJournal, Collector]:
    engine, paper, hub, market, clock = paper_engine()
    broker = ScriptedBroker(paper)
    journal = journal or MemoryJournal()
    journal.follow(hub)
    engine = TradingEngine(
        config=engine.config, hub=hub, clock=clock, broker=broker, market=market, journal=journal
    )
    book(hub, clock, bid=100.0, ask=100.2, size=10.0)
    return engine, broker, journal, Collector(hub, OrderUpdate, RiskEvent, Fill)


@pytest.mark.asyncio
async def test_no_order_before_reconciliation_finishes() -> None:
    """Until reconciliation completes the engine is reducing and refuses every order."""
    engine, broker, _, _ = _engine()
    assert engine.risk_state == RiskState.REDUCING
    assert not engine.reconciled
    broker.hold.clear()  # fetch_open_orders blocks: reconciliation is in progress
    starting = asyncio.ensure_future(engine.start())
    await wait_until(lambda: broker.lookups >= 0 and not broker.hold.is_set())
    with pytest.raises(RiskRejected) as err:
        await engine.place_manual_order(
            actor="ops", exchange=EX, symbol=SYM, side="buy", amount="1"
        )
    assert err.value.check == "not_reconciled"
    assert sum(broker.calls.values()) == 0
    broker.hold.set()
    await starting
    assert engine.reconciled
    assert engine.risk_state == RiskState.ACTIVE
    await engine.place_manual_order(actor="ops", exchange=EX, symbol=SYM, side="buy", amount="1")
    await engine.stop()


@pytest.mark.asyncio
async def test_intent_written_but_never_sent_is_closed_not_sent() -> None:
    """A journal intent the venue never saw ends rejected; it is never placed."""
    journal = MemoryJournal()
    coid = client_order_id("crash-1", "manual", "manual")
    await journal.record_intent(_intent(coid))
    engine, broker, _, col = _engine(journal)
    await engine.start()
    rec = engine.book.get(coid)
    assert rec is not None
    assert rec.state == S.REJECTED
    assert "never reached the venue" in rec.reason
    assert broker.calls[coid] == 0
    assert engine.risk_state == RiskState.ACTIVE  # a never-sent intent is not a mismatch
    assert [u.state for u in col.of(OrderUpdate) if u.client_order_id == coid] == [S.REJECTED]
    await engine.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("state", [S.PARTIALLY_FILLED, S.CANCEL_PENDING])
async def test_a_working_order_the_venue_does_not_know_is_closed_at_restart(
    state: OrderState,
) -> None:
    """An order the journal has partly filled (or being canceled) that the venue no longer
    knows: a mismatch (reducing), and the order is closed with what it filled; before, the
    move to ``rejected`` was an illegal transition, so the order stayed open for good (its
    remainder counted as pending exposure and every later signal on the market was dropped
    as "an order is still working")."""
    journal = await _journal_with_filled_buy("gone", "0.4", fee="0", fee_currency="USDT")
    coid = client_order_id("gone", "manual", "manual")
    journal.intents[coid] = _intent(coid, "1")  # 0.4 of 1 filled
    journal.states[coid] = (state, "x-gone")
    engine, broker, _, _ = _engine(journal)
    await engine.start()
    rec = engine.book.get(coid)
    assert rec is not None
    assert not rec.is_open
    assert rec.state == S.CANCELED
    assert "unknown at the venue" in rec.reason
    assert rec.filled == d("0.4")
    assert engine.book.open() == []
    assert engine.risk_state == RiskState.REDUCING
    assert f"order {coid} was {state} locally" in engine.state_reason
    assert broker.calls[coid] == 0
    await engine.stop()


@pytest.mark.asyncio
async def test_recent_intent_absent_at_restart_waits_out_the_recv_window() -> None:
    """An intent written just before a crash and not (yet) at the venue stays unknown until
    its recv window has passed, then ends rejected; it is never placed."""
    journal = MemoryJournal()
    engine, broker, _, _ = _engine(journal)
    coid = client_order_id("crash-2", "manual", "manual")
    now = engine.clock.time()
    await journal.record_intent(replace(_intent(coid), ts=now, ts_recv=now))
    await engine.start()
    rec = engine.book.get(coid)
    assert rec is not None
    assert rec.state == S.UNKNOWN
    clock = engine.clock
    assert isinstance(clock, ManualClock)
    await advance_until(clock, lambda: rec.state == S.REJECTED, step=0.5, message="rejected")
    assert clock.time() >= now + engine.config.live.recv_window_ms / 1000
    assert broker.calls[coid] == 0
    await engine.stop()


@pytest.mark.asyncio
async def test_order_filled_while_down_is_settled_with_its_fills() -> None:
    """An order sent before the crash and filled meanwhile: its fills become the position."""
    engine0, broker0, journal, _ = _engine()
    await engine0.start()
    rec = await engine0.executor.submit(_intent(client_order_id("r", "manual", "manual"), "2"))
    assert rec.state == S.FILLED
    # simulate: the journal only knew it as submitted and never got its fills
    journal.states[rec.client_order_id] = (S.SUBMITTED, None)
    journal._fills.clear()
    await engine0.stop()
    engine, broker, _, col = _engine(journal)
    broker.paper = broker0.paper  # same venue
    await engine.start()
    again = engine.book.get(rec.client_order_id)
    assert again is not None
    assert again.state == S.FILLED
    assert engine.portfolio.amount(EX, SYM) == d(2)
    assert len(col.of(Fill)) == 1
    assert engine.risk_state == RiskState.ACTIVE
    assert (EX, SYM) in engine.protection.protections  # protection re-armed for the position
    await engine.stop()


@pytest.mark.asyncio
async def test_orphan_order_is_canceled_and_keeps_reducing() -> None:
    """An open venue order with our id prefix that the journal does not know is canceled;
    the mismatch keeps the engine reducing with a RiskEvent naming it until resumed."""
    engine, broker, _, col = _engine()
    orphan = client_order_id("ghost", "entry", "signal")
    broker.extra_open.append(
        BrokerOrder(
            client_order_id=orphan,
            exchange=EX,
            symbol=SYM,
            state=S.SUBMITTED,
            side="buy",
            type="limit",
            amount=Decimal(1),
            price=Decimal(90),
        )
    )
    broker.extra_open.append(
        BrokerOrder(
            client_order_id="users-own-order",
            exchange=EX,
            symbol=SYM,
            state=S.SUBMITTED,
            side="buy",
            type="limit",
            amount=Decimal(1),
            price=Decimal(90),
        )
    )
    await engine.start()
    assert broker.canceled == [orphan]
    assert engine.risk_state == RiskState.REDUCING
    assert engine.reconciled
    events = [e for e in col.of(RiskEvent) if e.kind == "state_change"]
    assert "orphan order" in events[-1].reason
    assert await engine.resume("ops") == "active"
    await engine.stop()


@pytest.mark.asyncio
async def test_balance_short_of_position_is_a_mismatch() -> None:
    """Fills say we hold 2 BTC, the venue holds 0.5: reducing, with the numbers in the reason."""
    journal = await _journal_with_filled_buy("old", "2", fee="0.2", fee_currency="USDT")
    engine, broker, _, col = _engine(journal)
    broker.balances_override = {"USDT": d(9000), "BTC": d("0.50000000")}  # a venue's digits
    await engine.start()
    assert engine.portfolio.amount(EX, SYM) == d(2)
    assert engine.risk_state == RiskState.REDUCING
    reason = list(col.of(RiskEvent))[-1].reason
    assert "needs 2 BTC but the venue holds 0.5" in reason
    assert "0.50" not in reason, reason  # plain digits, not the venue's padding
    with pytest.raises(RiskRejected):
        await engine.place_manual_order(
            actor="ops", exchange=EX, symbol=SYM, side="buy", amount="1"
        )
    await engine.stop()


@pytest.mark.asyncio
async def test_restart_rebuilds_positions_and_stats_from_fills() -> None:
    """Positions, cash and closed trades come back from the journal's fills; the paper
    broker is restored to the same balances so reconciliation agrees."""
    journal = MemoryJournal()
    engine0, _, hub0, _, clock0 = paper_engine(journal=journal)
    journal.follow(hub0)
    book(hub0, clock0, bid=100.0, ask=100.2, size=10.0)
    await engine0.start()
    await engine0.executor.submit(_intent(client_order_id("a", "m", "manual"), "3"))
    sell = OrderIntent(
        exchange=EX,
        symbol=SYM,
        ts=0.0,
        ts_recv=0.0,
        client_order_id=client_order_id("b", "m", "manual"),
        side="sell",
        type="market",
        amount=d(1),
        origin="manual",
    )
    await engine0.executor.submit(sell)
    before = engine0.stats()
    await engine0.stop()
    journal.close()
    engine, _, hub, _, clock = paper_engine(journal=journal)
    journal.follow(hub)
    book(hub, clock, bid=100.0, ask=100.2, size=10.0)
    await engine.start()
    after = engine.stats()
    assert engine.portfolio.amount(EX, SYM) == d(2)
    assert after["cash"] == before["cash"]
    assert after["realized_pnl"] == before["realized_pnl"]
    assert engine.risk_state == RiskState.ACTIVE
    await engine.stop()


@pytest.mark.asyncio
async def test_periodic_reconcile_needs_a_mismatch_twice_and_never_reactivates() -> None:
    """A balance gap seen once may be a fill in flight; seen twice it moves to reducing. A
    clean periodic run does not undo a reducing state set for another reason."""

    engine, broker, _, col = _engine()
    await engine.start()
    await engine.place_manual_order(actor="ops", exchange=EX, symbol=SYM, side="buy", amount="1")
    broker.balances_override = {"USDT": d(9000), "BTC": d(0)}
    assert await engine.reconciler.run(periodic=True) == []
    assert engine.risk_state == RiskState.ACTIVE
    [gap] = await engine.reconciler.run(periodic=True)
    assert "needs 1 BTC" in gap
    assert engine.risk_state == RiskState.REDUCING
    assert col.of(RiskEvent)[-1].state == "reducing"
    broker.balances_override = None
    assert await engine.reconciler.run(periodic=True) == []
    assert engine.risk_state == RiskState.REDUCING
    await engine.stop()


@pytest.mark.asyncio
async def test_unreachable_venue_at_startup_keeps_retrying_without_trading() -> None:
    """If the venue cannot be read at startup the engine still starts (monitoring goes on),
    stays unreconciled and refuses orders, and reconciles once the venue answers."""
    from cryptomon.clock import ManualClock
    from tests.unit.trading.helpers import advance_until

    engine, broker, _, col = _engine()
    clock = engine.clock
    assert isinstance(clock, ManualClock)
    broker.fail_reads = 1000
    starting = asyncio.ensure_future(engine.start())
    await advance_until(clock, starting.done, step=30, message="start returned")
    await starting
    assert not engine.reconciled
    assert engine.risk_state == RiskState.REDUCING
    assert "reconciliation failed" in col.of(RiskEvent)[-1].reason
    with pytest.raises(RiskRejected):
        await engine.place_manual_order(
            actor="ops", exchange=EX, symbol=SYM, side="buy", amount="1"
        )
    broker.fail_reads = 0
    await advance_until(clock, lambda: engine.reconciled, step=30, message="reconciled")
    assert engine.risk_state == RiskState.ACTIVE
    await engine.stop()


@pytest.mark.asyncio
async def test_paper_restart_keeps_resting_limit_orders() -> None:
    """A resting paper limit order survives a restart: no mismatch, and it still fills when a
    trade crosses it, counting the part filled before the restart."""
    from tests.unit.trading.helpers import trade

    journal = MemoryJournal()
    engine0, _, hub0, _, clock0 = paper_engine(journal=journal)
    journal.follow(hub0)
    book(hub0, clock0, bid=100.0, ask=100.2, size=10.0)
    await engine0.start()
    out = await engine0.place_manual_order(
        actor="a", exchange=EX, symbol=SYM, side="buy", amount="3", type="limit", price="99.5"
    )
    trade(hub0, clock0, price=99.5, amount=1.0, side="sell")
    await wait_until(lambda: engine0.portfolio.amount(EX, SYM) == d(1), timeout=5)
    await engine0.stop()
    journal.close()

    engine, paper, hub, _, clock = paper_engine(journal=journal)
    journal.follow(hub)
    book(hub, clock, bid=100.0, ask=100.2, size=10.0)
    await engine.start()
    assert engine.risk_state == RiskState.ACTIVE
    rec = engine.book.get(out["client_order_id"])
    assert rec is not None
    assert rec.state == S.PARTIALLY_FILLED
    assert rec.filled == d(1)
    trade(hub, clock, price=99.4, amount=5.0, side="sell")
    await wait_until(lambda: rec.state == S.FILLED, timeout=5)
    assert engine.portfolio.amount(EX, SYM) == d(3)
    assert (await paper.fetch_balances())["BTC"] == d(3)
    await engine.stop()


@pytest.mark.asyncio
async def test_finished_order_with_lost_fills_gets_them_from_the_venue() -> None:
    """An order stored as filled whose fills never reached the database: reconciliation
    fetches its fills; the position is right and the order stays filled."""
    from cryptomon.trading.journal import StoredOrder

    engine0, broker0, _journal, _ = _engine()
    await engine0.start()
    rec = await engine0.executor.submit(_intent(client_order_id("lost", "manual", "manual"), "2"))
    assert rec.state == S.FILLED
    await engine0.stop()

    class LostFills(MemoryJournal):
        async def open_orders(self) -> list[StoredOrder]:
            return [StoredOrder(intent=rec.intent, state=S.FILLED, missing_fills=True)]

        async def fills(self) -> list[Fill]:
            return []

    engine, broker, _, col = _engine(LostFills())
    broker.paper = broker0.paper
    await engine.start()
    assert engine.portfolio.amount(EX, SYM) == d(2)
    assert len(col.of(Fill)) == 1
    again = engine.book.get(rec.client_order_id)
    assert again is not None
    assert again.state == S.FILLED
    assert engine.risk_state == RiskState.ACTIVE
    assert not [u for u in col.of(OrderUpdate) if u.client_order_id == rec.client_order_id]
    await engine.stop()


@pytest.mark.asyncio
async def test_restored_position_below_the_lot_is_dust_not_a_position() -> None:
    """Replayed fills whose base-currency fee left less than a lot: after the restart the
    position is closed (dust kept), nothing to protect or exit."""
    journal = await _journal_with_filled_buy(
        "dusty", "0.0001", fee="0.00000001", fee_currency="BTC"
    )
    engine, _, _, _ = _engine(journal)
    await engine.start()
    assert engine.portfolio.open_positions() == []
    assert engine.portfolio.dust == {"BTC": d("0.00009999")}
    assert (EX, SYM) not in engine.protection.protections
    await engine.stop()


@pytest.mark.asyncio
async def test_a_reconcile_read_retries_temporary_errors_with_growing_backoff() -> None:
    """A read that answers at once is not delayed; one failing with TemporaryError is tried
    again after a growing delay, up to READ_ATTEMPTS times, then the error is raised."""
    engine, _, _, _ = _engine()
    clock = engine.clock
    assert isinstance(clock, ManualClock)
    initial = min(engine.config.poll_interval_s, 1.0)  # the first delay, +/- 20%
    calls: list[float] = []

    async def read(fail: int) -> str:
        calls.append(clock.time())
        if len(calls) <= fail:
            raise TemporaryError("venue busy")
        return "answer"

    start = clock.time()
    assert await engine.reconciler._retry("read", lambda: read(0)) == "answer"
    assert calls == [start]

    calls.clear()
    task = asyncio.ensure_future(engine.reconciler._retry("read", lambda: read(2)))
    step = initial / 20
    await advance_until(clock, task.done, step=step, message="the third read answered")
    assert task.result() == "answer"
    assert len(calls) == 3
    first, second = calls[1] - calls[0], calls[2] - calls[1]
    assert 0.8 * initial - step <= first <= 1.2 * initial + step
    assert second > first  # twice the first delay, +/- 20%

    calls.clear()
    task = asyncio.ensure_future(engine.reconciler._retry("read", lambda: read(100)))
    await advance_until(clock, task.done, step=1, message="the reads gave up")
    with pytest.raises(TemporaryError):
        task.result()
    assert len(calls) == READ_ATTEMPTS
