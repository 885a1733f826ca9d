"""A protective exit does not wait behind the periodic reconciliation's paced reads, through
the real ccxt ``binanceusdm`` code on the simulator's USD-M subset with ccxt's own request
pacing on (``trading.live.enable_rate_limit``, the default). ccxt's limiter is a queue with
a debt: after a read of weight w the next request waits w x 50 ms (Binance). The periodic
reconciliation's funding read (``income``, 30) and its open orders asked without a symbol
(``openOrders`` and ``openAlgoOrders``, 40 each) made a stop-loss exit triggered meanwhile
wait about 4 s before it left. Now the exit (and its lookups) go ahead of the queue, their
weight still counted against the reads after them, and the periodic run asks open orders per
traded symbol (weight 1 each)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from tests.usdm import EX, PERP, VENUE_ID, Live, enter, start_live, top
from tests.util import wait_until

D = Decimal
KEY, SECRET = "pace-key", "pace-secret"
ORDER, INCOME = "/fapi/v1/order", "/fapi/v1/income"
LISTS = ("/fapi/v1/openOrders", "/fapi/v1/openAlgoOrders")
BOUND_S = 1.0  # trigger -> exit at the venue; the income read alone paces 1.5 s


@pytest_asyncio.fixture
async def live() -> AsyncIterator[Live]:
    rig = await start_live(
        key=KEY,
        secret=SECRET,
        seed=7,
        native=False,  # the engine watches the book and sends the exit itself
        live={"enable_rate_limit": True},
        reconcile_interval_s=0.2,  # a periodic reconciliation (and funding sync) all the time
    )
    try:
        yield rig
    finally:
        await rig.stop()


def count(live: Live, method: str, path: str) -> int:
    return live.venue.requests.count((method, path))


@pytest.mark.asyncio
async def test_a_stop_loss_exit_reaches_the_venue_at_once_while_reconciliation_reads_wait(
    live: Live,
) -> None:
    """The stop triggers right after the periodic funding read left (ccxt now paces the next
    request 1.5 s): the exit reaches the venue within 1 s of the trigger (4.0 s before the
    fix), ahead of the reconciliation's next read, and its fill is booked within 1 s too."""
    engine, venue = live.engine, live.venue
    await enter(engine, "buy", stop_loss="19400")
    pos = engine.portfolio.positions[(EX, PERP)]
    assert pos.amount == D("0.1")
    income = count(live, "GET", INCOME)
    await wait_until(lambda: count(live, "GET", INCOME) > income, timeout=20, message="income")
    mark = len(venue.requests)
    posts = count(live, "POST", ORDER)
    venue.set_price(VENUE_ID, D(19300))
    started = time.monotonic()
    top(live.hub, 19300.0)  # the bid crosses the stop: a reduce-only market exit
    await wait_until(lambda: count(live, "POST", ORDER) > posts, timeout=20, message="exit")
    sent = time.monotonic() - started
    await wait_until(lambda: pos.amount == 0, timeout=20, message="exit booked")
    booked = time.monotonic() - started
    assert sent < BOUND_S, f"the exit waited {sent:.2f} s for ccxt's pacing"
    assert booked < BOUND_S, f"the exit's fill was booked {booked:.2f} s after the trigger"

    def lists() -> list[int]:
        after = venue.requests[mark:]
        return [i for i, (m, p) in enumerate(after) if m == "GET" and p in LISTS]

    await wait_until(lambda: bool(lists()), timeout=20, message="the reconciliation's next read")
    after = venue.requests[mark:]
    assert after.index(("POST", ORDER)) < lists()[0], after  # not queued behind that read
    assert venue.book.orders[-1]["reduceOnly"] is True


@pytest.mark.asyncio
async def test_the_periodic_reconciliation_asks_open_orders_per_traded_symbol(
    live: Live,
) -> None:
    """After the startup run (one call for every market) the periodic reconciliation never
    lists open orders without a symbol (weight 40 at Binance USD-M): one call per traded
    symbol (weight 1), regular and conditional ones."""
    venue = live.venue
    mark = len(venue.requests)
    lists = sum(count(live, "GET", p) for p in LISTS)
    await wait_until(
        lambda: sum(count(live, "GET", p) for p in LISTS) >= lists + 4,
        timeout=20,
        message="two periodic reconciliations",
    )
    asked = [
        symbol
        for (method, path), symbol in zip(venue.requests[mark:], venue.symbols[mark:], strict=True)
        if method == "GET" and path in LISTS
    ]
    assert len(asked) >= 4
    assert set(asked) == {VENUE_ID}, asked
