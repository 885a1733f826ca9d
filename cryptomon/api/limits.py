"""Connection limits of the embedded aiohttp server, and its answer to requests it cannot
parse.

aiohttp closes a connection whose keep-alive timer (``keepalive_timeout``, started when the
connection opens and again after each response) expires while no complete request has
arrived: set from ``api.idle_timeout_s`` it bounds idle connections and half-sent request
headers alike. It has no cap on open connections; :func:`cap_connections` adds one.

A request aiohttp cannot parse (a control character in a header, a raw byte in the URL) never
reaches the application: aiohttp answers 400 itself with its version in ``Server`` and logs
an error with the offending bytes (a bearer token, a ``?token=``) and a traceback.
:class:`_Handler` answers with ``Server: cryptomon`` and logs one warning naming the problem,
not the bytes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

log = structlog.get_logger()


class _Handler(RequestHandler):
    """aiohttp's connection handler; its answer to unparsable requests differs, and a send
    that makes no progress for ``stall_timeout_s`` aborts the connection."""

    stall_timeout_s = 0.0
    server: CappedServer | None = None

    async def _drain_helper(self) -> None:
        # every write that fills the transport's buffer waits here for the peer to read. A
        # peer that never reads (a large answer, plotly.js, asked for and left unread) held
        # its connection slot and the buffered answer for as long as it liked: aiohttp has
        # no write timeout, and the keep-alive timer only runs between requests
        if not self.stall_timeout_s or not self._paused:  # the usual case: nothing to wait
            return await super()._drain_helper()
        try:
            async with asyncio.timeout(self.stall_timeout_s):
                await super()._drain_helper()
        except TimeoutError:
            transport = self.transport
            if transport is not None:
                transport.abort()  # close() would wait to flush what the peer does not read
            if self.server is not None:
                self.server.stalled += 1
            log.info("api.stalled_send_aborted", timeout_s=self.stall_timeout_s)
            raise ConnectionResetError("the client read nothing for api.idle_timeout_s") from None

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> StreamResponse:
        resp = super().handle_error(request, status, exc, message)
        resp.headers["Server"] = "cryptomon"  # no versions, as on every other answer
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            # its message quotes the raw request line or header (a token): the first line only
            reason = (exc.message or "").splitlines()[0].rstrip(":") if exc.message else ""
            log.warning(
                "api.bad_request",
                status=exc.code,
                error=f"{type(exc).__name__}: {reason}",
                client=args[1] if len(args) > 1 else None,
            )
            return
        super().log_exception(*args, **kw)


class CappedServer(web.Server):
    """``web.Server`` with at most ``max_connections``: at the cap, the oldest idle
    connection is closed for the new one; when every connection is serving a request, the new
    one is refused (aborted)."""

    max_connections = 0
    refused = 0
    evicted = 0  # idle connections closed at the cap for a new one
    stall_timeout_s = 0.0
    stalled = 0  # connections aborted because the client stopped reading

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        if self.max_connections and len(self.connections) >= self.max_connections:
            # an idle connection (nothing or half a request sent) makes room: otherwise
            # anyone, without a token, could hold every slot by opening connections again
            # each idle_timeout_s and keep the kill switch out of reach
            idle = next((h for h in self.connections if not h._request_in_progress), None)
            if idle is not None:
                self.evicted += 1
                if self.evicted == 1 or self.evicted % 1000 == 0:
                    log.warning(
                        "api.idle_connection_closed",
                        limit=self.max_connections,
                        evicted=self.evicted,
                    )
                idle.force_close()
                super().connection_made(handler, transport)
                return
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                log.warning(
                    "api.connection_refused", limit=self.max_connections, refused=self.refused
                )
            transport.abort()
            return
        super().connection_made(handler, transport)

    def __call__(self) -> RequestHandler:
        handler = _Handler(self, loop=self._loop, **self._kwargs)
        handler.stall_timeout_s = self.stall_timeout_s
        handler.server = self
        return handler


def cap_connections(
    server: web.Server | None, limit: int, *, stall_timeout_s: float = 0.0
) -> CappedServer:
    """Turn the runner's server (after ``AppRunner.setup()``) into a :class:`CappedServer`:
    the same object and state, its own connection handlers."""
    if server is None:
        raise RuntimeError("cap_connections needs the server of a set-up AppRunner")
    server.__class__ = CappedServer
    assert isinstance(server, CappedServer)
    server.max_connections = limit
    server.stall_timeout_s = stall_timeout_s
    return server
