"""A brain checks webhook signals against the markets its collectors watch, as the single
process checks them against its own feeds (on the shared nats-server, 127.0.0.1:4222, with
names of the test's own): each collector's health carries its markets, a collector silent for
three health intervals no longer counts, and before any collector has reported the brain
answers 503 rather than 'accepted' for a signal that could never trade."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest

from cryptomon.api import ApiServer
from cryptomon.app import App, build_app
from cryptomon.bus.connect import events_stream, meta_stream
from cryptomon.bus.source import BusFeedSource
from cryptomon.config import BusConfig, load_settings
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from tests.integration.bus_support import bus_section
from tests.util import wait_until

pytestmark = pytest.mark.timeout(90)

NATS_URL = "nats://127.0.0.1:4222"
SECRET = "any-webhook-secret-0123456789"


class Rig:
    """A brain with one webhook (no symbols, no trading.exchange) and collectors started on
    demand, all in this process, on the test's own subjects, streams and bucket."""

    def __init__(self, tmp: Path, sim: SimExchange, **bus: Any) -> None:
        self.tmp = tmp
        self.sim = sim
        self.bus = bus_section(NATS_URL, **bus)
        self.brain: App | None = None
        self.collectors: dict[str, App] = {}
        self.http = aiohttp.ClientSession()
        self.url = ""

    async def start_brain(self) -> None:
        settings = load_settings(
            data={
                "bus": {**self.bus, "role": "brain"},
                "database": {"url": f"sqlite+aiosqlite:///{self.tmp / 'brain.db'}"},
                "data_dir": str(self.tmp),
                "api": {"port": 0},
                "trading": {"webhooks": [{"name": "any", "secret": SECRET, "max_per_minute": 600}]},
            }
        )
        self.brain = build_app(settings)
        (api,) = [c for c in self.brain.components if isinstance(c, ApiServer)]
        await self.brain.start()
        self.url = f"{api.url}/api/v1/signals/webhook/any?token={SECRET}"

    @property
    def source(self) -> BusFeedSource:
        assert self.brain is not None
        assert self.brain.services.feeds is not None
        (source,) = self.brain.services.feeds.sources
        assert isinstance(source, BusFeedSource)
        return source

    async def start_collector(self, name: str, symbols: list[str]) -> None:
        settings = load_settings(
            data={
                "bus": {**self.bus, "role": "collector", "collector_id": name},
                "exchanges": [{"name": "simulator", "url": self.sim.rest_url, "symbols": symbols}],
                "api": {"enabled": False},
            }
        )
        app = build_app(settings)
        await app.start()
        self.collectors[name] = app

    async def stop_collector(self, name: str) -> None:
        assert await self.collectors.pop(name).stop()

    async def send(self, **body: Any) -> tuple[int, Any]:
        body = {"side": "buy", "strength": 0.3, "exchange": "simulator", **body}
        async with self.http.post(self.url, json=body) as resp:
            answer = await resp.json()
            if resp.status == 503:  # a sender may try again, and is told when
                assert resp.headers["Retry-After"] == "5", answer
            return resp.status, answer

    async def status(self, symbol: str) -> int:
        return (await self.send(symbol=symbol))[0]

    async def close(self) -> None:
        for name in list(self.collectors):
            await self.stop_collector(name)
        if self.brain is not None:
            await self.brain.stop()
        await self.http.close()
        config = BusConfig.model_validate(self.bus)
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        for stream in (config.stream, meta_stream(config), events_stream(config)):
            with contextlib.suppress(Exception):
                await js.delete_stream(stream)
        with contextlib.suppress(Exception):
            await js.delete_key_value(self.bus["lease_bucket"])
        await nc.close()


@contextlib.asynccontextmanager
async def rig(tmp: Path, **bus: Any) -> AsyncIterator[Rig]:
    sim = SimExchange(MarketModel(["BTC-USDT", "ETH-USDT"], seed=3), interval=0.05)
    await sim.start()
    setup = Rig(tmp, sim, **bus)
    try:
        yield setup
    finally:
        await setup.close()
        await sim.stop()


def field_of(answer: Any) -> dict[str, str]:
    (field,) = answer["error"]["details"]["fields"]
    return dict(field)


@pytest.mark.asyncio
async def test_a_brain_refuses_markets_no_collector_watches(tmp_path: Path) -> None:
    """Before any collector reported: 503 'not known yet' (never 'accepted'); then a market
    the collector does not watch, or another exchange, is 422 naming the field; a watched
    one is accepted, and TradingView's BTCUSDT reads as the collector's BTC-USDT."""
    async with rig(tmp_path) as setup:
        await setup.start_brain()
        status, answer = await setup.send(symbol="BTC-USDT")
        assert status == 503, answer
        assert answer["error"]["code"] == "markets_unknown", answer
        assert "not known yet" in answer["error"]["message"]
        status, answer = await setup.send(symbol="BTCUSDT")  # the same, not a separator 422
        assert status == 503, answer
        assert setup.brain is not None
        assert setup.brain.services.webhooks is not None
        assert setup.brain.services.webhooks.accepted == 0

        await setup.start_collector("c1", ["BTC/USDT"])
        await wait_until(lambda: "c1" in setup.source.bus_health.collectors, message="health")
        status, answer = await setup.send(symbol="DOGE-USDT")
        assert status == 422, answer
        field = field_of(answer)
        assert field["field"] == "body.symbol"
        assert "DOGE-USDT" in field["message"]
        assert "BTC-USDT" in field["message"]
        status, answer = await setup.send(symbol="BTC-USDT", exchange="kraken")
        assert status == 422, answer
        field = field_of(answer)
        assert field["field"] == "body.exchange"
        assert "simulator" in field["message"]
        assert setup.brain.services.webhooks.accepted == 0
        status, answer = await setup.send(symbol="BTC-USDT")
        assert (status, answer["status"]) == (200, "accepted"), answer
        status, answer = await setup.send(symbol="BTCUSDT")
        assert (status, answer["status"]) == (200, "accepted"), answer
        assert answer["symbol"] == "BTC-USDT"
        status, answer = await setup.send(symbol="ETHUSDT")  # no collector watches ETH-USDT
        assert status == 422, answer
        assert field_of(answer)["field"] == "body.symbol"


@pytest.mark.asyncio
async def test_a_collector_that_stops_no_longer_counts_after_its_ttl(tmp_path: Path) -> None:
    """Two collectors watch one market each: both are accepted (the union); once one stops,
    its market is refused after three health intervals while the other's is still accepted;
    with none left the brain answers 503 again."""
    async with rig(tmp_path) as setup:
        await setup.start_brain()
        await setup.start_collector("c1", ["BTC/USDT"])
        await setup.start_collector("c2", ["ETH/USDT"])
        await wait_until(
            lambda: {"c1", "c2"} <= set(setup.source.bus_health.collectors), message="health"
        )
        assert await setup.status("ETHUSDT") == 200
        assert await setup.status("BTC-USDT") == 200

        await setup.stop_collector("c2")

        async def eth_refused() -> bool:
            return await setup.status("ETH-USDT") == 422

        await wait_until(eth_refused, timeout=10, interval=0.05, message="c2 aged out")
        assert await setup.status("BTC-USDT") == 200
        status, answer = await setup.send(symbol="ETHUSDT")
        assert status == 422, answer

        await setup.stop_collector("c1")

        async def unknown() -> bool:
            return await setup.status("BTC-USDT") == 503

        await wait_until(unknown, timeout=10, interval=0.05, message="c1 aged out")


@pytest.mark.asyncio
async def test_a_collector_health_without_markets_counts_its_exchanges(tmp_path: Path) -> None:
    """A collector of an earlier version reports no markets: each exchange of its feeds
    counts with any symbol (as a recording's feed does in the single process); a malformed
    markets entry is counted as bad and changes nothing."""
    async with rig(tmp_path, health_interval_s=5.0) as setup:  # silent after 15 s
        await setup.start_brain()
        nc = await nats.connect(NATS_URL)
        subject = f"{setup.bus['subject_prefix']}.health.old"
        try:
            bad = {"collector_id": "bad", "ts": 0, "feeds": {"kraken": {}}, "markets": ["x"]}
            await nc.publish(subject, json.dumps(bad).encode())
            old = {"collector_id": "old", "ts": 0, "feeds": {"simulator": {"state": "live"}}}
            await nc.publish(subject, json.dumps(old).encode())
            await nc.flush()
            await wait_until(lambda: "old" in setup.source.bus_health.collectors, message="old")
            assert setup.source.counters["bad"] == 1
            status, answer = await setup.send(symbol="DOGE-USDT")
            assert (status, answer["status"]) == (200, "accepted"), answer
            status, answer = await setup.send(symbol="DOGE-USDT", exchange="kraken")
            assert status == 422, answer
        finally:
            await nc.close()


@pytest.mark.asyncio
async def test_a_brain_started_after_its_collectors_knows_their_markets_at_once(
    tmp_path: Path,
) -> None:
    """The collector runs before the brain, with a health interval of 60 s: the brain asks
    for the collectors' health when it starts, so it accepts the watched market without
    waiting for the collector's next report (and still refuses another)."""
    async with rig(tmp_path, health_interval_s=60.0) as setup:
        await setup.start_collector("c1", ["BTC/USDT"])
        await setup.start_brain()
        await wait_until(
            lambda: "c1" in setup.source.bus_health.collectors, timeout=10, message="health"
        )
        status, answer = await setup.send(symbol="BTCUSDT")
        assert (status, answer["status"]) == (200, "accepted"), answer
        status, answer = await setup.send(symbol="ETH-USDT")
        assert status == 422, answer
