"""Request id, Host check, access log, error rendering, CORS and the audit of refused
attempts, for every request."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from structlog.contextvars import bind_contextvars, reset_contextvars

from cryptomon.api.auth import address_key
from cryptomon.api.errors import ApiError, error_response
from cryptomon.api.guard import audit_denied, check_host
from cryptomon.api.routing import CONTEXT, PRINCIPAL, ApiContext, client_address
from cryptomon.api.static_files import PLOTLY_PATH
from cryptomon.events import AUDIT_ORIGIN
from cryptomon.log import access_log

log = structlog.get_logger()
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
REQUEST_ID = web.RequestKey("request_id", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_random_bits = random.Random().getrandbits  # noqa: S311 - a correlation id, not a secret
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-ID", "")
    if _REQUEST_ID_RE.match(given):
        return given
    # 16 hex, like before; a correlation id, not a secret: no os.urandom system call (which
    # gives up the GIL and waits to take it back from a busy thread) per request
    return f"{_random_bits(64):016x}"


def _from_http_exception(exc: web.HTTPException, max_body: int) -> ApiError:
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return ApiError(
            413,
            f"request body larger than api.max_body_bytes ({max_body} bytes)",
            details={"max_body_bytes": max_body},
        )
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return ApiError(
            405,
            f"method {exc.method} not allowed; allowed: {', '.join(sorted(exc.allowed_methods))}",
            headers={"Allow": ",".join(sorted(exc.allowed_methods))},
        )
    if isinstance(exc, web.HTTPNotFound):
        return ApiError(404, "no such endpoint (see /api/v1/openapi.json)")
    return ApiError(exc.status, exc.reason)


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id + Host check + access log line + one error shape + CORS headers; refused
    attempts are audited."""
    start = time.perf_counter()
    rid = _request_id(request)
    request[REQUEST_ID] = rid
    ctx = request.app[CONTEXT]
    origin = request.headers.get("Origin")
    # every audit entry made while serving this request says who asked, from where
    origin_token = AUDIT_ORIGIN.set((client_address(request), rid))
    try:
        resp = await _serve(request, handler, rid, origin)
    finally:
        AUDIT_ORIGIN.reset(origin_token)
    if not resp.prepared:
        resp.headers["X-Request-ID"] = rid
        if origin is not None:
            _cors_headers(ctx.config.cors_origins, ctx.config.cors_allow_credentials, origin, resp)
    method = request.method if request.method in _METHODS else "OTHER"  # bounded labels
    key = (method, resp.status)
    ctx.requests[key] = ctx.requests.get(key, 0) + 1
    if access_log.enabled:  # nothing is built when the level filters the line out
        principal = request.get(PRINCIPAL)
        access_log(
            request_id=rid,
            method=request.method,
            path=request.path,
            status=resp.status,
            duration_ms=round((time.perf_counter() - start) * 1000, 3),
            client=client_address(request),
            principal=principal.name if principal is not None else None,
        )
    if resp.status == 408 and not resp.prepared:
        await _answer_and_close(request, resp)
    return resp


async def _answer_and_close(request: web.Request, resp: web.StreamResponse) -> None:
    """Send ``resp`` and close the connection: after an answer to an unfinished body aiohttp
    would otherwise keep reading (discarding) what the sender trickles for up to its lingering
    time, 10 s, on a connection that no longer counts as busy."""
    await resp.prepare(request)
    await resp.write_eof()
    transport = request.transport
    if transport is not None:
        transport.close()  # after the buffered answer is written


_WS_PATH = "/ws"  # a WebSocket session lasts hours: counted by api.ws_max_clients instead
# Not counted against api.max_inflight_per_ip: the dashboard's files (answered from memory,
# no token, still rate limited) and the liveness probe. A page loading while its address
# had its API requests in progress (a slow link, or many users behind one proxy) was refused
# its own scripts; a probe through that proxy saw the daemon as down.
_UNCOUNTED_PATHS = frozenset({"/", PLOTLY_PATH, "/health"})
_UNCOUNTED_PREFIX = "/static/"


def _counted(path: str) -> bool:
    """Whether a request to ``path`` holds one of its address's in-progress slots."""
    return not (path == _WS_PATH or path in _UNCOUNTED_PATHS or path.startswith(_UNCOUNTED_PREFIX))


def _enter(ctx: ApiContext, request: web.Request) -> str:
    """Count one request in progress for its client address; 429 past
    ``api.max_inflight_per_ip``. Returns the key to release."""
    key = address_key(client_address(request))
    held = ctx.inflight.get(key, 0)
    cap = ctx.config.max_inflight_per_ip
    if held >= cap:
        # one address trickling bodies or stalling on slow endpoints could otherwise hold
        # every request (the rate limit admits burst + rate x request_timeout_s at once)
        ctx.inflight_refused += 1
        if ctx.inflight_refused == 1 or ctx.inflight_refused % 1000 == 0:
            log.warning("api.inflight_refused", limit=cap, refused=ctx.inflight_refused)
        raise ApiError(
            429,
            f"{cap} requests from this address are already in progress "
            "(api.max_inflight_per_ip); wait for their answers",
            code="too_many_in_progress",
            details={"max_inflight_per_ip": cap, "retry_after_s": 1},
            headers={"Retry-After": "1"},
        )
    ctx.inflight[key] = held + 1
    return key


def _leave(ctx: ApiContext, key: str) -> None:
    held = ctx.inflight.get(key, 0) - 1
    if held > 0:
        ctx.inflight[key] = held
    else:
        ctx.inflight.pop(key, None)  # the table holds only addresses with requests open


async def _serve(
    request: web.Request, handler: Handler, rid: str, origin: str | None
) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    held: str | None = None
    try:
        check_host(request, ctx.allowed_hosts)
        if request.method == "OPTIONS" and origin is not None:
            return _preflight(request, origin)
        if _counted(request.path):
            held = _enter(ctx, request)
        # every log line of this request (ours and the services') carries its id (tokens,
        # not bound_contextvars: no generator context manager or context copy per request)
        tokens = bind_contextvars(request_id=rid)
        try:
            return await handler(request)
        finally:
            reset_contextvars(**tokens)
    except ApiError as err:
        audit_denied(request, err)
        resp = error_response(err, rid)
        if err.status == 408:
            resp.force_close()  # Connection: close; sent and closed by api_middleware
        return resp
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http_exception(exc, ctx.config.max_body_bytes), rid)
    except Exception as exc:
        log.error(
            "api.handler_error", request_id=rid, path=request.path, error=repr(exc), exc_info=exc
        )
        return error_response(ApiError(500, "internal error; see the daemon log"), rid)
    finally:
        if held is not None:
            _leave(ctx, held)


def _allowed(origins: list[str], origin: str) -> bool:
    return "*" in origins or origin in origins


def _cors_headers(
    origins: list[str], credentials: bool, origin: str, resp: web.StreamResponse
) -> None:
    if not _allowed(origins, origin):
        return
    # Never '*' together with credentials: echo the one allowed origin instead.
    resp.headers["Access-Control-Allow-Origin"] = "*" if "*" in origins else origin
    resp.headers["Vary"] = "Origin"
    resp.headers["Access-Control-Expose-Headers"] = "X-Request-ID, Retry-After"
    if credentials and "*" not in origins:
        resp.headers["Access-Control-Allow-Credentials"] = "true"


def _preflight(request: web.Request, origin: str) -> web.StreamResponse:
    cfg = request.app[CONTEXT].config
    if not _allowed(cfg.cors_origins, origin):
        raise ApiError(403, f"origin {origin!r} is not in api.cors_origins")
    resp = web.Response(status=204)
    resp.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
    resp.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, X-Request-ID"
    resp.headers["Access-Control-Max-Age"] = "600"
    return resp
