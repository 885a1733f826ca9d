"""WebSocket ``GET /ws``: live events pushed to subscribed clients.

Client messages: ``{"msg_type": "Subscribe"|"Unsubscribe"|"Ping", "data": {"channel": ...,
"symbols": [...], "exchanges": [...]}}``. The server pushes ``{"channel", "data"}``; replies
use the channels ``subscribed``, ``unsubscribed``, ``pong``, ``error`` and ``notice``.

Anonymous clients (``api.public_read``) may subscribe to market data and anomalies only. An
upgrade from a browser page of another origin (not this server, not in ``api.cors_origins``)
is refused (403). Messages beyond ``api.rate_limit_per_s`` (burst ``api.rate_limit_burst``)
per client, or nested too deeply, close the connection with code 1008 (policy violation).

A channel has a queued hub subscription (``drop_oldest``, ``ws_channel_queue_size``) only
while some client is subscribed to it; its task serializes each event once and appends it
to the queue of every matching client. Each client has a bounded queue of serialized
messages (``ws_queue_size``). A slow client loses its oldest messages (counted; a ``notice``
with the count is sent before the next message); a send that stays blocked for
``ws_send_timeout_s`` disconnects it. Nothing here ever makes the publisher wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import deque
from dataclasses import fields
from typing import Any, Literal

import structlog
from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from cryptomon.api.auth import Principal, address_key
from cryptomon.api.errors import ApiError
from cryptomon.api.guard import check_origin
from cryptomon.api.models import NAME_MAX_LENGTH, SYMBOL_MAX_LENGTH
from cryptomon.api.routing import CONTEXT, PRINCIPAL, client_address
from cryptomon.clock import Clock
from cryptomon.config import ApiConfig, normalize_symbol
from cryptomon.errors import repeated_key
from cryptomon.events import (
    Anomaly,
    BookSnapshot,
    BookTop,
    Event,
    FeedStatus,
    Fill,
    OrderUpdate,
    PositionUpdate,
    Signal,
    Ticker,
    Trade,
)
from cryptomon.hub import Hub, QueuedSubscription
from cryptomon.tasks import cancel_and_wait

log = structlog.get_logger()

Channel = Literal[
    "anomalies", "trades", "book", "ticker", "signals", "orders", "positions", "feeds"
]
CHANNELS: dict[str, tuple[type[Event], ...]] = {
    "anomalies": (Anomaly,),
    "trades": (Trade,),
    "book": (BookTop, BookSnapshot),
    "ticker": (Ticker,),
    "signals": (Signal,),  # graded trading signals (a token is needed)
    "orders": (OrderUpdate, Fill),
    "positions": (PositionUpdate,),
    "feeds": (FeedStatus,),
}
PUBLIC_CHANNELS = frozenset({"anomalies", "trades", "book", "ticker"})
"""Channels anonymous clients may subscribe to (``api.public_read``): market data, anomalies."""
_FIELDS: dict[type, tuple[str, ...]] = {}


class PolicyViolation(Exception):
    """A client message that closes the connection (policy violation, code 1008)."""


def event_payload(channel: str, ev: Event) -> str:
    """``{"channel", "data"}`` JSON text of one event (Decimals as strings)."""
    cls = type(ev)
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(ev))
    data = {n: getattr(ev, n) for n in names}
    data["type"] = cls.__name__
    return json.dumps({"channel": channel, "data": data}, default=str)


class SubscriptionData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Channel
    symbols: list[str] | None = Field(default=None, max_length=500)
    exchanges: list[str] | None = Field(default=None, max_length=100)

    @field_validator("symbols", "exchanges")
    @classmethod
    def _not_empty(cls, v: list[str] | None, info: ValidationInfo) -> list[str] | None:
        # [] subscribed to nothing (no event matched) and answered "subscribed"
        if v == []:
            raise ValueError(f"an empty list matches nothing; omit {info.field_name} to match all")
        # bounded as the REST fields are (a 10,000-character symbol was subscribed to)
        bound = SYMBOL_MAX_LENGTH if info.field_name == "symbols" else NAME_MAX_LENGTH
        for item in v or ():
            if len(item) > bound:
                what = "a symbol like BTC-USDT" if bound == SYMBOL_MAX_LENGTH else "an exchange"
                raise ValueError(
                    f"{what} of at most {bound} characters, not {len(item)} ({item[:20]!r}...)"
                )
        return v

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [normalize_symbol(s) for s in v]

    @field_validator("exchanges")
    @classmethod
    def _exchanges(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [e.strip().lower() for e in v]


class ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    msg_type: Literal["Subscribe", "Unsubscribe", "Ping"]
    data: SubscriptionData | None = None


class WsClient:
    """One connection: filters per channel, a bounded queue and its sender task."""

    def __init__(
        self, cid: int, ws: web.WebSocketResponse, request: web.Request, maxsize: int
    ) -> None:
        self.id = cid
        self.ws = ws
        self.request = request
        self.queue: deque[str] = deque()
        self.maxsize = maxsize
        self.filters: dict[str, tuple[frozenset[str] | None, frozenset[str] | None]] = {}
        self.dropped = 0
        self.unnoticed = 0
        self.sent = 0
        self.anonymous = False
        self.address = ""  # its client address key (IPv6: the /64)
        self.wake = asyncio.Event()

    def matches(self, channel: str, ev: Event) -> bool:
        flt = self.filters.get(channel)
        if flt is None:
            return False
        exchanges, symbols = flt
        if exchanges is not None and ev.exchange not in exchanges:
            return False
        return symbols is None or ev.symbol in symbols or not ev.symbol

    def put(self, text: str) -> bool:
        """Queue ``text``; returns True when an older message was dropped for it."""
        dropped = False
        if len(self.queue) >= self.maxsize:
            self.queue.popleft()
            self.dropped += 1
            self.unnoticed += 1
            dropped = True
        self.queue.append(text)
        self.wake.set()
        return dropped


class WsManager:
    """Connections, per-channel hub subscriptions, the fan-out and the counters."""

    def __init__(self, *, hub: Hub, config: ApiConfig, clock: Clock) -> None:
        self.hub = hub
        self.config = config
        self.clock = clock
        self.clients: dict[int, WsClient] = {}
        self._ids = itertools.count(1)
        self._by_channel: dict[str, set[WsClient]] = {c: set() for c in CHANNELS}
        self._hub_subs: dict[str, QueuedSubscription] = {}
        self.dropped = 0
        self.disconnected_slow = 0
        self.rejected = 0
        self.rate_limited = 0
        self.connected_total = 0
        self.evicted = 0  # anonymous clients closed to make room for a token holder
        self._closing: set[asyncio.Task[Any]] = set()

    def stats(self) -> dict[str, Any]:
        return {
            "clients": len(self.clients),
            "connected_total": self.connected_total,
            "rejected": self.rejected,
            "evicted": self.evicted,
            "rate_limited": self.rate_limited,
            "dropped": self.dropped,
            "disconnected_slow": self.disconnected_slow,
            "queued": sum(len(c.queue) for c in self.clients.values()),
            "channels": {c: len(s) for c, s in self._by_channel.items() if s},
        }

    # ------------------------------------------------------------------ fan-out

    def _fanout(self, channel: str) -> Any:
        """The batch handler of a channel's queued hub subscription: serialize each event once,
        append it to every matching client's queue (never waits for a client)."""
        clients = self._by_channel[channel]

        async def on_batch(events: list[Event]) -> None:
            for ev in events:
                text: str | None = None
                for client in clients:
                    if client.matches(channel, ev):
                        if text is None:
                            text = event_payload(channel, ev)
                        if client.put(text):
                            self.dropped += 1

        return on_batch

    def _subscribe(self, client: WsClient, sub: SubscriptionData) -> None:
        ch = sub.channel
        client.filters[ch] = (
            None if sub.exchanges is None else frozenset(sub.exchanges),
            None if sub.symbols is None else frozenset(sub.symbols),
        )
        self._by_channel[ch].add(client)
        if ch not in self._hub_subs:
            # queued: serialization and fan-out run off the publisher's hot path
            hub_sub = self.hub.subscribe_queued(
                CHANNELS[ch],
                self._fanout(ch),
                name=f"api.ws.{ch}",
                policy="drop_oldest",
                maxsize=self.config.ws_channel_queue_size,
                batch_size=500,
            )
            hub_sub.start()  # also before the hub itself starts
            self._hub_subs[ch] = hub_sub

    def _unsubscribe(self, client: WsClient, channel: str) -> None:
        client.filters.pop(channel, None)
        members = self._by_channel[channel]
        members.discard(client)
        if not members and channel in self._hub_subs:
            self.hub.unsubscribe(self._hub_subs.pop(channel))

    # ------------------------------------------------------------------ connection

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """``GET /ws``: authenticate (read scope), enforce the client cap, then serve."""
        ctx = request.app[CONTEXT]
        header = request.headers.get("Authorization")
        token = request.query.get("token")
        if header is None and token:
            header = f"Bearer {token}"
        check_origin(request, self.config.cors_origins)
        principal = ctx.auth.authenticate(header, client_address(request), "read", public=True)
        request[PRINCIPAL] = principal
        address = address_key(client_address(request))
        if principal.anonymous:
            self._check_address(address)
        if len(self.clients) >= self.config.ws_max_clients and not self._make_room(principal):
            self.rejected += 1
            raise ApiError(
                503,
                f"WebSocket client limit reached ({self.config.ws_max_clients})",
                code="too_many_clients",
                headers={"Retry-After": "5"},
            )
        ws = web.WebSocketResponse(
            heartbeat=self.config.ws_heartbeat_s, max_msg_size=self.config.max_body_bytes
        )
        await ws.prepare(request)
        client = WsClient(next(self._ids), ws, request, self.config.ws_queue_size)
        client.anonymous = principal.anonymous
        client.address = address
        self.clients[client.id] = client
        self.connected_total += 1
        sender = asyncio.get_running_loop().create_task(
            self._send_loop(client), name=f"api.ws.send:{client.id}"
        )
        log.info("api.ws_connected", client_id=client.id, client=client_address(request))
        try:
            await self._receive_loop(client)
        finally:
            for ch in list(client.filters):
                self._unsubscribe(client, ch)
            self.clients.pop(client.id, None)
            await cancel_and_wait(sender)
            if not ws.closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 1.0)
            log.info(
                "api.ws_disconnected", client_id=client.id, dropped=client.dropped, sent=client.sent
            )
        return ws

    def _check_address(self, address: str) -> None:
        """429 when ``address`` already holds ``api.ws_max_anonymous_per_ip`` clients without
        a token: one address opening sockets could otherwise fill ws_max_clients and keep
        every other anonymous reader out (token holders can still evict, but nobody else)."""
        cap = self.config.ws_max_anonymous_per_ip
        held = sum(1 for c in self.clients.values() if c.anonymous and c.address == address)
        if held >= cap:
            self.rejected += 1
            raise ApiError(
                429,
                f"{cap} WebSocket clients without a token are already connected from this "
                "address (api.ws_max_anonymous_per_ip); close one, or use a token",
                code="too_many_clients_from_address",
                details={"ws_max_anonymous_per_ip": cap, "retry_after_s": 5},
                headers={"Retry-After": "5"},
            )

    def _make_room(self, principal: Principal) -> bool:
        """At the cap, a token holder takes the slot of the oldest anonymous client (closed
        with 1013, try again later): clients without a token (``api.public_read``) must not be
        able to keep token holders out. False when there is no such slot."""
        if principal.anonymous:
            return False
        victim = next((c for c in self.clients.values() if c.anonymous), None)
        if victim is None:
            return False
        self.clients.pop(victim.id, None)  # its slot is free now; its handler cleans up
        self.evicted += 1
        log.info("api.ws_anonymous_evicted", client_id=victim.id, for_principal=principal.name)
        task = asyncio.get_running_loop().create_task(
            victim.ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"slot taken by a token")
        )
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        return True

    async def _receive_loop(self, client: WsClient) -> None:
        auth = client.request.app[CONTEXT].auth
        rate, burst = self.config.rate_limit_per_s, self.config.rate_limit_burst
        async for msg in client.ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue  # ERROR / CLOSE are ended by the iterator
            try:
                if auth.limiter.take(f"ws:{client.id}", rate, burst) > 0:
                    self.rate_limited += 1
                    raise PolicyViolation(f"more than {rate:g} messages/s (api.rate_limit_per_s)")
                if msg.type == WSMsgType.BINARY:
                    reply = _error("binary messages are not supported; send JSON text")
                else:
                    reply = self._on_text(client, msg.data)
            except PolicyViolation as exc:
                log.info("api.ws_policy_close", client_id=client.id, reason=str(exc))
                await client.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=str(exc).encode())
                return
            self._control(client, reply)

    def _control(self, client: WsClient, reply: dict[str, Any]) -> None:
        """Replies go through the client's queue, in order with the events."""
        if client.put(json.dumps(reply, default=str)):
            self.dropped += 1

    def _on_text(self, client: WsClient, text: str) -> dict[str, Any]:
        try:  # pydantic-core's parser bounds the nesting depth (no RecursionError)
            msg = ClientMessage.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            if first["type"] == "json_invalid":
                if "recursion limit" in str(first["msg"]):
                    raise PolicyViolation("message nested too deeply") from None
                return _error(f"message is not valid JSON: {first['msg']}")
            where = ".".join(str(p) for p in first.get("loc", ())) or "message"
            text = str(first["msg"]).removeprefix("Value error, ")
            return _error(f"{where}: {text}", field=where)
        # the parser keeps the last of a repeated key, as on REST bodies (checked once valid:
        # its nesting is bounded)
        repeated = repeated_key(text)
        if repeated is not None:
            return _error(f"{repeated}: given more than once; send each field once", field=repeated)
        if msg.msg_type == "Ping":
            return {"channel": "pong", "data": {"ts": self.clock.time()}}
        if msg.data is None:
            return _error(f"data: {msg.msg_type} needs data.channel", field="data")
        if msg.msg_type == "Subscribe":
            if client.anonymous and msg.data.channel not in PUBLIC_CHANNELS:
                return _error(
                    f"data.channel: '{msg.data.channel}' needs a bearer token (anonymous "
                    f"clients may subscribe to {', '.join(sorted(PUBLIC_CHANNELS))})",
                    field="data.channel",
                )
            self._subscribe(client, msg.data)
            return {"channel": "subscribed", "data": msg.data.model_dump()}
        self._unsubscribe(client, msg.data.channel)
        return {"channel": "unsubscribed", "data": {"channel": msg.data.channel}}

    async def _send_loop(self, client: WsClient) -> None:
        q = client.queue
        timeout = self.config.ws_send_timeout_s
        try:
            while not client.ws.closed:
                await client.wake.wait()
                client.wake.clear()
                while q and not client.ws.closed:
                    if client.unnoticed:
                        notice = {
                            "channel": "notice",
                            "data": {
                                "code": "dropped",
                                "dropped": client.unnoticed,
                                "dropped_total": client.dropped,
                                "message": "client too slow: oldest messages dropped",
                            },
                        }
                        client.unnoticed = 0
                        await asyncio.wait_for(client.ws.send_str(json.dumps(notice)), timeout)
                        continue
                    await asyncio.wait_for(client.ws.send_str(q.popleft()), timeout)
                    client.sent += 1
        except TimeoutError:
            self.disconnected_slow += 1
            log.warning(
                "api.ws_slow_client_disconnected",
                client_id=client.id,
                queued=len(q),
                dropped=client.dropped,
            )
            transport = client.request.transport
            if transport is not None:
                transport.abort()
        except (ConnectionError, RuntimeError) as exc:
            log.info("api.ws_send_failed", client_id=client.id, error=repr(exc))

    async def close_all(self, timeout: float) -> None:
        """Close every connection (going away) within ``timeout`` seconds."""

        async def close(c: WsClient) -> None:
            with contextlib.suppress(Exception):
                await c.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

        if self.clients:
            await asyncio.wait(
                [asyncio.ensure_future(close(c)) for c in list(self.clients.values())],
                timeout=timeout,
            )


def _error(message: str, *, field: str | None = None) -> dict[str, Any]:
    return {"channel": "error", "data": {"message": message, "field": field}}
