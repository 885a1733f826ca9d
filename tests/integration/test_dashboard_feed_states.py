"""The markets overview's per-market feed state and quarantined prints, from the real feed
(cryptofeed against the simulator, the quality layer, MarketState) through the API server:
a bad print is counted on its market only, a delisted market says delisted, the others live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from cryptomon.api import ApiServer
from cryptomon.clock import LiveClock
from cryptomon.events import FlaggedTrade
from cryptomon.hub import Hub
from cryptomon.market.refresh import InstrumentRefresher
from tests.integration.api.conftest import READ, api_config, bearer
from tests.integration.test_market_quality_sim import Rig, make_rig, trades_flowing
from tests.util import wait_until


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[Rig, ApiServer, aiohttp.ClientSession]]:
    rig = await make_rig()
    await rig.manager.start()
    hub = Hub()
    server = ApiServer(
        config=api_config(), hub=hub, clock=LiveClock(), market=rig.state, feeds=rig.manager
    )
    await hub.start()
    await server.start()
    http = aiohttp.ClientSession()
    try:
        await wait_until(lambda: rig.sim.clients, message="cryptofeed connected")
        yield rig, server, http
    finally:
        await http.close()
        await server.stop()
        await hub.stop(1.0)
        await rig.manager.stop()
        await rig.sim.stop()


async def overview(server: ApiServer, http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get(server.url + "/api/v1/markets/overview", headers=bearer(READ)) as r:
        assert r.status == 200, await r.text()
        body = await r.json()
    return {m["symbol"]: m for m in body["markets"]}


@pytest.mark.asyncio
async def test_overview_counts_quarantined_prints_per_market(
    served: tuple[Rig, ApiServer, aiohttp.ClientSession],
) -> None:
    """Two bad BTC prints: BTC's row counts 2 quarantined, ETH's 0; both live."""
    rig, server, http = served
    await trades_flowing(rig, "BTC-USDT")
    await trades_flowing(rig, "ETH-USDT")
    price = rig.sim.market.market("BTC-USDT").mid * 10
    await rig.sim.bad_print("BTC-USDT", price)
    await rig.sim.bad_print("BTC-USDT", price * 2)
    await wait_until(lambda: len(rig.of(FlaggedTrade)) >= 2, message="flagged prints")
    rows = await overview(server, http)
    assert rows["BTC-USDT"]["quarantined"] == 2
    assert rows["ETH-USDT"]["quarantined"] == 0
    assert rows["BTC-USDT"]["state"] == rows["ETH-USDT"]["state"] == "live"
    assert rig.manager.health()["simulator"]["quarantined"] == {"BTC-USDT": 2}


@pytest.mark.asyncio
async def test_overview_says_delisted_for_a_market_delisted_mid_run(
    served: tuple[Rig, ApiServer, aiohttp.ClientSession],
) -> None:
    """An instrument refresh that no longer finds ETH: ETH's row is delisted, BTC live."""
    rig, server, http = served
    await trades_flowing(rig, "BTC-USDT", 5)
    await trades_flowing(rig, "ETH-USDT", 5)
    rig.sim.delist("ETH-USDT")
    refresher = InstrumentRefresher(
        registry=rig.registry,
        exchanges=["simulator"],
        clock=LiveClock(),
        interval_s=3600,
        on_delisted=rig.manager.on_delisted,
    )
    await refresher.refresh_once()
    await wait_until(lambda: rig.state.is_delisted("simulator", "ETH-USDT"), message="delisted")
    rows = await overview(server, http)
    assert rows["ETH-USDT"]["state"] == "delisted"
    assert rows["ETH-USDT"]["stale"] is True
    assert rows["BTC-USDT"]["state"] == "live"
