"""A protective exit after a restart is a new order, never one the previous run sent.

The emulated stop's exit ids count the attempts of the entry's protection; a restart protects
the restored position again, and before it counted from zero: the first exit reused the id of
the previous run's first exit (refused, or filled only in part). The journal keeps one row per
client order id (an intent already stored is not written again), so two venue orders shared a
row, and a venue that refuses a client id it has seen refused the exit. The restored
protection now counts on from the highest exit attempt the journal holds for its entry.

The paper perpetual on a real SQLite file: the first run's stop exit fills only in part (a
thin book), the engine stops, the second run's stop closes the rest."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from cryptomon.clock import ManualClock
from cryptomon.store.models import OrderRow
from cryptomon.trading.guard import ATTEMPTS_PROBED, EXIT_BACKOFF_MAX_S, EXIT_BACKOFF_S, exit_id
from cryptomon.trading.orders import client_order_id
from tests.journaled import Journaled, paper_perp
from tests.unit.trading.helpers import book, status
from tests.unit.trading.test_futures_paper import EX, PERP, quote
from tests.util import wait_until

D = Decimal


async def daemon(url: str, clock: ManualClock, mid: float) -> Journaled:
    """The paper perpetual engine (no trailing), journaled on ``url``, its book at ``mid``."""
    return await paper_perp(url, clock, mid=mid)


async def exit_rows(d: Journaled) -> dict[str, OrderRow]:
    async with d.db.sessionmaker() as session:
        rows = (await session.scalars(select(OrderRow).where(OrderRow.origin == "stop_loss"))).all()
    return {r.client_order_id: r for r in rows}


@pytest.mark.asyncio
async def test_the_first_exit_after_a_restart_is_not_an_exit_of_the_previous_run(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'exits.db'}"
    clock = ManualClock(start=1_700_000_000.0)
    first = await daemon(url, clock, 20000)
    await first.engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="buy", amount="0.1", stop_loss="19400"
    )
    engine = first.engine
    prot = engine.protection.protections[(EX, PERP)]
    entry = prot.entry_id
    # the stop fires on a thin book: its market exit fills 0.04 of 0.1, the rest expires
    book(first.hub, clock, bid=19300, ask=19301, size=0.04, levels=1, exchange=EX, symbol=PERP)
    await wait_until(lambda: prot.attempt == 1 and not prot.exiting, timeout=5)
    assert engine.portfolio.amount(EX, PERP) == D("0.06")
    await first.stop()

    second = await daemon(url, clock, 20000)
    try:
        before = await exit_rows(second)
        assert list(before) == [client_order_id(entry, "stop_loss:0", "stop_loss")]
        pos = second.engine.portfolio.positions[(EX, PERP)]
        assert pos.amount == D("0.06")
        quote(second.hub, clock, 19300)  # the stop again, on a deep book
        await wait_until(lambda: pos.amount == 0, timeout=5, message="the stop closed the rest")
        await second.writer.flush()
        after = await exit_rows(second)
        assert len(after) == 2, "the exit after the restart reused the previous run's id"
        (new,) = set(after) - set(before)
        assert after[new].state == "filled"
        assert after[new].amount == D("0.06")
        (old,) = before
        assert (after[old].state, after[old].filled) == ("expired", D("0.04"))
    finally:
        await second.stop()


@pytest.mark.asyncio
async def test_refused_exit_tries_leave_no_gap_the_restart_cannot_see_past(
    tmp_path: Path,
) -> None:
    """A stop exit the risk checks refuse (here a stale feed) more than ``ATTEMPTS_PROBED``
    times in a row, then sent. Before, every refusal used up an attempt number that was never
    written: the sent exit's id was attempt 33, the restart looked attempts up 32 at a time,
    found none in the first batch and counted on from 0, so a later exit would have reused
    the sent id (a venue refuses it; the journal keeps one intent per id). A refused try now
    keeps its number (nothing was written or sent under it), so the attempts the journal
    holds have no gap, and the restored protection counts on past the last one. The backoff
    still grows with every refusal."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'refused.db'}"
    clock = ManualClock(start=1_700_000_000.0)
    first = await daemon(url, clock, 20000)
    await first.engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="buy", amount="0.1", stop_loss="19400"
    )
    engine = first.engine
    prot = engine.protection.protections[(EX, PERP)]
    entry = prot.entry_id
    status(first.hub, clock, "stale", exchange=EX, symbol=PERP)
    for n in range(ATTEMPTS_PROBED + 1):
        clock.advance(EXIT_BACKOFF_MAX_S)  # past the last backoff
        before = prot.retry_at
        quote(first.hub, clock, 19300)  # the stop fires; the exit is refused: stale
        await wait_until(
            lambda: prot.retry_at != before and not prot.exiting,  # noqa: B023
            timeout=5,
            message=f"refusal {n}",
        )
        assert prot.retry_at - clock.monotonic() == min(
            EXIT_BACKOFF_S * 2**n, EXIT_BACKOFF_MAX_S
        ), "the backoff grows with the refusals"
    status(first.hub, clock, "live", exchange=EX, symbol=PERP)
    clock.advance(EXIT_BACKOFF_MAX_S)
    # sent at last, on a thin book: it fills 0.04 of 0.1, the rest expires
    book(first.hub, clock, bid=19300, ask=19301, size=0.04, levels=1, exchange=EX, symbol=PERP)
    await wait_until(lambda: engine.portfolio.amount(EX, PERP) == D("0.06"), timeout=5)
    await wait_until(lambda: not prot.exiting, timeout=5)
    await first.stop()

    second = await daemon(url, clock, 20000)
    try:
        rows = await exit_rows(second)
        ids = {exit_id(entry, "stop_loss", n): n for n in range(4 * ATTEMPTS_PROBED)}
        assert set(rows) <= set(ids)
        written = sorted(ids[coid] for coid in rows)
        restored = second.engine.protection.protections[(EX, PERP)]
        assert restored.attempt > max(written), (
            f"the restored stop counts from attempt {restored.attempt}, "
            f"an exit already sent was attempt {max(written)}"
        )
        assert written == list(range(len(written))), f"attempts written with gaps: {written}"
        pos = second.engine.portfolio.positions[(EX, PERP)]
        quote(second.hub, clock, 19300)  # the stop again, on a deep book
        await wait_until(lambda: pos.amount == 0, timeout=5, message="the stop closed the rest")
        await second.writer.flush()
        after = await exit_rows(second)
        (new,) = set(after) - set(rows)
        assert (after[new].state, after[new].amount) == ("filled", D("0.06"))
    finally:
        await second.stop()
