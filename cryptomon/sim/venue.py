"""The simulated trading venue assembled: book sources for the matching engine, the trading
endpoints installed on a running :class:`~cryptomon.sim.exchange.SimExchange`, and a
standalone server.

- :func:`install` adds the signed Binance trading endpoints to a SimExchange (before its
  ``start``): the SimExchange serves its own ``exchangeInfo`` and a middleware adds what ccxt
  needs for trading to each symbol (``orderTypes``, the ``NOTIONAL`` filter); the matching
  engine runs at every model step (resting limits, stop triggers) on :class:`SimBook`.
- :class:`StaticBook`: a hand-set book (unit tests); :class:`TradingSimServer`: the endpoints
  alone on a loopback port.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cryptomon.sim.liquidity import Level
from cryptomon.sim.matching import MatchingEngine
from cryptomon.sim.records import SymbolRules
from cryptomon.sim.trading import API, TradingEndpoints

if TYPE_CHECKING:
    from cryptomon.sim.exchange import SimExchange


class SimBook:
    """:class:`~cryptomon.sim.matching.BookSource` over a ``SimExchange``'s market model:
    our taker orders consume its liquidity through ``sim.apply_trade`` (so they also appear
    in the public trade stream)."""

    def __init__(self, sim: SimExchange) -> None:
        self.sim = sim

    def book(self, symbol: str) -> tuple[Sequence[Level], Sequence[Level]]:
        m = self.sim.market.by_exchange_symbol(symbol)
        return m.book() if m is not None else ([], [])

    def take(self, symbol: str, side: str, amount: float) -> list[Level]:
        m = self.sim.market.by_exchange_symbol(symbol)
        if m is None:
            return []
        return self.sim.apply_trade(m.spec.symbol, "buy" if side == "buy" else "sell", amount)


def rules_for(sim: SimExchange, *, min_notional: Decimal = Decimal(5)) -> dict[str, SymbolRules]:
    """Trading rules matching the filters the SimExchange publishes (tick, lot)."""
    out: dict[str, SymbolRules] = {}
    for m in sim.market.markets.values():
        spec = m.spec
        tick = Decimal(m.fmt(spec.tick))
        lot = Decimal(f"{spec.lot:.8f}").normalize()
        out[spec.exchange_symbol] = SymbolRules(
            symbol=spec.exchange_symbol,
            base=spec.base,
            quote=spec.quote,
            tick_size=tick,
            step_size=lot,
            min_qty=lot,
            min_price=tick,
            min_notional=min_notional,
        )
    return out


def install(
    sim: SimExchange,
    *,
    api_key: str,
    api_secret: str,
    balances: dict[str, Decimal] | None = None,
    maker_fee: Decimal = Decimal("0.001"),
    taker_fee: Decimal = Decimal("0.001"),
    min_notional: Decimal = Decimal(5),
    buy_fee_in_base: bool = False,
) -> TradingEndpoints:
    """Add the trading endpoints to a SimExchange (before its ``start``).

    The SimExchange serves its own ``exchangeInfo``; a middleware adds what ccxt needs for
    trading to each symbol (``orderTypes``, the ``NOTIONAL`` filter, ...). The matching engine
    runs at every model step (resting limits, stop triggers). ``buy_fee_in_base`` charges
    buys their fee in the base asset (Binance without BNB).
    """
    engine = MatchingEngine(
        books=SimBook(sim),
        symbols=rules_for(sim, min_notional=min_notional),
        maker_fee=maker_fee,
        taker_fee=taker_fee,
        buy_fee_in_base=buy_fee_in_base,
    )
    for asset, amount in (balances or {}).items():
        engine.deposit(asset, amount)
    endpoints = TradingEndpoints(engine=engine, api_key=api_key, api_secret=api_secret)
    sim.add_routes(endpoints.routes(exchange_info=False))
    sim.app.middlewares.append(_exchange_info_middleware(endpoints))

    def match(_sim: SimExchange, _now: float) -> None:
        engine.on_market_all()

    sim.add_step_hook(match)
    return endpoints


def _exchange_info_middleware(endpoints: TradingEndpoints) -> Any:
    path = f"{API}/exchangeInfo"

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        response = await handler(request)
        if request.path != path or not isinstance(response, web.Response):
            return response
        endpoints.requests[(request.method, request.path)] += 1
        body = response.body
        if response.status != 200 or not isinstance(body, bytes):
            return response
        doc = json.loads(body)
        ours = {s["symbol"]: s for s in endpoints.exchange_info()["symbols"]}
        for entry in doc.get("symbols", []):
            extra = ours.get(entry.get("symbol"))
            if extra is None:
                continue
            have = {f.get("filterType") for f in entry.get("filters", [])}
            entry.setdefault("filters", []).extend(
                f for f in extra["filters"] if f["filterType"] not in have
            )
            for key, value in extra.items():
                entry.setdefault(key, value)
        doc.setdefault("rateLimits", endpoints.exchange_info()["rateLimits"])
        doc.setdefault("exchangeFilters", [])
        return web.json_response(doc)

    return middleware


class StaticBook:
    """A hand-set book (tests, standalone use): takers consume its levels."""

    def __init__(self) -> None:
        self._books: dict[str, tuple[list[list[float]], list[list[float]]]] = {}
        self.taken: list[tuple[str, str, float]] = []  # (symbol, side, amount) of every take

    def set(self, symbol: str, bids: Sequence[Level], asks: Sequence[Level]) -> None:
        self._books[symbol] = ([list(b) for b in bids], [list(a) for a in asks])

    def book(self, symbol: str) -> tuple[Sequence[Level], Sequence[Level]]:
        bids, asks = self._books.get(symbol, ([], []))
        return [(p, s) for p, s in bids], [(p, s) for p, s in asks]

    def take(self, symbol: str, side: str, amount: float) -> list[Level]:
        self.taken.append((symbol, side, amount))
        bids, asks = self._books.get(symbol, ([], []))
        levels = asks if side == "buy" else bids
        fills: list[Level] = []
        left = amount
        while left > 1e-12 and levels:
            price, size = levels[0]
            take = min(left, size)
            fills.append((price, take))
            left -= take
            if size - take <= 1e-12:
                levels.pop(0)
            else:
                levels[0][1] = size - take
        return fills


class TradingSimServer:
    """A standalone loopback server with just the trading endpoints (tests, local runs)."""

    name = "sim-trading"

    def __init__(self, endpoints: TradingEndpoints, *, host: str = "127.0.0.1", port: int = 0):
        self.endpoints = endpoints
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` once started."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.add_routes(self.endpoints.routes())
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        if server is not None and self.port == 0:
            sockets = getattr(server, "sockets", None) or []
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.endpoints.faults.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
