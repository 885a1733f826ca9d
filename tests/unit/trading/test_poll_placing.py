"""The order poll leaves an order whose placement is on its way to the placement's answer:
a lookup then races the POST (the venue may not know the order yet, or answers after it)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from cryptomon.events import OrderState
from tests.unit.trading.helpers import EX, SYM
from tests.unit.trading.test_engine_orders import scripted_engine
from tests.util import wait_until


@pytest.mark.asyncio
async def test_the_poll_never_looks_up_an_order_being_placed() -> None:
    engine, broker, _, _, _ = scripted_engine()
    await engine.start()
    broker.mode = "hang"  # the venue takes the order; its answer has not come back yet
    placing = asyncio.create_task(
        engine.controls.place_manual_order(
            actor="test",
            exchange=EX,
            symbol=SYM,
            side="buy",
            amount="1",
            type="limit",
            price="99",
        )
    )
    await wait_until(lambda: sum(broker.calls.values()) == 1, message="placement sent")
    [record] = engine.book.open()
    assert record.state == OrderState.NEW
    before = broker.lookups
    await engine.poller.poll_orders()
    assert broker.lookups == before  # no GET racing the POST
    placing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await placing
    await engine.stop()
