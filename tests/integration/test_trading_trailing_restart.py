"""A trailed stop survives a restart. A long and a short whose stops trailed on the book; the
engine and the store writer stop (the last move, held back by the save throttle, is written
at the stop) and a new engine starts over the same database: the restored protection's stop
and best price are the trailed ones, shown on the positions view, and a book between the
entry's stop and the trailed one closes the position. Before, the restart went back to the
entry's stop: a stop that had locked in profit gave it back.

The paper perpetual on a real SQLite file and on PostgreSQL; the ccxt ``binanceusdm`` broker
on the simulator's USD-M venue on a SQLite file. A stop resting at the venue as a leg never
trails and keeps its price across a restart, as before."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cryptomon.api.models_trading import PositionOut
from cryptomon.clock import LiveClock, ManualClock
from cryptomon.config import DatabaseConfig, load_settings
from cryptomon.hub import Hub
from cryptomon.store.db import Database
from cryptomon.store.journal import StoreJournal
from cryptomon.trading.journal import MemoryJournal
from cryptomon.trading.protection import Protection
from tests.journaled import Journaled, paper_perp, store
from tests.unit.trading.test_futures_paper import EX, PERP, quote
from tests.usdm import EX as UEX
from tests.usdm import PERP as UPERP
from tests.usdm import VENUE_ID, live_engine, live_trading, top, usdm_venue
from tests.util import wait_until

D = Decimal
KEY, SECRET = "trail-key", "trail-secret"


async def paper_daemon(url: str, clock: ManualClock, mid: float) -> Journaled:
    """The paper perpetual engine with a 1% trailing stop, journaled on ``url``, its book at
    ``mid`` before the start."""
    return await paper_perp(url, clock, mid=mid, trailing_stop_percentage=1.0)


def levels(prot: Protection) -> tuple[Decimal, Decimal]:
    return prot.stop, prot.best


# side, entry stop, two favourable mids (the second held back by the 5 s throttle), the
# trailed (stop, best) after them, a mid between the entry's stop and the trailed one
PAPER = {
    "buy": ("19400", (20500, 20600), (D("20393.505"), D("20599.5")), 20300),
    "sell": ("20600", (19500, 19400), (D("19594.505"), D("19400.5")), 19700),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("side", ["buy", "sell"], ids=["long", "short"])
async def test_a_paper_trailed_stop_survives_a_restart(db_url: str, side: str) -> None:
    entry_stop, mids, trailed, between = PAPER[side]
    clock = ManualClock(start=1_700_000_000.0)
    first = await paper_daemon(db_url, clock, 20000)
    await first.engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side=side, amount="0.1", stop_loss=entry_stop
    )
    prot = first.engine.protection.protections[(EX, PERP)]
    assert prot.stop == D(entry_stop)
    quote(first.hub, clock, mids[0])  # the first move: written at once
    clock.advance(1)
    quote(first.hub, clock, mids[1])  # 1 s later: held back, written at the stop
    assert levels(prot) == trailed
    assert first.engine.protection.trail_writes == 1
    await first.stop()
    assert first.engine.protection.trail_writes == 2

    second = await paper_daemon(db_url, clock, mids[1])
    try:
        engine = second.engine
        pos = engine.portfolio.positions[(EX, PERP)]
        assert pos.amount == (D("0.1") if side == "buy" else D("-0.1"))
        restored = engine.protection.protections[(EX, PERP)]
        assert levels(restored) == trailed
        (row,) = engine.positions()
        view = PositionOut.model_validate(row)
        assert (view.stop_loss, view.trailing_best, view.stop_at) == (
            str(trailed[0]),
            str(trailed[1]),
            "book",
        )
        assert engine.protection.trail_writes == 0  # the restored level needs no write
        quote(second.hub, clock, between)  # inside the trailed stop, not the entry's
        await wait_until(lambda: pos.amount == 0, timeout=5, message="the trailed stop fired")
        assert engine.portfolio.trades[-1].pnl > 0  # the profit it had locked in
    finally:
        await second.stop()


@pytest.mark.asyncio
async def test_a_persisted_stop_looser_or_of_another_entry_is_not_taken(tmp_path: Path) -> None:
    """The restored stop is never looser than the entry's own: a persisted level below it
    (a long) is ignored, and so is one persisted for another entry of the market."""
    from cryptomon.events import ProtectionUpdate
    from cryptomon.store import repos

    url = f"sqlite+aiosqlite:///{tmp_path / 'paper.db'}"
    clock = ManualClock(start=1_700_000_000.0)
    first = await paper_daemon(url, clock, 20000)
    await first.engine.place_manual_order(
        actor="t", exchange=EX, symbol=PERP, side="buy", amount="0.1", stop_loss="19400"
    )
    entry_id = first.engine.protection.protections[(EX, PERP)].entry_id
    await first.stop()

    async def persist(entry: str, stop: str) -> None:
        db = Database(DatabaseConfig(url=url))
        await db.start()
        now = clock.time()
        level = ProtectionUpdate(
            exchange=EX,
            symbol=PERP,
            ts=now,
            ts_recv=now,
            entry_id=entry,
            side="long",
            stop=D(stop),
            best=D("20100"),
        )
        try:
            async with db.sessionmaker() as session, session.begin():
                await repos.write_durable(session, [level])
        finally:
            await db.stop()

    for entry, stop in ((entry_id, "19300"), ("another-entry", "19900")):
        await persist(entry, stop)
        again = await paper_daemon(url, clock, 20000)
        try:
            prot = again.engine.protection.protections[(EX, PERP)]
            assert prot.stop == D(19400)
        finally:
            await again.stop()


# ---------------------------------------------------------------- ccxt on the simulator


async def live_daemon(url: str, sim_url: str, mid: float) -> Journaled:
    """The live ``binanceusdm`` engine (emulated protection, 1% trailing stop) journaled on
    ``url``, its book at ``mid`` before the start."""
    hub = Hub()
    clock = LiveClock()
    db, writer = await store(url, hub, clock)
    data: dict[str, Any] = {
        "trading": live_trading(
            sim_url,
            key=KEY,
            secret=SECRET,
            native=False,
            allow_short=True,
            trailing_stop_percentage=1.0,
            stop_loss_percentage=3.0,
            take_profit_percentage=20.0,
        )
    }
    engine = live_engine(
        load_settings(data=data).trading, hub=hub, journal=StoreJournal(db=db), clock=clock
    )
    await hub.start()
    top(hub, mid)
    await engine.start()
    return Journaled(engine, hub, writer, db)


@pytest.mark.asyncio
@pytest.mark.parametrize("side", ["buy", "sell"], ids=["long", "short"])
async def test_a_live_trailed_stop_survives_a_restart(tmp_path: Path, side: str) -> None:
    """ccxt ``binanceusdm`` on the simulator, emulated stops: the trailed stop of a long and
    of a short is restored after a restart on the same SQLite file, and fires there."""
    sim, venue = await usdm_venue(key=KEY, secret=SECRET, seed=11)
    url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    long = side == "buy"
    mids = (20500.0, 20600.0) if long else (19500.0, 19400.0)
    try:
        first = await live_daemon(url, sim.rest_url, 20000.0)
        await first.engine.place_manual_order(
            actor="t",
            exchange=UEX,
            symbol=UPERP,
            side=side,
            amount="0.1",
            stop_loss="19400" if long else "20600",
        )
        prot = first.engine.protection.protections[(UEX, UPERP)]
        assert not prot.native
        top(first.hub, mids[0])
        top(first.hub, mids[1])  # within the throttle: written at the stop
        trailed = levels(prot)
        best = D(str(mids[1] - 0.05)) if long else D(str(mids[1] + 0.05))  # the bid / the ask
        assert trailed == (best * (D("0.99") if long else D("1.01")), best)
        await first.stop()
        assert first.engine.protection.trail_writes == 2

        second = await live_daemon(url, sim.rest_url, mids[1])
        try:
            engine = second.engine
            pos = engine.portfolio.positions[(UEX, UPERP)]
            assert pos.amount != 0
            restored = engine.protection.protections[(UEX, UPERP)]
            assert levels(restored) == trailed
            (row,) = engine.positions()
            assert row["stop_loss"] == str(trailed[0])
            between = 20300.0 if long else 19700.0
            venue.set_price(VENUE_ID, D(str(between)))
            top(second.hub, between)
            await wait_until(lambda: pos.amount == 0, timeout=10, message="trailed stop fired")
        finally:
            await second.stop()
    finally:
        await sim.stop()


@pytest.mark.asyncio
async def test_a_resting_venue_stop_does_not_trail_and_keeps_its_price_after_a_restart() -> None:
    """Venue legs (``native_stop_loss``) with a 1% trailing stop: the stop leg resting at the
    venue keeps its price as the book rises (the engine never replaces a resting leg, so the
    emulated trail does not move), nothing is persisted for it, and a restart adopts the leg
    at that same price: the protection after the restart is the one before it."""
    from tests.integration.test_trading_futures_native_restart import KEY as NKEY
    from tests.integration.test_trading_futures_native_restart import SECRET as NSECRET
    from tests.integration.test_trading_futures_native_restart import restart
    from tests.usdm import enter, start_live

    live = await start_live(
        key=NKEY, secret=NSECRET, seed=12, native=True, trailing_stop_percentage=1.0
    )
    try:
        await enter(live.engine, "buy", stop_loss="19400", take_profit="21200")
        prot = live.engine.protection.protections[(UEX, UPERP)]
        await wait_until(
            lambda: prot.native and prot.stop_order is not None and prot.take_order is not None,
            timeout=10,
            message="both legs resting",
        )
        top(live.hub, 20500.0)
        top(live.hub, 20600.0)
        assert prot.stop == D(19400)
        await live.engine.stop()
        assert live.engine.protection.trail_writes == 0
        journal = live.engine.journal
        assert isinstance(journal, MemoryJournal)
        assert journal.trails == {}

        again = await restart(live, journal, trailing_stop_percentage=1.0)
        try:
            restored = again.protection.protections[(UEX, UPERP)]
            assert restored.native
            assert (restored.stop_order, restored.stop) == (prot.stop_order, D(19400))
            (row,) = again.positions()
            assert (row["stop_loss"], row["stop_at"]) == ("19400", "venue")
        finally:
            await again.stop()
    finally:
        await live.sim.stop()
