"""Binance spot REST trading endpoints for the loopback simulator.

The subset ccxt's ``binance`` class uses for spot trading: ``GET /api/v3/time``,
``GET /api/v3/exchangeInfo`` (with the symbols' filters and order types), and the signed
``GET /api/v3/account``, ``POST/GET/DELETE /api/v3/order``, ``GET /api/v3/openOrders`` and
``GET /api/v3/myTrades``. Signed requests are checked like Binance does: ``X-MBX-APIKEY``
header, ``timestamp`` within ``recvWindow``, and an HMAC-SHA256 ``signature`` (hex) over the
query string followed by the body.

Fault switches (:class:`Fault`, queued in :class:`Faults`) act on matching requests: drop the
connection, answer with a status (429 with ``Retry-After``, 5xx), delay, or hold the request
until released -- each either before or after the order is processed (``after_accept``), which
is how the tests create "accepted but the response was lost".
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import parse_qsl

import structlog
from aiohttp import web

from cryptomon.sim.matching import MatchingEngine
from cryptomon.sim.records import SimError

log = structlog.get_logger()

API = "/api/v3"


@dataclass
class Fault:
    """One injected failure for requests matching ``method`` and ``path``.

    ``kind``: ``drop`` closes the connection without an answer; ``status`` answers ``status``
    (429 carries ``Retry-After: retry_after_s``); ``delay`` waits ``delay_s`` then answers
    normally; ``hold`` waits until :meth:`release` then answers normally. ``after_accept``:
    whether the request is processed before the fault applies. ``times``: how many requests it
    affects. ``reached`` is set when a request hits the fault (tests wait on it).
    """

    kind: Literal["drop", "status", "delay", "hold"]
    method: str = "POST"
    path: str = f"{API}/order"
    after_accept: bool = True
    status: int = 503
    retry_after_s: int = 1
    delay_s: float = 0.0
    times: int = 1
    hits: int = 0
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    _gate: asyncio.Event = field(default_factory=asyncio.Event)

    abandoned: bool = False

    def release(self) -> None:
        """Let held requests go on."""
        self._gate.set()

    def abandon(self) -> None:
        """Let held requests go without processing them (as if they never arrived)."""
        self.abandoned = True
        self._gate.set()


class Faults:
    """The queue of armed fault switches (first match wins)."""

    def __init__(self) -> None:
        self.armed: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        self.armed.append(fault)
        return fault

    def clear(self) -> None:
        for f in self.armed:
            f.release()
        self.armed.clear()

    def take(self, method: str, path: str) -> Fault | None:
        for fault in self.armed:
            if fault.method == method and fault.path == path and fault.hits < fault.times:
                fault.hits += 1
                fault.reached.set()
                if fault.hits >= fault.times:
                    self.armed.remove(fault)
                return fault
        return None


def _error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)


class TradingEndpoints:
    """aiohttp handlers serving one simulated account through a :class:`MatchingEngine`."""

    def __init__(
        self,
        *,
        engine: MatchingEngine,
        api_key: str,
        api_secret: str,
        faults: Faults | None = None,
        now_ms: Callable[[], int] | None = None,
        max_recv_window_ms: int = 60_000,
    ) -> None:
        self.engine = engine
        self.api_key = api_key
        self._secret = api_secret.encode()
        self.faults = faults or Faults()
        self.skew_s = 0.0  # the venue's clock runs this far from the local one (clock skew)
        self.now_ms = now_ms or (lambda: int((time.time() + self.skew_s) * 1000))
        self.max_recv_window_ms = max_recv_window_ms
        self.requests: Counter[tuple[str, str]] = Counter()
        self.order_posts = 0  # every POST /order that passed authentication
        self.open_orders_need_symbol = False  # switch: openOrders without a symbol is refused
        # switch: account trades (myTrades) without their orderId, as some venues list them
        self.trades_without_order_id = False

    # ------------------------------------------------------------------ wiring

    def routes(self, *, exchange_info: bool = True) -> list[web.RouteDef]:
        """The handlers; ``exchange_info=False`` when the host server serves its own."""
        out = [
            web.get(f"{API}/time", self._time),
            web.get(f"{API}/account", self._signed(self._account)),
            web.post(f"{API}/order", self._signed(self._new_order)),
            web.get(f"{API}/order", self._signed(self._get_order)),
            web.delete(f"{API}/order", self._signed(self._cancel_order)),
            web.get(f"{API}/openOrders", self._signed(self._open_orders)),
            web.get(f"{API}/myTrades", self._signed(self._my_trades)),
        ]
        if exchange_info:
            out.append(web.get(f"{API}/exchangeInfo", self._exchange_info))
        return out

    def exchange_info(self) -> dict[str, Any]:
        """The ``exchangeInfo`` document for the engine's symbols."""
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 6000,
                },
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            ],
            "exchangeFilters": [],
            "symbols": [s.exchange_info() for s in self.engine.symbols.values()],
        }

    # ------------------------------------------------------------------ signing

    def _signed(self, handler: Callable[[dict[str, str]], Any]) -> Any:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            key = (request.method, request.path)
            self.requests[key] += 1
            body = await request.text() if request.can_read_body else ""
            problem = self._authenticate(request, body)
            if problem is not None:
                return problem
            params = dict(parse_qsl(request.query_string, keep_blank_values=True))
            params.update(parse_qsl(body, keep_blank_values=True))
            params.pop("signature", None)
            if key == ("POST", f"{API}/order"):
                self.order_posts += 1
            fault = self.faults.take(request.method, request.path)
            if fault is not None and not fault.after_accept:
                early = await self._apply(fault, request)
                if early is not None:
                    return early
                if fault.abandoned:
                    return _error(503, -1001, "Internal error; request dropped.")
                # Like Binance's matching engine: a request that waited past its recvWindow
                # is refused, so "not found" is final once recvWindow has passed.
                expired = self._check_window(params)
                if expired is not None:
                    return expired
            try:
                result = handler(params)
                response = web.json_response(result)
            except SimError as exc:
                response = _error(exc.status, exc.code, exc.msg)
            except _BadParam as exc:
                response = _error(400, -1100, str(exc))
            if fault is not None and fault.after_accept:
                late = await self._apply(fault, request)
                if late is not None:
                    return late
            return response

        return wrapped

    def _authenticate(self, request: web.Request, body: str) -> web.Response | None:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            return _error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        total = request.query_string + body
        payload, sep, signature = total.rpartition("&signature=")
        if not sep:
            return _error(400, -1102, "Mandatory parameter 'signature' was not sent.")
        expected = hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.split("&", 1)[0]):
            return _error(400, -1022, "Signature for this request is not valid.")
        return self._check_window(dict(parse_qsl(payload)))

    def _check_window(self, params: dict[str, str]) -> web.Response | None:
        try:
            ts = int(params["timestamp"])
            window = int(params.get("recvWindow", "5000"))
        except (KeyError, ValueError):
            return _error(400, -1102, "Mandatory parameter 'timestamp' was not sent.")
        now = self.now_ms()
        if ts > now + 1000 or now - ts > min(window, self.max_recv_window_ms):
            return _error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        return None

    async def _apply(self, fault: Fault, request: web.Request) -> web.StreamResponse | None:
        """Carry out a fault; a returned response replaces the normal one."""
        log.debug("sim.fault", kind=fault.kind, path=request.path, after_accept=fault.after_accept)
        if fault.kind == "hold":
            await fault._gate.wait()
        elif fault.kind == "delay":
            await asyncio.sleep(fault.delay_s)
        elif fault.kind == "status":
            if fault.status == 429:
                return _error(
                    429,
                    -1003,
                    "Too many requests; please use the websocket for live updates.",
                    headers={"Retry-After": str(fault.retry_after_s)},
                )
            return web.Response(status=fault.status, text="Service Unavailable")
        elif fault.kind == "drop":
            if request.transport is not None:
                request.transport.abort()  # the client sees the connection close, no answer
            return web.Response(status=503)  # written to a closed transport: goes nowhere
        return None

    # ------------------------------------------------------------------ handlers

    async def _time(self, request: web.Request) -> web.StreamResponse:
        self.requests[(request.method, request.path)] += 1
        fault = self.faults.take(request.method, request.path)
        if fault is not None:  # the time endpoint may fail too (clock-skew tests)
            early = await self._apply(fault, request)
            if early is not None:
                return early
        return web.json_response({"serverTime": self.now_ms()})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        self.requests[(request.method, request.path)] += 1
        return web.json_response(self.exchange_info())

    def _account(self, params: dict[str, str]) -> dict[str, Any]:
        eng = self.engine
        return {
            "makerCommission": int(eng.maker_fee * 10000),
            "takerCommission": int(eng.taker_fee * 10000),
            "buyerCommission": 0,
            "sellerCommission": 0,
            "canTrade": True,
            "canWithdraw": False,
            "canDeposit": False,
            "updateTime": self.now_ms(),
            "accountType": "SPOT",
            "balances": [
                {"asset": a, "free": f"{b.free:.8f}", "locked": f"{b.locked:.8f}"}
                for a, b in sorted(eng.balances.items())
            ],
            "permissions": ["SPOT"],
        }

    def _new_order(self, params: dict[str, str]) -> dict[str, Any]:
        symbol = _required(params, "symbol")
        client_id = (
            params.get("newClientOrderId")
            or f"sim-{self.engine.now_ms()}-{len(self.engine.orders)}"
        )
        order, fills = self.engine.place(
            symbol=symbol,
            side=_required(params, "side").upper(),
            type=_required(params, "type").upper(),
            quantity=_decimal(params, "quantity", required=True) or Decimal(0),
            price=_decimal(params, "price"),
            stop_price=_decimal(params, "stopPrice"),
            client_order_id=client_id,
            time_in_force=params.get("timeInForce", "GTC"),
        )
        out = order.as_binance()
        out["transactTime"] = order.time_ms
        out.pop("time", None)
        out.pop("updateTime", None)
        resp_type = params.get("newOrderRespType", "FULL")
        if resp_type == "ACK":
            keys = ("symbol", "orderId", "orderListId", "clientOrderId", "transactTime")
            return {k: out[k] for k in keys}
        if resp_type == "FULL":
            out["fills"] = [f.as_order_fill() for f in fills]
        return out

    def _lookup_ids(self, params: dict[str, str], key: str) -> tuple[int | None, str | None]:
        order_id = params.get("orderId")
        client_id = params.get(key)
        if order_id is None and client_id is None:
            raise SimError(400, -1102, f"Param 'orderId' or '{key}' must be sent.")
        try:
            return (int(order_id) if order_id is not None else None), client_id
        except ValueError:
            raise _BadParam("Illegal characters found in parameter 'orderId'.") from None

    def _get_order(self, params: dict[str, str]) -> dict[str, Any]:
        order_id, client_id = self._lookup_ids(params, "origClientOrderId")
        order = self.engine.order(
            _required(params, "symbol"), order_id=order_id, client_order_id=client_id
        )
        return order.as_binance()

    def _cancel_order(self, params: dict[str, str]) -> dict[str, Any]:
        order_id, client_id = self._lookup_ids(params, "origClientOrderId")
        order = self.engine.cancel(
            _required(params, "symbol"), order_id=order_id, client_order_id=client_id
        )
        out = order.as_binance()
        # Binance answers a cancel with the cancel request's own id as clientOrderId.
        out["origClientOrderId"] = order.client_order_id
        out["clientOrderId"] = params.get("newClientOrderId") or f"cancel-{order.order_id}"
        out["transactTime"] = order.update_ms
        for k in ("time", "updateTime", "isWorking", "workingTime"):
            out.pop(k, None)
        return out

    def _open_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = params.get("symbol")
        if symbol is None and self.open_orders_need_symbol:
            _required(params, "symbol")
        if symbol is not None:
            self.engine.spec(symbol)
        return [o.as_binance() for o in self.engine.open_orders(symbol)]

    def _my_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        symbol = _required(params, "symbol")
        self.engine.spec(symbol)
        fills = [f for f in self.engine.fills if f.symbol == symbol]
        try:
            if "orderId" in params:
                fills = [f for f in fills if f.order_id == int(params["orderId"])]
            if "startTime" in params:
                fills = [f for f in fills if f.time_ms >= int(params["startTime"])]
            if "endTime" in params:
                fills = [f for f in fills if f.time_ms <= int(params["endTime"])]
            if "fromId" in params:
                fills = [f for f in fills if f.trade_id >= int(params["fromId"])]
            limit = min(int(params.get("limit", "500")), 1000)
        except ValueError:
            raise _BadParam("Illegal characters found in a parameter.") from None
        rows = [f.as_binance() for f in fills[:limit]]
        if self.trades_without_order_id:
            for row in rows:
                row.pop("orderId", None)
        return rows


class _BadParam(Exception):
    pass


def _required(params: dict[str, str], key: str) -> str:
    value = params.get(key)
    if not value:
        raise SimError(400, -1102, f"Mandatory parameter '{key}' was not sent, was empty/null.")
    return value


def _decimal(params: dict[str, str], key: str, *, required: bool = False) -> Decimal | None:
    raw = params.get(key)
    if raw is None:
        if required:
            _required(params, key)
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise _BadParam(f"Illegal characters found in parameter '{key}'.") from None
    if not value.is_finite() or value <= 0:
        raise _BadParam(f"Illegal characters found in parameter '{key}'.")
    return value
