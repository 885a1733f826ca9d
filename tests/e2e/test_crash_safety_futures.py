"""Crash safety of a live perpetual order: a real subprocess (the engine on ccxt
``binanceusdm`` against the simulator's USD-M venue in this process, journal on SQLite) is
killed with SIGKILL after the venue set the leverage but before the order was sent, or after
the venue filled the order but before the answer arrived; the engine restarted on the same
database sends no second order and holds the venue's position."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio

from cryptomon.clock import ManualClock
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.usdm import UsdmVenue
from tests.e2e.futures_rig import KEY, PERP, SECRET, start
from tests.util import wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture
async def venue() -> AsyncIterator[tuple[SimExchange, UsdmVenue]]:
    sim = SimExchange(MarketModel(["BTC-USDT"], seed=5), clock=ManualClock(time.time()))
    usdm = UsdmVenue(api_key=KEY, api_secret=SECRET)
    usdm.set_price("BTCUSDT", Decimal(20000))
    sim.add_routes(usdm.routes())
    await sim.start(run=False)
    try:
        yield sim, usdm
    finally:
        for hold in list(usdm.holds.values()):
            hold.release()
        await sim.stop()


async def run_child_until(url: str, db: Path, reached: asyncio.Event) -> None:
    """Start the child, wait for the held request, kill -9 it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.e2e.futures_rig",
        url,
        str(db),
        env=env,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await asyncio.wait_for(reached.wait(), timeout=90)
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
