"""``SimExchange``: a loopback exchange speaking the Binance public spot subset cryptofeed uses.

REST (plain HTTP):
  ``GET /api/v3/exchangeInfo`` -- the simulated symbols (status TRADING, PRICE_FILTER tick);
  ``GET /api/v3/depth?symbol=BTCUSDT&limit=N`` -- a snapshot with ``lastUpdateId``.
WebSocket: ``GET /stream?streams=btcusdt@aggTrade/btcusdt@depth@100ms/btcusdt@bookTicker/
btcusdt@kline_1m`` -- Binance combined streams ``{"stream": ..., "data": ...}``; depth diffs
carry contiguous ``U``/``u`` update ids, so snapshot + diffs reproduce the book exactly.

The model (:class:`~cryptomon.sim.market.MarketModel`) is stepped every ``interval`` seconds
of the injected :class:`~cryptomon.clock.Clock`. With a :class:`~cryptomon.clock.ManualClock`
a driver runs scenarios at full speed with :meth:`SimExchange.advance` (steps the model and
sends every message, no waiting); with a live clock :meth:`start` runs the stepping task.

For other subsystems:
- ``sim.app.router`` / :meth:`SimExchange.add_routes` add routes BEFORE :meth:`start`
  (e.g. order endpoints of the trading engineer's ``sim/trading.py``).
- ``sim.market`` is the model: ``sim.market.book(symbol, depth)`` -> best-first bids/asks
  lists of ``(price, size)`` floats; ``sim.apply_trade(symbol, side, amount)`` consumes
  liquidity like a taker order, returns the ``(price, size)`` fills, and the fills appear as
  public ``aggTrade`` messages and book diffs.
- ``sim.rest_url`` (``http://127.0.0.1:PORT``) and ``sim.ws_url`` (``ws://127.0.0.1:PORT``);
  the cryptomon exchange config is ``{name: simulator, url: sim.rest_url}``.
- Faults (used by :mod:`cryptomon.sim.scenarios`): :meth:`stall`, :meth:`disconnect`,
  :meth:`gap`, :meth:`malformed`, :meth:`crossed`, :meth:`bad_print`, :meth:`silence` (one
  symbol), :meth:`delist`; :meth:`add_step_hook` runs a callable at every step.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from cryptomon.clock import Clock, LiveClock
from cryptomon.sim import protocol
from cryptomon.sim.market import MarketModel, Side, SimTrade
from cryptomon.tasks import cancel_and_wait

log = structlog.get_logger()

CHANNELS = ("aggTrade", "depth", "bookTicker", "kline")
StepHook = Callable[["SimExchange", float], Awaitable[None] | None]


class _Client:
    """One websocket connection and the (exchange symbol, channel) pairs it subscribed to."""

    __slots__ = ("streams", "ws")

    def __init__(self, ws: web.WebSocketResponse, streams: dict[tuple[str, str], str]) -> None:
        self.ws = ws
        self.streams = streams  # (EXCHSYM, channel) -> stream name as requested


class SimExchange:
    """The loopback exchange; see the module docstring."""

    name = "sim-exchange"

    def __init__(
        self,
        market: MarketModel | None = None,
        *,
        clock: Clock | None = None,
        interval: float = 0.1,
        kline_every_s: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.market = market or MarketModel()
        self.clock = clock or LiveClock()
        self.interval = interval
        self.kline_every_s = kline_every_s
        self.host = host
        self.port = port
        self.app = web.Application()
        self.app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        self.app.router.add_get("/api/v3/depth", self._depth)
        self.app.router.add_get("/stream", self._stream)
        self.clients: list[_Client] = []
        self.connections = 0  # websocket connections accepted so far
        self.snapshots = 0  # depth snapshots served so far
        self.messages_sent = 0
        self._hooks: list[StepHook] = []
        self._stalled: dict[str, float] = {}  # channel ("*" = all) -> until (clock time)
        self._silent: dict[str, float] = {}  # EXCHSYM -> until (clock time): one quiet symbol
        self.delisted: set[str] = set()  # EXCHSYM no longer listed nor streamed
        self._candles = protocol.Candles()
        self._last_kline = 0.0
        self._last_top: dict[str, tuple[int, float, int, float]] = {}
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        """Add aiohttp routes (call before :meth:`start`)."""
        self.app.router.add_routes(list(routes))

    def add_step_hook(self, hook: StepHook) -> None:
        """Call ``hook(sim, now)`` (sync, or returning an awaitable) at the start of every step."""
        self._hooks.append(hook)

    async def start(self, *, run: bool = True) -> None:
        """Listen on ``host:port`` (0 = ephemeral); with ``run`` also step the model in a task."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._last_kline = self.clock.time()
        if run:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="sim-exchange")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self.disconnect()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def _run(self) -> None:
        while True:
            await self.clock.sleep(self.interval)
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the simulator must keep going for the tests around it
                log.error("sim.step_failed", error=repr(exc), exc_info=exc)

    async def advance(self, seconds: float) -> None:
        """Drive a ManualClock-based simulator ``seconds`` forward at full speed."""
        set_time = getattr(self.clock, "set", None)
        if set_time is None:
            raise TypeError("advance() needs a controllable clock (ManualClock)")
        end = self.clock.time() + seconds
        while self.clock.time() + self.interval <= end + 1e-9:
            set_time(self.clock.time() + self.interval)
            await self.step()

    # ------------------------------------------------------------------ the model

    async def step(self) -> None:
        """One model step: hooks, model, then every resulting message to every client."""
        now = self.clock.time()
        for hook in list(self._hooks):
            result = hook(self, now)
            if inspect.isawaitable(result):
                await result
        self.market.step(self.interval, now)
        await self.flush(now)

    def apply_trade(self, symbol: str, side: Side, amount: float) -> list[tuple[float, float]]:
        """A taker order against the simulated book (fills are published on the next flush)."""
        return self.market.apply_trade(symbol, side, amount, self.clock.time())

    async def flush(self, now: float | None = None) -> None:
        """Send every trade, book diff, top change and (periodically) kline produced so far."""
        now = self.clock.time() if now is None else now
        ms = int(now * 1000)
        kline_due = now - self._last_kline >= self.kline_every_s
        if kline_due:
            self._last_kline = now
        out: list[tuple[str, str, dict[str, Any]]] = []  # (EXCHSYM, channel, data)
        for m in self.market.markets.values():
            sym = m.spec.exchange_symbol
            for t in m.take_trades():
                self._candles.add(m.spec.symbol, t.price, t.amount, now)
                out.append((sym, "aggTrade", protocol.agg_trade(m, t, ms)))
            changes = m.take_changes()
            if changes is not None:
                out.append((sym, "depth", protocol.depth_update(m, changes, ms)))
            top = (m.best_bid, m.bids[m.best_bid], m.best_ask, m.asks[m.best_ask])
            if self._last_top.get(sym) != top:
                self._last_top[sym] = top
                out.append((sym, "bookTicker", protocol.book_ticker(m)))
            if kline_due:
                candle = self._candles.current(m.spec.symbol, now, m.price(round(m.mid_ticks)))
                out.append((sym, "kline", protocol.kline(m, candle, now)))
        await self._broadcast(out, now)

    async def _broadcast(self, out: list[tuple[str, str, dict[str, Any]]], now: float) -> None:
        if not out or not self.clients:
            return
        for client in list(self.clients):
            for sym, channel, data in out:
                stream = client.streams.get((sym, channel))
                if stream is None or self._is_stalled(channel, now) or self._is_quiet(sym, now):
                    continue
                await self.send_raw(client, json.dumps({"stream": stream, "data": data}))

    async def send_raw(self, client: _Client, text: str) -> None:
        if client.ws.closed:
            return
        try:
            await client.ws.send_str(text)
            self.messages_sent += 1
        except (ConnectionError, RuntimeError):
            with contextlib.suppress(ValueError):
                self.clients.remove(client)

    # ------------------------------------------------------------------ faults

    def stall(self, seconds: float, channels: Iterable[str] = ("*",)) -> None:
        """Send nothing on ``channels`` (``*`` = all) for ``seconds`` of clock time."""
        until = self.clock.time() + seconds
        for ch in channels:
            self._stalled[ch] = until

    def _is_stalled(self, channel: str, now: float) -> bool:
        return self._stalled.get(channel, 0.0) > now or self._stalled.get("*", 0.0) > now

    def _is_quiet(self, sym: str, now: float) -> bool:
        return sym in self.delisted or self._silent.get(sym, 0.0) > now

    def silence(self, symbol: str, seconds: float) -> None:
        """Send nothing for ``symbol`` alone for ``seconds`` of clock time (the others go on)."""
        sym = self.market.market(symbol).spec.exchange_symbol
        self._silent[sym] = self.clock.time() + seconds

    def delist(self, symbol: str) -> None:
        """``symbol`` leaves ``exchangeInfo`` and its streams go silent, for good."""
        self.delisted.add(self.market.market(symbol).spec.exchange_symbol)

    async def bad_print(self, symbol: str, price: float, amount: float = 0.01) -> None:
        """Send one public trade at ``price`` (any value, the book untouched): a venue's bad
        print. It takes the symbol's next trade id."""
        m = self.market.market(symbol)
        m.trade_id += 1
        now = self.clock.time()
        trade = SimTrade(m.trade_id, price, amount, "buy", now)
        data = protocol.agg_trade(m, trade, int(now * 1000))
        data["p"] = repr(price)  # exactly as given (1e308 too), not rounded to the tick
        sym = m.spec.exchange_symbol
        for client in list(self.clients):
            stream = client.streams.get((sym, "aggTrade"))
            if stream is not None:
                await self.send_raw(client, json.dumps({"stream": stream, "data": data}))

    async def disconnect(self) -> None:
        """Close every websocket connection from the server side."""
        clients, self.clients = self.clients, []
        for c in clients:
            with contextlib.suppress(Exception):
                await c.ws.close()

    def gap(self, symbol: str, skip: int = 5) -> None:
        """Skip ``skip`` depth update ids of ``symbol``: the next diff does not connect."""
        self.market.market(symbol).take_changes()  # those changes are lost, as in a lost packet
        self.market.market(symbol).skip_ids(skip)

    async def crossed(self, symbol: str) -> None:
        """Send a depth diff that puts a bid above the best ask (bad exchange data; the model's
        own book stays consistent, so a client that re-snapshots is whole again)."""
        await self.flush()
        m = self.market.market(symbol)
        m.skip_ids(1)  # the bad diff takes the next update id: the stream stays contiguous
        sym = m.spec.exchange_symbol
        data = {
            "e": "depthUpdate",
            "E": int(self.clock.time() * 1000),
            "s": sym,
            "U": m.update_id,
            "u": m.update_id,
            "b": [[m.fmt(m.price(m.best_ask + 1)), "1.00000000"]],
            "a": [],
        }
        for client in list(self.clients):
            stream = client.streams.get((sym, "depth"))
            if stream is not None:
                await self.send_raw(client, json.dumps({"stream": stream, "data": data}))

    async def malformed(self, symbol: str, text: str | None = None) -> None:
        """Send a message the client cannot parse on the symbol's trade stream."""
        sym = self.market.market(symbol).spec.exchange_symbol
        for client in list(self.clients):
            stream = client.streams.get((sym, "aggTrade")) or next(
                iter(client.streams.values()), None
            )
            if stream is None:
                continue
            bad = text or json.dumps(
                {"stream": stream, "data": {"e": "aggTrade", "s": sym, "p": "not-a-number"}}
            )
            await self.send_raw(client, bad)

    # ------------------------------------------------------------------ HTTP handlers

    async def _exchange_info(self, request: web.Request) -> web.Response:
        markets = [
            m for m in self.market.markets.values() if m.spec.exchange_symbol not in self.delisted
        ]
        return web.json_response(protocol.exchange_info(markets, int(self.clock.time() * 1000)))

    async def _depth(self, request: web.Request) -> web.Response:
        m = self.market.by_exchange_symbol(request.query.get("symbol", ""))
        if m is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            return web.json_response(
                {"code": -1100, "msg": "Illegal characters in parameter 'limit'."}, status=400
            )
        self.snapshots += 1
        return web.json_response(protocol.depth_snapshot(m, limit))

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        streams: dict[tuple[str, str], str] = {}
        for name in request.query.get("streams", "").split("/"):
            sym, _, chan = name.partition("@")
            channel = chan.split("@", 1)[0].split("_", 1)[0]
            if channel in CHANNELS and self.market.by_exchange_symbol(sym) is not None:
                streams[(sym.upper(), channel)] = name
        if not streams:
            return web.json_response({"code": -1121, "msg": "Invalid streams."}, status=400)
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        client = _Client(ws, streams)
        self.clients.append(client)
        self.connections += 1
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            with contextlib.suppress(ValueError):
                self.clients.remove(client)
        return ws
