"""Binance USD-M market streams of the simulator's USD-M venue (:mod:`cryptomon.sim.usdm`): what
cryptofeed's ``BINANCE_FUTURES`` feed subscribes to.

WebSocket ``GET /fstream/stream?streams=btcusdt@aggTrade/btcusdt@depth@100ms/btcusdt@bookTicker/
btcusdt@markPrice/btcusdt@forceOrder`` (Binance's ``wss://fstream.binance.com/stream``, under a
``/fstream`` prefix because the simulator's spot streams own ``/stream``): combined-stream
frames ``{"stream": ..., "data": ...}`` with the futures payloads (``aggTrade``,
``depthUpdate`` with ``U``/``u``/``pu``, ``bookTicker`` with ``E``/``T``, ``markPriceUpdate``
with the funding rate and next funding time, ``forceOrder``).

The book is five levels a side, one tick apart around the venue's price, five contracts each:
every :meth:`UsdmStreams.on_price` sends the diff against the previous book with the next
update id (``pu`` = the previous ``u``), the top as ``bookTicker`` and the mark with the
funding; ``GET /fapi/v1/depth`` answers the same book with the current ``lastUpdateId``, so
cryptofeed's snapshot + diffs reproduce it. Public trades (:meth:`UsdmStreams.trade`: the
venue's own fills and test prints) and liquidations (:meth:`UsdmStreams.liquidation`) go to the
subscribers of their symbol.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from cryptomon.tasks import cancel_and_wait

WS_PATH = "/fstream/stream"
TICK = Decimal("0.1")
LEVELS = 5
SIZE = Decimal(5)
FUNDING_PERIOD_MS = 8 * 3600 * 1000
CHANNELS = {
    "aggTrade": "aggTrade",
    "depth": "depth",
    "bookTicker": "bookTicker",
    "markPrice": "markPrice",
    "forceOrder": "forceOrder",
}
Book = tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]


def book_at(price: Decimal) -> Book:
    """Bids and asks (price -> contracts) around ``price``: one tick apart, mid = price."""
    bids = {price - TICK * (i + 1): SIZE for i in range(LEVELS)}
    asks = {price + TICK * (i + 1): SIZE for i in range(LEVELS)}
    return bids, asks


def _diff(old: dict[Decimal, Decimal], new: dict[Decimal, Decimal]) -> list[list[str]]:
    gone = [[str(p), "0"] for p in old if p not in new]
    changed = [[str(p), str(s)] for p, s in new.items() if old.get(p) != s]
    return gone + changed


@dataclass
class _Client:
    streams: dict[tuple[str, str], str]  # (SYMBOL, channel) -> stream name as requested
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)


class UsdmStreams:
    """The public market streams of the USD-M venue; see the module docstring."""

    def __init__(self, *, funding_rate: Decimal = Decimal("0.0001")) -> None:
        self.funding_rate = funding_rate
        self.books: dict[str, Book] = {}
        self.update_ids: dict[str, int] = {}
        self.clients: list[_Client] = []
        self._agg = 0

    def route(self) -> web.RouteDef:
        return web.get(WS_PATH, self._stream)

    # ------------------------------------------------------------------ the market

    def depth(self, symbol: str, price: Decimal) -> dict[str, Any]:
        """``GET /fapi/v1/depth``: the streamed book and its last update id."""
        if symbol not in self.books:
            self.books[symbol] = book_at(price)
            self.update_ids[symbol] = 1
        bids, asks = self.books[symbol]
        return {
            "lastUpdateId": self.update_ids[symbol],
            "E": _ms(),
            "T": _ms(),
            "bids": [[str(p), str(s)] for p, s in sorted(bids.items(), reverse=True)],
            "asks": [[str(p), str(s)] for p, s in sorted(asks.items())],
        }

    def on_price(self, symbol: str, price: Decimal, now_ms: int) -> None:
        """The venue's price moved: the book diff, the new top and the mark with funding."""
        old_bids, old_asks = self.books.get(symbol, ({}, {}))
        bids, asks = self.books[symbol] = book_at(price)
        previous = self.update_ids.get(symbol, 0)
        uid = self.update_ids[symbol] = previous + 1
        self._send(
            symbol,
            "depth",
            {
                "e": "depthUpdate",
                "E": now_ms,
                "T": now_ms,
                "s": symbol,
                "U": uid,
                "u": uid,
                "pu": previous,
                "b": _diff(old_bids, bids),
                "a": _diff(old_asks, asks),
            },
        )
        bid, ask = max(bids), min(asks)
        self._send(
            symbol,
            "bookTicker",
            {
                "e": "bookTicker",
                "u": uid,
                "E": now_ms,
                "T": now_ms,
                "s": symbol,
                "b": str(bid),
                "B": str(bids[bid]),
                "a": str(ask),
                "A": str(asks[ask]),
            },
        )
        self._send(
            symbol,
            "markPrice",
            {
                "e": "markPriceUpdate",
                "E": now_ms,
                "s": symbol,
                "p": str(price),
                "i": str(price),
                "P": str(price),
                "r": str(self.funding_rate),
                "T": (now_ms // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS,
            },
        )

    def trade(self, symbol: str, side: str, qty: Decimal, price: Decimal, now_ms: int) -> None:
        """A public trade; ``side`` is the taker's (``BUY`` | ``SELL``)."""
        self._agg += 1
        self._send(
            symbol,
            "aggTrade",
            {
                "e": "aggTrade",
                "E": now_ms,
                "s": symbol,
                "a": self._agg,
                "p": str(price),
                "q": str(qty),
                "f": self._agg,
                "l": self._agg,
                "T": now_ms,
                "m": side.upper() == "SELL",  # a selling taker hits a resting buyer
            },
        )

    def liquidation(
        self, symbol: str, side: str, qty: Decimal, price: Decimal, now_ms: int
    ) -> None:
        """A liquidation order (``side`` of the forced order) filled at ``price``."""
        self._send(
            symbol,
            "forceOrder",
            {
                "e": "forceOrder",
                "E": now_ms,
                "o": {
                    "s": symbol,
                    "S": side.upper(),
                    "o": "LIMIT",
                    "f": "IOC",
                    "q": str(qty),
                    "p": str(price),
                    "ap": str(price),
                    "X": "FILLED",
                    "l": str(qty),
                    "z": str(qty),
                    "T": now_ms,
                },
            },
        )

    # ------------------------------------------------------------------ websocket

    def _send(self, symbol: str, channel: str, data: dict[str, Any]) -> None:
        for client in self.clients:
            name = client.streams.get((symbol, channel))
            if name is not None:
                client.queue.put_nowait(json.dumps({"stream": name, "data": data}))

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        streams: dict[tuple[str, str], str] = {}
        for name in request.query.get("streams", "").split("/"):
            symbol, _, rest = name.partition("@")
            channel = CHANNELS.get(rest.split("@", 1)[0])
            if not symbol or channel is None:
                raise web.HTTPBadRequest(text=f"unknown stream {name!r}")
            streams[(symbol.upper(), channel)] = name
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        client = _Client(streams)
        self.clients.append(client)
        writer = asyncio.get_running_loop().create_task(_write(ws, client))
        try:
            async for msg in ws:  # pings are answered by aiohttp; the rest is ignored
                if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            self.clients.remove(client)
            await cancel_and_wait(writer)
        return ws

    async def close(self) -> None:
        """Drop every subscriber (the simulator stops)."""
        self.clients.clear()


async def _write(ws: web.WebSocketResponse, client: _Client) -> None:
    while True:
        text = await client.queue.get()
        if ws.closed:
            return
        await ws.send_str(text)


def _ms() -> int:
    import time

    return int(time.time() * 1000)
