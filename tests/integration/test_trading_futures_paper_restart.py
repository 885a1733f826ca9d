"""Paper funding survives a restart: a 5x paper long on a real SQLite file pays funding, the
daemon's engine stops and a new one starts on the same file; the position comes back with the
funding it paid (journal table ``funding_payments``), the cash without it is not believed, no
payment is applied twice, and the close realizes the hand computation including the funding."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from pathlib import Path

import pytest

from cryptomon.clock import ManualClock
from cryptomon.events import OrderState
from cryptomon.store.journal import StoreJournal
from cryptomon.trading.risk import RiskState
from tests.journaled import Journaled, paper_perp
from tests.unit.trading.test_futures_paper import EX, PERP, pay_funding, quote
from tests.util import wait_until

D = Decimal


async def daemon(url: str, clock: ManualClock, *, quoted: bool = True) -> Journaled:
    """The paper engine journaled on the database at ``url`` (started, reconciled); with
    ``quoted`` the perpetual's book has a 20000 mid before the start. Rows are written within
    10 ms (the tests wait for them while it runs); no periodic funding sync within a test's
    span of the clock (the funding advances it 61 s): it raced the test's own sync, which
    then found nothing left to apply."""
    return await paper_perp(
        url,
        clock,
        mid=20000.0 if quoted else None,
        batch_max_age_s=0.01,
        reconcile_interval_s=3600.0,
    )


@pytest.mark.asyncio
async def test_paper_funding_survives_a_restart_on_sqlite(tmp_path: Path) -> None:
    """0.01% funding on a 0.1 long at 20000 (-0.2 USDT) is still on the position and in the
    cash after the restart, a sync applies nothing twice, and the close's PnL includes it."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'paper.db'}"
    clock = ManualClock(start=1_700_000_000.0)
    first = await daemon(url, clock)
    await first.engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="buy", amount="0.1", stop_loss="19400"
    )
    pay_funding(first.hub, clock, 0.0001, 20000.0)
    assert await first.engine.funding.sync() == 1
    cash_before = first.engine.portfolio.cash
    journal = StoreJournal(db=first.db)
    await wait_until(lambda: _has_fill(journal), timeout=10, message="fill stored")
    await first.stop()

    second = await daemon(url, clock)
    try:
        engine = second.engine
        pos = engine.portfolio.positions[(EX, PERP)]
        assert pos.amount == D("0.1")
        assert pos.contract is not None
        assert pos.contract.funding == D("-0.2")
        assert engine.portfolio.cash == cash_before
        assert (await second.broker.fetch_balances())["USDT"] == cash_before
        assert await engine.funding.sync() == 0
        stored = await StoreJournal(db=second.db).funding_payments()
        assert [(s.payment.amount, s.price) for s in stored] == [
            (D("-0.2"), D(20000))
        ]  # at the mark
        prot = engine.protection.protections[(EX, PERP)]
        assert prot.take is not None
        quote(second.hub, clock, float(prot.take) + 1)
        await wait_until(lambda: pos.amount == 0, timeout=5, message="take-profit")
        exit_fill = D(str(float(prot.take) + 0.5))
        fees = D("0.1") * (D("20000.5") + exit_fill) * D("0.001")
        hand = D("0.1") * (exit_fill - D("20000.5")) - D("0.2") - fees
        assert engine.portfolio.trades[-1].pnl == hand
        assert engine.portfolio.cash == D(10_000) + hand
    finally:
        await second.stop()


async def _has_fill(journal: StoreJournal) -> bool:
    return len(await journal.fills()) == 1


@pytest.mark.asyncio
async def test_funding_of_a_trip_reopened_before_the_sync_survives_a_restart(
    tmp_path: Path,
) -> None:
    """A long pays 0.2 of funding, closes, and a new long opens before the sync: the stored
    payment is replayed after a restart onto the first trip (in time order with the fills),
    once: the trip's PnL, the cash and the new position are as before the restart."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'paper.db'}"
    clock = ManualClock(start=1_700_000_000.0)
    first = await daemon(url, clock)
    engine = first.engine
    for side in ("buy", "sell", "buy"):
        await engine.place_manual_order(
            actor="t",
            exchange=EX,
            symbol=PERP,
            side=side,
            amount="0.1",
            stop_loss="19400" if side == "buy" else None,
            reduce_only=side == "sell",
        )
        if side == "buy" and not engine.portfolio.trades:
            pay_funding(first.hub, clock, 0.0001, 20000.0)
        clock.advance(5)
    assert await engine.funding.sync() == 1
    trip, cash = engine.portfolio.trades[0], engine.portfolio.cash
    fees = D("0.1") * (D("20000.5") + D("19999.5")) * D("0.001")
    assert trip.pnl == D("0.1") * (D("19999.5") - D("20000.5")) - D("0.2") - fees
    journal = StoreJournal(db=first.db)
    await wait_until(lambda: _has_fills(journal, 3), timeout=10, message="fills stored")
    await first.stop()

    second = await daemon(url, clock)
    try:
        engine = second.engine
        assert engine.portfolio.trades == [trip]
        assert engine.portfolio.cash == cash
        pos = engine.portfolio.positions[(EX, PERP)]
        assert pos.amount == D("0.1")
        assert pos.contract is not None
        assert pos.contract.funding == 0
        assert await engine.funding.sync() == 0
    finally:
        await second.stop()


async def _has_fills(journal: StoreJournal, n: int) -> bool:
    return len(await journal.fills()) == n


@pytest.mark.asyncio
async def test_an_entry_left_open_by_a_kill_switch_cut_short_is_canceled_at_restart(
    tmp_path: Path,
) -> None:
    """The process dies right after the kill switch halted trading, before its cancels went
    out: a resting limit entry is still open in the journal and at the (restored) paper venue.
    The restarted engine is halted from the start, cancels that entry and nothing fills when
    the market later trades through its price. Before, the entry stayed open at the venue
    after the restart and filled: a position opened while trading was halted."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'paper.db'}"
    clock = ManualClock(start=1_700_000_000.0)
    first = await daemon(url, clock)
    out = await first.engine.place_manual_order(
        actor="t",
        exchange=EX,
        symbol=PERP,
        side="buy",
        type="limit",
        price="19000",
        amount="0.1",
        stop_loss="18500",
    )
    assert out["state"] == "submitted"
    first.engine.context.set_risk_state(RiskState.HALTED, "kill switch by t", kind="kill_switch")
    journal = StoreJournal(db=first.db)
    await wait_until(lambda: _halted(journal, clock), timeout=10, message="halt stored")
    await first.stop()

    second = await daemon(url, clock)
    try:
        engine = second.engine
        assert engine.risk_state == RiskState.HALTED
        record = engine.book.get(out["client_order_id"])
        assert record is not None
        assert record.state is OrderState.CANCELED
        assert await second.broker.fetch_open_orders() == []
        quote(second.hub, clock, 18900)  # trades through the entry's price
        assert engine.portfolio.amount(EX, PERP) == 0
        assert await second.broker.fetch_positions() == {}
    finally:
        await second.stop()


async def _halted(journal: StoreJournal, clock: ManualClock) -> bool:
    clock.advance(0.02)  # the writer flushes batches older than batch_max_age_s
    return await journal.last_risk_state() == "halted"


@pytest.mark.asyncio
async def test_a_flatten_cut_short_closes_once_the_restarted_feed_has_a_price(
    tmp_path: Path,
) -> None:
    """The kill switch is pressed with flatten on a 0.1 paper long; the process dies before
    the flatten has written any exit (it waits for an entry's placement on its way). The
    restarted engine has no market price yet (the feeds not connected): it stays halted with
    the position open and closes it once the first book arrives. Before, the restart's
    flatten was refused for want of a price and nothing tried again."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'paper.db'}"
    clock = ManualClock(start=1_700_000_000.0)
    first = await daemon(url, clock)
    await first.engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="buy", amount="0.1", stop_loss="19400"
    )
    assert first.engine.portfolio.amount(EX, PERP) == D("0.1")
    await first.engine.executor._lock.acquire()  # an entry's placement on its way
    press = asyncio.ensure_future(first.engine.kill_switch("t", flatten=True))
    journal = StoreJournal(db=first.db)
    await wait_until(lambda: _halted(journal, clock), timeout=10, message="halt stored")
    assert not press.done()
    press.cancel()  # the process dies: no exit written
    with contextlib.suppress(asyncio.CancelledError):
        await press
    first.engine.executor._lock.release()
    await first.stop()

    second = await daemon(url, clock, quoted=False)
    try:
        engine = second.engine
        assert engine.risk_state == RiskState.HALTED
        ticks = 0

        def unpriced_polls() -> bool:  # the engine's polls go by without a market price
            nonlocal ticks
            clock.advance(1)
            ticks += 1
            return ticks >= 5

        await wait_until(unpriced_polls, message="polls without a price")
        assert engine.portfolio.amount(EX, PERP) == D("0.1")
        assert engine.risk_state == RiskState.HALTED
        quote(second.hub, clock, 20100)  # the feed's first book

        def flat() -> bool:
            clock.advance(1)  # the engine's retry waits on the (manual) clock
            return engine.portfolio.amount(EX, PERP) == 0

        await wait_until(flat, timeout=10, message="flattened once priced")
        assert await second.broker.fetch_positions() == {}
        assert engine.risk_state == RiskState.HALTED
    finally:
        await second.stop()
