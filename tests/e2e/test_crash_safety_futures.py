"""Crash safety of a live perpetual order: a real subprocess (the engine on ccxt
``binanceusdm`` against the simulator's USD-M venue in this process, journal on SQLite) is
killed with SIGKILL after the venue set the leverage but before the order was sent, or after
the venue filled the order but before the answer arrived; the engine restarted on the same
database sends no second order and holds the venue's position. With venue-side SL/TP legs:
killed once both rest on the venue, the restarted engine adopts them (no second pair), and a
stop the venue fired while the daemon was down closes the position and cancels the other."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio

from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.usdm import UsdmVenue
from tests.e2e.futures_rig import KEY, SECRET, start
from tests.usdm import PERP, usdm_venue
from tests.util import wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture
async def venue() -> AsyncIterator[tuple[SimExchange, UsdmVenue]]:
    sim, usdm = await usdm_venue(key=KEY, secret=SECRET, seed=5)
    try:
        yield sim, usdm
    finally:
        for hold in list(usdm.holds.values()):
            hold.release()
        await sim.stop()


async def run_child_until(
    url: str, db: Path, reached: asyncio.Event | Callable[[], bool], *args: str
) -> None:
    """Start the child, wait for the held request (or the condition), kill -9 it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.e2e.futures_rig",
        url,
        str(db),
        *args,
        env=env,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        if isinstance(reached, asyncio.Event):
            await asyncio.wait_for(reached.wait(), timeout=90)
        else:
            await wait_until(reached, timeout=90, message="the child's venue state")
    finally:
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL


@pytest.mark.asyncio
@pytest.mark.slow
@pytest.mark.parametrize("point", ["after_set_leverage", "after_fill"])
async def test_sigkill_around_a_perpetual_order(
    venue: tuple[SimExchange, UsdmVenue], tmp_path: Path, point: str
) -> None:
    """Killed after set_leverage (no order reached the venue) or after the fill: after the
    restart no order is placed twice and the engine's position equals the venue's."""
    sim, usdm = venue
    db = tmp_path / "futures.db"
    path = "/fapi/v1/leverage" if point == "after_set_leverage" else "/fapi/v1/order"
    hold = usdm.hold("POST", path)
    await run_child_until(sim.rest_url, db, hold.reached)
    hold.release()
    expected = Decimal(0) if point == "after_set_leverage" else Decimal("0.1")
    assert usdm.book.positions["BTCUSDT"].leverage == 5
    rig = await start(sim.rest_url, str(db))
    try:
        engine = rig.engine
        await wait_until(lambda: not engine.book.open(), timeout=30, message="order settled")
        await wait_until(
            lambda: engine.portfolio.amount(rig.engine.broker.exchange_name, PERP) == expected,  # type: ignore[attr-defined]
            timeout=30,
            message="position = venue's",
        )
        posts = [p for m, p in usdm.requests if m == "POST" and p == "/fapi/v1/order"]
        assert len(posts) == (0 if point == "after_set_leverage" else 1)
        assert len(usdm.book.orders) == len(posts)
        assert usdm.book.positions["BTCUSDT"].qty == expected
        assert await engine.broker.fetch_positions() == (  # type: ignore[attr-defined]
            {PERP: expected} if expected else {}
        )
        (record,) = engine.book.all()
        assert record.state.value == ("rejected" if not expected else "filled")
    finally:
        await rig.stop()


def resting(usdm: UsdmVenue) -> list[dict[str, object]]:
    return [a for a in usdm.book.algos if a["algoStatus"] == "NEW"]


@pytest.mark.asyncio
@pytest.mark.slow
@pytest.mark.parametrize("fired_while_down", [True, False])
async def test_sigkill_with_venue_legs_resting(
    venue: tuple[SimExchange, UsdmVenue], tmp_path: Path, fired_while_down: bool
) -> None:
    """Killed with both venue legs resting; the venue fires the stop while the daemon is down
    (or the take-profit after the restart): the restarted engine places no new leg, books
    the fill, cancels the other leg, and ends flat like the venue with the hand's PnL."""
    sim, usdm = venue
    db = tmp_path / "legs.db"
    await run_child_until(sim.rest_url, db, lambda: len(resting(usdm)) == 2, "native")
    legs_sent = [p for m, p in usdm.requests if (m, p) == ("POST", "/fapi/v1/algoOrder")]
    assert len(legs_sent) == 2
    if fired_while_down:
        usdm.set_price("BTCUSDT", Decimal(19300))  # the stop fires at the venue
    # the journal may lack the entry's fill (killed before the store wrote it): the legs are
    # then adopted when the reconciliation books it, before start returns
    rig = await start(sim.rest_url, str(db), native=True)
    try:
        engine = rig.engine
        prot = engine.protection.protections.get((rig.engine.broker.exchange_name, PERP))  # type: ignore[attr-defined]
        if not fired_while_down:
            assert prot is not None
            assert prot.native
            assert {prot.stop_order, prot.take_order} == {a["clientAlgoId"] for a in resting(usdm)}
            usdm.set_price("BTCUSDT", Decimal(21300))  # now the take-profit fires
        await wait_until(lambda: not resting(usdm), timeout=30, message="other leg canceled")
        await wait_until(lambda: not engine.book.open(), timeout=30, message="legs settled")
        exit_price = Decimal(19300) if fired_while_down else Decimal(21300)
        pos = engine.portfolio.positions[(rig.engine.broker.exchange_name, PERP)]  # type: ignore[attr-defined]
        assert pos.amount == 0
        assert usdm.book.positions["BTCUSDT"].qty == 0
        fee = Decimal("0.1") * (Decimal(20000) + exit_price) * Decimal("0.0004")
        assert engine.portfolio.trades[-1].pnl == Decimal("0.1") * (exit_price - 20000) - fee
        again = [p for m, p in usdm.requests if (m, p) == ("POST", "/fapi/v1/algoOrder")]
        assert again == legs_sent  # no second pair after the restart
        statuses = sorted(str(a["algoStatus"]) for a in usdm.book.algos)
        assert statuses == ["CANCELED", "FINISHED"]
        assert await engine.reconciler.run(periodic=True) == []
    finally:
        await rig.stop()


@pytest.mark.asyncio
@pytest.mark.slow
async def test_sigkill_between_the_two_venue_legs(
    venue: tuple[SimExchange, UsdmVenue], tmp_path: Path
) -> None:
    """Killed while the stop-loss leg's request was on its way (the venue took it, the
    take-profit was never sent): the restarted engine adopts the stop and places the missing
    take-profit once reconciled; a second restart places nothing; the venue's take-profit
    then closes the position and the stop is canceled. Before, the stop alone protected the
    position (no take-profit at the venue, none watched on the book)."""
    sim, usdm = venue
    db = tmp_path / "half.db"
    algo = ("POST", "/fapi/v1/algoOrder")
    hold = usdm.hold(*algo)
    await run_child_until(sim.rest_url, db, hold.reached, "native")
    hold.release()
    (stop,) = resting(usdm)
    assert stop["orderType"] == "STOP_MARKET"
    rig = await start(sim.rest_url, str(db), native=True)
    try:
        await wait_until(lambda: len(resting(usdm)) == 2, timeout=30, message="pair completed")
        take = next(a for a in resting(usdm) if a is not stop)
        assert (take["orderType"], take["triggerPrice"]) == ("TAKE_PROFIT_MARKET", "21200")
        assert Decimal(str(take["quantity"])) == Decimal("0.1")
        prot = rig.engine.protection.protections[(rig.engine.broker.exchange_name, PERP)]  # type: ignore[attr-defined]
        await wait_until(lambda: prot.missing is None, timeout=30, message="take resting")
        assert (prot.stop_order, prot.take_order) == (stop["clientAlgoId"], take["clientAlgoId"])
    finally:
        await rig.stop()
    sent = [(m, p) for m, p in usdm.requests if (m, p) == algo]
    assert len(sent) == 2
    rig = await start(sim.rest_url, str(db), native=True)  # the second restart
    try:
        engine = rig.engine
        key = (engine.broker.exchange_name, PERP)  # type: ignore[attr-defined]
        prot = engine.protection.protections[key]
        assert prot.native
        assert prot.missing is None
        assert {prot.stop_order, prot.take_order} == {a["clientAlgoId"] for a in resting(usdm)}
        usdm.set_price("BTCUSDT", Decimal(21300))  # the venue fires the take-profit
        await wait_until(lambda: not resting(usdm), timeout=30, message="stop canceled")
        await wait_until(lambda: not engine.book.open(), timeout=30, message="legs settled")
        assert engine.portfolio.positions[key].amount == 0
        assert usdm.book.positions["BTCUSDT"].qty == 0
        fee = Decimal("0.1") * (Decimal(20000) + Decimal(21300)) * Decimal("0.0004")
        assert engine.portfolio.trades[-1].pnl == Decimal("0.1") * 1300 - fee
        assert [(m, p) for m, p in usdm.requests if (m, p) == algo] == sent  # no third leg
        assert sorted(str(a["algoStatus"]) for a in usdm.book.algos) == ["CANCELED", "FINISHED"]
    finally:
        await rig.stop()
