"""Proxies: a feed's websocket and REST traffic and the ccxt broker's requests go through
``exchanges[].proxy`` / ``trading.live.proxy`` to the simulator. The proxy is written here:
HTTP CONNECT tunnels (websockets) and absolute-form forwarding (plain HTTP requests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from cryptomon.clock import LiveClock
from cryptomon.config import ExchangeConfig, LiveTradingConfig
from cryptomon.errors import ConfigError
from cryptomon.events import Trade
from cryptomon.feeds.manager import FeedManager, build_sources
from cryptomon.hub import Hub
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from cryptomon.sim.venue import install
from cryptomon.trading.brokers.ccxt import CcxtBroker
from tests.util import wait_until

KEY, SECRET = "proxy-key", "proxy-secret"


class HttpProxy:
    """A forward proxy on loopback; ``seen`` lists each request line it relayed."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode()
            self.seen.append(line)
            method, target, _ = line.split(" ", 2)
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:  # absolute-form, one request per connection (so each one is seen here)
                authority = target.split("://", 1)[1].split("/", 1)[0]
                host, port = authority.rsplit(":", 1)
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                up_writer.write(_closing(head))
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(OSError, RuntimeError):
            dst.write_eof()


def _closing(head: bytes) -> bytes:
    """The request head with ``Connection: close`` (the origin accepts the absolute form)."""
    lines = [
        line
        for line in head.rstrip(b"\r\n").split(b"\r\n")
        if not line.lower().startswith((b"connection:", b"proxy-connection:", b"keep-alive:"))
    ]
    return b"\r\n".join([*lines, b"Connection: close", b"", b""])


@pytest_asyncio.fixture
async def proxy() -> AsyncIterator[HttpProxy]:
    server = HttpProxy()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[SimExchange]:
    exchange = SimExchange(MarketModel(["BTC-USDT"], seed=4), interval=0.05)
    install(exchange, api_key=KEY, api_secret=SECRET, balances={"USDT": Decimal(1_000)})
    await exchange.start()
    try:
        yield exchange
    finally:
        await exchange.stop()


def _origin(sim: SimExchange) -> str:
    return sim.rest_url.split("://", 1)[1].rstrip("/")


@pytest.mark.asyncio
async def test_feed_websocket_and_rest_go_through_the_proxy(
    sim: SimExchange, proxy: HttpProxy
) -> None:
    """The symbol list, the book snapshot and the websocket of a simulator feed with
    ``proxy`` all pass the proxy, and trades arrive."""
    hub = Hub()
    trades: list[Trade] = []
    hub.subscribe(Trade, trades.append)
    cfg = ExchangeConfig(
        name="simulator",
        url=sim.rest_url,
        symbols=["BTC-USDT"],
        subscriptions=["trades", "orderbook"],
        proxy=proxy.url,
    )
    clock = LiveClock()
    manager = FeedManager(build_sources([cfg], hub=hub, clock=clock), hub=hub, clock=clock)
    await manager.start()
    try:
        await wait_until(lambda: len(trades) >= 3, timeout=20, message="trades via the proxy")
    finally:
        await manager.stop()
    origin = _origin(sim)
    assert f"CONNECT {origin} HTTP/1.1" in proxy.seen  # the websocket
    assert any(line.startswith(f"GET http://{origin}/api/v3/exchangeInfo") for line in proxy.seen)
    assert any(line.startswith(f"GET http://{origin}/api/v3/depth") for line in proxy.seen)


@pytest.mark.asyncio
async def test_ccxt_broker_goes_through_the_proxy(sim: SimExchange, proxy: HttpProxy) -> None:
    """Every request of the live broker (markets, time, signed account) passes the proxy."""
    cfg = LiveTradingConfig(
        exchange="binance", api_key=KEY, secret=SECRET, url=sim.rest_url, proxy=proxy.url
    )
    broker = CcxtBroker(cfg, exchange_name="simulator")
    await broker.start()
    try:
        balances = await broker.fetch_balances()
    finally:
        await broker.stop()
    assert balances["USDT"] == Decimal(1_000)
    origin = _origin(sim)
    for path in ("/api/v3/exchangeInfo", "/api/v3/time", "/api/v3/account"):
        assert any(line.startswith(f"GET http://{origin}{path}") for line in proxy.seen), path


def test_socks_proxy_without_its_packages_is_a_config_error() -> None:
    """A SOCKS proxy without the SOCKS packages installed is one clear config problem."""
    cfg = LiveTradingConfig(exchange="binance", proxy="socks5://127.0.0.1:1080")
    with pytest.raises(ConfigError, match=r"trading\.live\.proxy.*cryptomon\[socks\]"):
        CcxtBroker(cfg)._build()
