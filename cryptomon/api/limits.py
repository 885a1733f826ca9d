"""Connection limits of the embedded aiohttp server, and its answer to requests it cannot
parse.

aiohttp closes a connection whose keep-alive timer (``keepalive_timeout``, started when the
connection opens and again after each response) expires while no complete request has
arrived: set from ``api.idle_timeout_s`` it bounds idle connections and half-sent request
headers alike. It has no cap on open connections; :func:`cap_connections` adds one.

A request aiohttp cannot parse (a control character in a header, a raw byte in the URL) never
reaches the application: aiohttp answers 400 itself with its version in ``Server`` and logs
an error with the offending bytes (a bearer token, a ``?token=``) and a traceback.
:class:`_Handler` answers with ``Server: cryptomon`` and the API's JSON error, and logs one
warning naming the problem, not the bytes. A request line over :data:`REQUEST_LINE_MAX` bytes
(a long query) is 414 URI Too Long: aiohttp raises the same ``LineTooLong`` for it and for a
long header, and the limit the error names tells them apart (:func:`_answer_status`), so a
header's limit, :data:`HEADER_FIELD_MAX`, is set apart from the request line's.

What this takes from aiohttp: the exported ``web.RequestHandler`` and ``web.Server``, their
public methods (``handle_error``, ``log_exception``, ``connection_made``, ``connection_lost``,
``connections``, ``transport``, ``force_close``; asyncio's ``pause_writing`` and
``resume_writing``; ``max_line_size`` and ``max_field_size``, which ``LineTooLong``'s
``args`` name as its limit), and one private attribute no public API replaces:
``RequestHandler._request_in_progress`` (is this connection serving a request? only an idle
connection may be closed at the cap). :func:`check_aiohttp` verifies all of them on the
installed aiohttp when the server starts and stops it with a message naming what changed.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from cryptomon.api.errors import ApiError, error_response

log = structlog.get_logger()
_REMEDY = "install aiohttp 3.9 to 3.14 (written and tested for those), or update cryptomon"
REQUEST_LINE_MAX = 8190  # bytes of the request line (aiohttp's default): longer is 414
HEADER_FIELD_MAX = 8192  # bytes of a header's name and value: not the request line's limit
URI_TOO_LONG = 414
# the start of a header line as aiohttp's pure-Python parser quotes it: a name and a colon
# (not a URL's scheme: "http://")
_HEADER_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:(?!//)")


def _answer_status(handler: web.RequestHandler, status: int, exc: BaseException | None) -> int:
    """414 for a request line over ``handler.max_line_size``, else ``status``. aiohttp raises
    ``LineTooLong(line, limit)`` for a long request line and a long header alike; its C
    parser names the request line's limit for the URL and the header limit for a header, so
    the two limits differ (:data:`HEADER_FIELD_MAX`). Its pure-Python parser names the request
    line's limit for any line still unfinished: a header's quoted bytes begin with its name
    and a colon, a request line's with its method and a space."""
    if not isinstance(exc, LineTooLong) or len(exc.args) < 2:
        return status
    line, limit = exc.args[0], exc.args[1]
    if limit != handler.max_line_size or limit == handler.max_field_size:
        return status
    if isinstance(line, bytes | bytearray) and _HEADER_LINE.match(line):
        return status
    return URI_TOO_LONG


def _reason(exc: BaseException | None) -> str:
    """What aiohttp found wrong with a request, without the request's bytes: its message
    quotes the raw request line or header (a token) after a colon or on the next lines
    ("Got more than 8190 bytes when reading: bytearray(b'/ws?token=...')")."""
    if not isinstance(exc, HttpProcessingError) or not exc.message:
        return ""
    return exc.message.splitlines()[0].split(": ", 1)[0].rstrip(":").strip()


class _Handler(web.RequestHandler):
    """aiohttp's connection handler (made by ``web.Server`` and given this class); its
    answer to unparsable requests differs, and it tells its server when its writes stall."""

    __slots__ = ()  # the layout of web.RequestHandler: instances are re-classed, not built
    capped: CappedServer  # set on the per-server subclass

    def pause_writing(self) -> None:
        # asyncio: the transport's buffer is full, the peer is not reading
        super().pause_writing()
        self.capped.writing_paused(self)

    def resume_writing(self) -> None:
        super().resume_writing()
        self.capped.writing_resumed(self)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        status = _answer_status(self, status, exc)
        resp = super().handle_error(request, status, exc, message)
        if isinstance(resp, web.Response):
            # the API's JSON error shape, as on every other answer; aiohttp's text quoted the
            # request line back (a ?token= in a too-long URL)
            what = _reason(exc) if status < 500 else ""
            text = f"the request could not be parsed ({what})" if what else "internal error"
            if status == URI_TOO_LONG:
                text = (
                    f"the request line is over {self.max_line_size} bytes: a shorter URL "
                    "(fewer or shorter query parameters)"
                )
            shaped = error_response(ApiError(status, f"{text}; nothing was done"))
            resp.body = shaped.body
            resp.content_type = "application/json"
        resp.headers["Server"] = "cryptomon"  # no versions, as on every other answer
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            log.warning(
                "api.bad_request",
                status=_answer_status(self, exc.code, exc),
                error=f"{type(exc).__name__}: {_reason(exc)}",
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
    stall_timers: dict[web.RequestHandler, asyncio.TimerHandle]
    handler_class: type[_Handler]

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
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

    def __call__(self) -> web.RequestHandler:
        handler = super().__call__()  # aiohttp builds it with the runner's settings
        handler.__class__ = self.handler_class
        return handler

    # A peer that never reads (a large answer, plotly.js, asked for and left unread) held its
    # connection slot and the buffered answer for as long as it liked: aiohttp has no write
    # timeout, and the keep-alive timer only runs between requests. A connection whose
    # writing stays paused (no byte taken by the peer since the buffer filled) for
    # stall_timeout_s is aborted (close() would wait to flush what the peer does not read).

    def writing_paused(self, handler: web.RequestHandler) -> None:
        if self.stall_timeout_s:
            timer = asyncio.get_running_loop().call_later(
                self.stall_timeout_s, self._stalled, handler
            )
            old = self.stall_timers.pop(handler, None)
            if old is not None:
                old.cancel()
            self.stall_timers[handler] = timer

    def writing_resumed(self, handler: web.RequestHandler) -> None:
        timer = self.stall_timers.pop(handler, None)
        if timer is not None:
            timer.cancel()

    def _stalled(self, handler: web.RequestHandler) -> None:
        self.stall_timers.pop(handler, None)
        transport = handler.transport
        if transport is None:
            return
        transport.abort()
        self.stalled += 1
        log.info("api.stalled_send_aborted", timeout_s=self.stall_timeout_s)

    def connection_lost(
        self, handler: web.RequestHandler, exc: BaseException | None = None
    ) -> None:
        self.writing_resumed(handler)  # no timer outlives its connection
        super().connection_lost(handler, exc)


def cap_connections(
    server: web.Server | None, limit: int, *, stall_timeout_s: float = 0.0
) -> CappedServer:
    """Turn the runner's server (after ``AppRunner.setup()``) into a :class:`CappedServer`:
    the same object and state, its own connection handlers. Raises ``RuntimeError`` naming
    what changed when the installed aiohttp lacks what it needs (:func:`check_aiohttp`)."""
    if server is None:
        raise RuntimeError("cap_connections needs the server of a set-up AppRunner")
    try:
        server.__class__ = CappedServer
    except TypeError as exc:  # web.Server's layout changed (e.g. gained __slots__)
        raise RuntimeError(
            f"aiohttp {aiohttp.__version__}: web.Server cannot be extended ({exc}); "
            "cryptomon.api.limits needs it for api.max_connections: " + _REMEDY
        ) from None
    assert isinstance(server, CappedServer)
    server.max_connections = limit
    server.stall_timeout_s = stall_timeout_s
    server.stall_timers = {}
    server.handler_class = type("_ServerHandler", (_Handler,), {"__slots__": (), "capped": server})
    check_aiohttp(server)
    return server


def check_aiohttp(server: web.Server) -> None:
    """Fail at startup, naming the attribute, when the installed aiohttp no longer has what
    :class:`CappedServer` relies on (its only private one, ``_request_in_progress``, and the
    methods it overrides), instead of failing on the first connection or silently never
    closing idle connections at the cap."""
    problems: list[str] = []
    for cls, names in (
        (web.RequestHandler, ("handle_error", "log_exception", "pause_writing", "resume_writing")),
        (web.Server, ("connection_made", "connection_lost", "connections", "__call__")),
    ):
        problems += [f"{cls.__name__}.{n}" for n in names if not hasattr(cls, n)]
    accepted = inspect.signature(web.RequestHandler.__init__).parameters
    for name in ("auto_decompress", "max_line_size", "max_field_size"):  # ApiServer.start's
        if name not in accepted:
            problems.append(f"RequestHandler({name}=)")
    if not problems:
        params = list(inspect.signature(web.RequestHandler.handle_error).parameters)
        if params[:5] != ["self", "request", "status", "exc", "message"]:
            problems.append(f"RequestHandler.handle_error{tuple(params)}")
        try:
            probe = server()  # a handler as a connection gets it (no connection made)
        except TypeError as exc:  # __class__ assignment: the handler's layout changed
            problems.append(f"RequestHandler's layout ({exc})")
        else:
            if not isinstance(getattr(probe, "_request_in_progress", None), bool):
                problems.append("RequestHandler._request_in_progress (a bool)")
            if not hasattr(probe, "transport"):
                problems.append("RequestHandler.transport")
            for name in ("max_line_size", "max_field_size"):
                if not isinstance(getattr(probe, name, None), int):
                    problems.append(f"RequestHandler.{name} (an int)")
    if problems:
        raise RuntimeError(
            f"aiohttp {aiohttp.__version__} lacks {', '.join(problems)}, which "
            "cryptomon.api.limits needs (api.max_connections, api.idle_timeout_s for stalled "
            "answers): " + _REMEDY
        )
