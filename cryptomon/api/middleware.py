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

from cryptomon.api.errors import ApiError, error_response
from cryptomon.api.guard import audit_denied, check_host
from cryptomon.api.routing import CONTEXT, PRINCIPAL, client_address
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
    return resp


async def _serve(
    request: web.Request, handler: Handler, rid: str, origin: str | None
) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    try:
        check_host(request, ctx.allowed_hosts)
        if request.method == "OPTIONS" and origin is not None:
            return _preflight(request, origin)
        # every log line of this request (ours and the services') carries its id (tokens,
        # not bound_contextvars: no generator context manager or context copy per request)
        tokens = bind_contextvars(request_id=rid)
        try:
            return await handler(request)
        finally:
            reset_contextvars(**tokens)
    except ApiError as err:
        audit_denied(request, err)
        return error_response(err, rid)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http_exception(exc, ctx.config.max_body_bytes), rid)
    except Exception as exc:
        log.error(
            "api.handler_error", request_id=rid, path=request.path, error=repr(exc), exc_info=exc
        )
        return error_response(ApiError(500, "internal error; see the daemon log"), rid)


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
