"""A live Fill on the WebSocket carries the venue's order id even when the venue's trade
does not: the order engine with the ccxt broker on the simulator (real ccxt ``binance`` code,
real HTTP), behind a running API server, with a WebSocket client on the ``orders`` channel."""

from __future__ import annotations

from typing import Any

import pytest

from cryptomon.events import OrderState
from cryptomon.sim.trading import Fault
from tests.integration.api.conftest import StartApi
from tests.integration.api.test_ws import connect, send, subscribe
from tests.integration.test_trading_ccxt_engine import Rig, buy, rig  # noqa: F401
from tests.util import wait_until


@pytest.mark.asyncio
async def test_a_fill_read_from_trades_without_order_ids_names_its_order(
    rig: Rig,  # noqa: F811
    start_api: StartApi,
) -> None:
    """The venue accepts a market buy but the answer is lost, so the engine looks the order
    up and reads its fills from the account's trades, which this venue lists without their
    order id. The Fill sent on the WebSocket names the venue's order id all the same (the
    one the lookup gave the order), as the REST read of the stored fill does."""
    rig.endpoints.trades_without_order_id = True
    api = await start_api(hub=rig.hub, market=rig.engine.context.market, trading=rig.engine)
    ws = await connect(api)
    ack = await send(ws, subscribe("orders"))
    assert ack["channel"] == "subscribed"
    rig.endpoints.faults.add(Fault(kind="drop", after_accept=True))
    record = await rig.engine.executor.submit(buy("ws-fill"))
    assert record.state is OrderState.UNKNOWN
    await wait_until(lambda: record.state is OrderState.FILLED, message="settled by lookup")
    assert record.exchange_order_id
    fills: list[dict[str, Any]] = []
    while not fills:
        msg = await ws.receive_json(timeout=10)
        if msg["data"]["type"] == "Fill":
            fills.append(msg["data"])
    (fill,) = fills
    assert fill["client_order_id"] == record.client_order_id
    assert fill["exchange_order_id"] == record.exchange_order_id
    await ws.close()
