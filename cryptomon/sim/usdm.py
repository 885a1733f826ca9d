"""Binance USD-M futures REST subset for the loopback simulator: what ccxt's ``binanceusdm``
calls to trade a linear perpetual (one-way mode).

Public: ``GET /fapi/v1/time``, ``exchangeInfo`` (contract fields), ``depth``,
``premiumIndex`` (mark price and funding), and the market streams cryptofeed's
``BINANCE_FUTURES`` subscribes to (:mod:`cryptomon.sim.usdm_streams`). Signed
(``X-MBX-APIKEY`` + HMAC-SHA256 over the parameters, ``timestamp``): ``leverage``,
``marginType``, ``symbolConfig``, ``leverageBracket``, ``positionSide/dual``, ``positionRisk``
(v2, v3), ``account``/``balance`` (v2, v3), ``order`` (POST/GET/DELETE), ``openOrders``,
``userTrades``, ``income``, and the conditional orders of the Algo Service (``algoOrder``
POST/GET/DELETE, ``openAlgoOrders``, ``allAlgoOrders``: :mod:`cryptomon.sim.usdm_algo`).

Prices are set by the test (:meth:`UsdmVenue.set_price`): market orders fill there at once,
stop-market and take-profit-market orders (plain or algo) rest until the price crosses their
trigger; :meth:`UsdmVenue.trade` and :meth:`UsdmVenue.liquidation` print public trades and
liquidations; :meth:`UsdmVenue.settle_funding` pays funding on the open positions at the mark;
:meth:`UsdmVenue.force_close` closes the account's own position as the venue's liquidation,
auto-deleveraging or settlement order, :meth:`UsdmVenue.close_by_hand` as someone's order on
the venue's website.
``refuse_leverage`` makes the venue refuse ``POST leverage`` (a venue that refuses);
:meth:`UsdmVenue.refuse` answers the next signed request of an endpoint with one of Binance's
error answers (``{"code": ..., "msg": ...}``, e.g. :data:`PERCENT_PRICE` or
:data:`SERVER_BUSY`), with or without carrying the request out first.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from cryptomon.sim.usdm_book import UsdmBook
from cryptomon.sim.usdm_orders import UsdmError
from cryptomon.sim.usdm_streams import UsdmStreams

API, API2, API3 = "/fapi/v1", "/fapi/v2", "/fapi/v3"


@dataclass(frozen=True)
class Refusal:
    """One of the venue's error answers: HTTP status, Binance code, message."""

    status: int
    code: int
    msg: str


PERCENT_PRICE = Refusal(
    400, -4131, "The counterparty's best price does not meet the PERCENT_PRICE filter limit."
)
"""A market order refused at acceptance: the opposite book's best price is outside the
symbol's PERCENT_PRICE band around the mark (a thin or gapped book)."""

MAX_STOP_ORDERS = Refusal(400, -4045, "Reach max stop order limit.")
"""A conditional order refused at acceptance: the account's stop orders are at the limit."""

SERVER_BUSY = Refusal(503, -1004, "Server is busy, please wait and try again")
"""An overloaded venue's answer: the request may or may not have been carried out."""


@dataclass
class Hold:
    """A request held after processing (``before``: before it); ``reached`` once it arrived."""

    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    before: bool = False

    def release(self) -> None:
        self.released.set()


@dataclass
class UsdmVenue:
    """One USD-M account on the simulator; see the module docstring."""

    api_key: str
    api_secret: str
    book: UsdmBook = field(default_factory=UsdmBook)
    refuse_leverage: bool = False
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path) signed
    symbols: list[str] = field(default_factory=list)  # each request's ``symbol`` ("": none)
    holds: dict[tuple[str, str], Hold] = field(default_factory=dict)
    refusals: dict[tuple[str, str], tuple[Refusal, bool]] = field(default_factory=dict)
    streams: UsdmStreams = field(default_factory=UsdmStreams)
    _published: int = 0  # book.trades already sent as public trades

    def hold(self, method: str, path: str, *, before: bool = False) -> Hold:
        """Hold the next signed ``method path`` request after the venue processed it (its
        answer waits until :meth:`Hold.release`): how tests kill a client mid-request.
        ``before``: held before the venue processes it (a request still on its way)."""
        hold = self.holds[(method, path)] = Hold(before=before)
        return hold

    def refuse(
        self, method: str, path: str, refusal: Refusal, *, carried_out: bool = False
    ) -> None:
        """Answer the next signed ``method path`` request with ``refusal`` in Binance's error
        shape; ``carried_out``: the venue processes the request first (a busy venue that took
        the order and answered with an error), else it is refused untouched."""
        self.refusals[(method, path)] = (refusal, carried_out)

    def set_price(self, symbol: str, price: Decimal) -> None:
        """Move the price: resting triggers fire, the streams send the new book and mark."""
        self.book.set_price(symbol, price)
        self.streams.on_price(symbol, price, now_ms())
        self._publish_fills()

    def trade(self, symbol: str, side: str, qty: Decimal, price: Decimal) -> None:
        """A public trade of another participant (``side`` of the taker) at ``price``."""
        self.set_price(symbol, price)
        self.streams.trade(symbol, side, qty, price, now_ms())

    def liquidation(self, symbol: str, side: str, qty: Decimal, price: Decimal) -> None:
        """A forced order of another participant filled at ``price`` (``forceOrder``)."""
        self.streams.liquidation(symbol, side, qty, price, now_ms())

    def settle_funding(self, rate: Decimal, *, stamp_lag_ms: int = 0) -> None:
        """Pay funding on the positions open now; the income history stamps the payments
        ``stamp_lag_ms`` later (a real venue stamps them at or slightly after the funding time)."""
        self.book.settle_funding(rate, now_ms() + stamp_lag_ms)

    def force_close(self, symbol: str, price: Decimal, kind: str = "liquidation") -> Any:
        """The venue liquidates (``kind`` liquidation), auto-deleverages (adl) or settles
        (settlement) the account's position of ``symbol`` at ``price`` with an order of its
        own, reported like Binance's (``autoclose-…`` client ids in ``order`` and
        ``userTrades``); the mark moves there."""
        order = self.book.force_close(symbol, price, kind)
        self.set_price(symbol, price)
        return order

    def close_by_hand(
        self, symbol: str, price: Decimal, qty: Decimal | None = None, client_id: str = ""
    ) -> Any:
        """Someone trades the account's position of ``symbol`` down by ``qty`` (all of it by
        default) at ``price`` outside the API client: a MARKET order of the venue's website
        (Binance's ``web_…`` client id) with no mark of the venue's own; the mark moves there
        first (a resting trigger it crosses fires before)."""
        self.set_price(symbol, price)
        held = self.book.position_of(symbol).qty
        if held == 0:
            raise ValueError(f"no {symbol} position to close")
        order = self.book.new_order(
            {
                "symbol": symbol,
                "side": "SELL" if held > 0 else "BUY",
                "type": "MARKET",
                "quantity": str(abs(held) if qty is None else qty),
                "newClientOrderId": client_id or f"web_{self.book.next_id()}",
            }
        )
        self._publish_fills()
        return order

    def _publish_fills(self) -> None:
        """The account's own fills appear in the public trade stream too."""
        for fill in self.book.trades[self._published :]:
            qty, price = Decimal(fill["qty"]), Decimal(fill["price"])
            self.streams.trade(fill["symbol"], fill["side"], qty, price, fill["time"])
        self._published = len(self.book.trades)

    # ------------------------------------------------------------------ routes

    def routes(self) -> list[web.RouteDef]:
        signed = self._signed
        b = self.book
        return [
            web.get(f"{API}/time", self._time),
            web.get(f"{API}/exchangeInfo", self._exchange_info),
            web.get(f"{API}/depth", self._depth),
            web.get(f"{API}/premiumIndex", self._premium),
            web.post(f"{API}/leverage", signed(self._leverage)),
            web.post(f"{API}/marginType", signed(b.margin_type)),
            web.get(f"{API}/symbolConfig", signed(b.symbol_config)),
            web.get(f"{API}/leverageBracket", signed(b.brackets)),
            web.get(f"{API}/positionSide/dual", signed(lambda _p: {"dualSidePosition": False})),
            web.get(f"{API2}/positionRisk", signed(b.position_risk)),
            web.get(f"{API3}/positionRisk", signed(b.position_risk)),
            web.get(f"{API2}/account", signed(b.account)),
            web.get(f"{API3}/account", signed(b.account)),
            web.get(f"{API2}/balance", signed(b.balance)),
            web.get(f"{API3}/balance", signed(b.balance)),
            web.post(f"{API}/order", signed(b.new_order)),
            web.get(f"{API}/order", signed(b.get_order)),
            web.delete(f"{API}/order", signed(b.cancel_order)),
            web.get(f"{API}/openOrders", signed(b.open_orders)),
            web.get(f"{API}/userTrades", signed(b.user_trades)),
            web.get(f"{API}/income", signed(b.income)),
            web.post(f"{API}/algoOrder", signed(b.new_algo)),
            web.get(f"{API}/algoOrder", signed(b.get_algo)),
            web.delete(f"{API}/algoOrder", signed(b.cancel_algo)),
            web.get(f"{API}/openAlgoOrders", signed(b.open_algos)),
            web.get(f"{API}/allAlgoOrders", signed(b.all_algos)),
            self.streams.route(),
        ]

    async def _time(self, _request: web.Request) -> web.Response:
        return web.json_response({"serverTime": now_ms()})

    async def _exchange_info(self, _request: web.Request) -> web.Response:
        return web.json_response(self.book.exchange_info(now_ms()))

    async def _depth(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        return self._answer(lambda: self.streams.depth(symbol, self.book.price_of(symbol)))

    async def _premium(self, request: web.Request) -> web.Response:
        return self._answer(lambda: self.book.premium(dict(request.query), now_ms()))

    def _leverage(self, params: dict[str, str]) -> Any:
        if self.refuse_leverage:
            raise UsdmError(400, -4028, f"Leverage {params.get('leverage')} is not valid")
        return self.book.leverage(params)

    # ------------------------------------------------------------------ signing

    def _signed(self, handler: Callable[[dict[str, str]], Any]) -> Any:
        async def wrapped(request: web.Request) -> web.Response:
            body = await request.text()
            refused = self._authenticate(request, body)
            if refused is not None:
                return refused
            params = dict(parse_qsl(request.query_string)) | dict(parse_qsl(body))
            self.requests.append((request.method, request.path))
            self.symbols.append(params.get("symbol", ""))
            early = self.holds.get((request.method, request.path))
            if early is not None and early.before:
                del self.holds[(request.method, request.path)]
                early.reached.set()
                await early.released.wait()
            refusal, carried_out = self.refusals.pop((request.method, request.path), (None, False))
            if refusal is None or carried_out:
                answer = self._answer(lambda: handler(params))
            if refusal is not None:
                answer = _error(refusal.status, refusal.code, refusal.msg)
            self._publish_fills()
            hold = self.holds.pop((request.method, request.path), None)
            if hold is not None:
                hold.reached.set()
                await hold.released.wait()
            return answer

        return wrapped

    def _authenticate(self, request: web.Request, body: str) -> web.Response | None:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            return _error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        signed = request.query_string if "signature=" in request.query_string else body
        payload, _, signature = signed.rpartition("&signature=")
        expected = hmac.new(self.api_secret.encode(), payload.encode(), hashlib.sha256)
        if not hmac.compare_digest(expected.hexdigest(), signature):
            return _error(400, -1022, "Signature for this request is not valid.")
        return None

    @staticmethod
    def _answer(produce: Callable[[], Any]) -> web.Response:
        try:
            return web.json_response(produce())
        except UsdmError as exc:
            return _error(exc.status, exc.code, exc.msg)


def now_ms() -> int:
    return int(time.time() * 1000)


def _error(status: int, code: int, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)
