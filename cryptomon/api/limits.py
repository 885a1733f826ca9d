"""Connection limits of the embedded aiohttp server.

aiohttp closes a connection whose keep-alive timer (``keepalive_timeout``, started when the
connection opens and again after each response) expires while no complete request has
arrived: set from ``api.idle_timeout_s`` it bounds idle connections and half-sent request
headers alike. It has no cap on open connections; :func:`cap_connections` adds one.
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = structlog.get_logger()


class CappedServer(web.Server):
    """``web.Server`` that refuses (aborts) connections beyond ``max_connections``."""

    max_connections = 0
    refused = 0

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        if self.max_connections and len(self.connections) >= self.max_connections:
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                log.warning(
                    "api.connection_refused", limit=self.max_connections, refused=self.refused
                )
            transport.abort()
            return
        super().connection_made(handler, transport)


def cap_connections(server: web.Server | None, limit: int) -> CappedServer:
    """Turn the runner's server (after ``AppRunner.setup()``) into a :class:`CappedServer`:
    the same object and state, one overridden method."""
    if server is None:
        raise RuntimeError("cap_connections needs the server of a set-up AppRunner")
    server.__class__ = CappedServer
    assert isinstance(server, CappedServer)
    server.max_connections = limit
    return server
