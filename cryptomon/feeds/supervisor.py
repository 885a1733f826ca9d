"""Supervised cryptofeed connections (DESIGN.md section 5): :class:`Supervisor` replaces
cryptofeed's ``ConnectionHandler`` (reconnect forever with capped backoff + jitter, malformed
messages counted and skipped, health hooks); :class:`Supervised` is the mixin that makes a
cryptofeed exchange class use it, and keeps a sequence gap on one symbol to that symbol's book.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import structlog

from cryptomon.errors import backoff_delays
from cryptomon.feeds.health import FeedHealth

log = structlog.get_logger()


class Supervisor:
    """Runs one cryptofeed connection forever (duck-types cryptofeed's ConnectionHandler)."""

    def __init__(
        self, conn: Any, subscribe: Any, handler: Any, authenticate: Any, owner: Any
    ) -> None:
        self.conn = conn
        self.subscribe = subscribe
        self.handler = handler
        self.authenticate = authenticate
        self.owner = owner
        self.running = True
        self.connected_before = False
        self.task: asyncio.Task[None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.task = loop.create_task(self._run(), name=f"feed-conn:{self.conn.uuid}")

    async def _run(self) -> None:
        owner = self.owner
        health: FeedHealth = owner.health
        delays = backoff_delays(initial=owner.backoff_initial_s, cap=owner.backoff_cap_s)
        while self.running:
            health.on_connecting()
            received = False
            detail = "closed by the exchange"
            try:
                async with self.conn.connect() as conn:
                    await self.authenticate(conn)
                    await self.subscribe(conn)
                    owner.on_connected(reconnect=self.connected_before)
                    self.connected_before = True
                    async for msg in conn.read():
                        if not self.running:
                            break
                        received = True
                        try:
                            await self.handler(msg, conn, conn.last_message)
                        except asyncio.CancelledError:
                            raise
                        except Exception as exc:  # malformed message: count, skip, go on
                            health.on_parse_error(exc, msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                detail = f"connection failed: {exc!r}"[:300]
            if not self.running:
                break
            health.on_disconnected(detail)
            if received:
                delays = backoff_delays(initial=owner.backoff_initial_s, cap=owner.backoff_cap_s)
            delay = next(delays)
            log.warning(
                "feed.reconnecting",
                exchange=health.exchange,
                delay_s=round(delay, 2),
                reason=detail,
            )
            await owner.clock.sleep(delay)


# cryptofeed's per-symbol order book state on the exchange classes that check update ids
_BOOK_STATE_ATTRS = ("_l2_book", "last_update_id", "forced")


class Supervised:
    """Mixin for cryptofeed feed classes: supervised connections instead of ConnectionHandler;
    a sequence gap drops (and so re-snapshots) the book of that symbol only."""

    plain_ws: ClassVar[bool] = False
    ws_proxy: ClassVar[str | None] = None  # exchanges[].proxy (see cryptomon.feeds.proxy)
    supervisor_owner: Any = None  # the CryptofeedFeed whose health and clock apply
    _gap_symbol: str | None = None

    def _check_update_id(self, pair: str, msg: Any) -> Any:
        # cryptofeed calls ``_reset()`` (every book of the connection) on a gap in ``pair``'s
        # update ids: remember the pair so that reset drops that book alone
        self._gap_symbol = pair
        try:
            return getattr(super(), "_check_update_id")(pair, msg)  # noqa: B009 - mixin
        finally:
            self._gap_symbol = None

    def _reset(self) -> None:
        symbol = self._gap_symbol
        if symbol is None:  # (re)connection: every book starts again
            getattr(super(), "_reset")()  # noqa: B009 - mixin
            return
        for name in _BOOK_STATE_ATTRS:
            state = getattr(self, name, None)
            if isinstance(state, dict):
                state.pop(symbol, None)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        feed: Any = self
        for conn, sub, handler, auth in feed.connect():
            if self.plain_ws and getattr(conn, "address", "").startswith("wss://"):
                conn.address = "ws://" + conn.address[len("wss://") :]
            if self.ws_proxy is not None and hasattr(conn, "ws_kwargs"):
                conn.ws_kwargs["proxy"] = self.ws_proxy  # websockets.connect(proxy=...)
            supervisor = Supervisor(conn, sub, handler, auth, self.supervisor_owner)
            feed.connection_handlers.append(supervisor)
            supervisor.start(loop)
