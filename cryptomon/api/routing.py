"""Declarative routes: one :class:`Route` per endpoint carries everything the wrapper needs
(scope, services, query/body/response models) and everything ``openapi.py`` documents, so
the document is generated from the same models the handlers use and cannot drift."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

import orjson
import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from cryptomon.api.auth import Authenticator, Principal, Scope
from cryptomon.api.cache import ResponseCache
from cryptomon.api.errors import ApiError, validation_error
from cryptomon.api.forwarded import TrustedProxies
from cryptomon.api.guard import allowed_hosts
from cryptomon.api.idempotency import IdempotencyLedger
from cryptomon.api.services import CAPABILITY_NAMES
from cryptomon.config import ApiConfig
from cryptomon.errors import TemporaryError, repeated_key

T = TypeVar("T")
log = structlog.get_logger()


@dataclass
class ApiContext:
    """Server-wide state the handlers share (one per ``ApiServer``)."""

    config: ApiConfig
    auth: Authenticator
    cache: ResponseCache
    version: str
    started_monotonic: float
    components: Callable[[], dict[str, str]] = dict
    requests: dict[tuple[str, int], int] = field(default_factory=dict)
    ws_stats: Callable[[], dict[str, Any]] = dict
    idempotency: IdempotencyLedger = field(default_factory=IdempotencyLedger)
    # requests in progress per client address key (api.max_inflight_per_ip); 0s are removed
    inflight: dict[str, int] = field(default_factory=dict)
    inflight_refused: int = 0

    @cached_property
    def allowed_hosts(self) -> frozenset[str]:
        """Host names this server answers to (``api.allowed_hosts``)."""
        return allowed_hosts(self.config)

    @cached_property
    def proxies(self) -> TrustedProxies:
        """The reverse proxies whose forwarded client address counts (``api.trusted_proxies``)."""
        return TrustedProxies(self.config.trusted_proxies, self.config.trusted_proxy_header)


CONTEXT = web.AppKey("api_context", ApiContext)
PRINCIPAL = web.RequestKey("principal", Principal)
CLIENT_ADDRESS = web.RequestKey("client_address", str)


@dataclass
class Call:
    """One parsed request as handed to a handler."""

    request: web.Request
    principal: Principal
    query: Any = None
    body: Any = None

    @property
    def ctx(self) -> ApiContext:
        return self.request.app[CONTEXT]

    def service(self, key: web.AppKey[T]) -> T:
        return self.request.app[key]


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    scope: Scope | None
    response: Any
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    needs: tuple[web.AppKey[Any], ...] = ()
    errors: tuple[int, ...] = ()
    cache_group: str | None = None
    description: str = ""
    public: bool = False  # market data / anomalies: anonymous reads with api.public_read
    # body media types accepted (webhook routes add "text/plain": senders that cannot set it)
    content_types: frozenset[str] = frozenset({"application/json"})
    # what a 200 carries: JSON of ``response``, or (``response=None``) a document of this type
    media_type: str = "application/json"

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    def statuses(self) -> list[int]:
        out = set(self.errors) | {404, 429, 503}
        if self.scope is not None:
            out |= {401, 403}
        if self.query is not None:
            out.add(422)
        if self.body is not None:
            out |= {400, 408, 413, 415, 422}
        return sorted(out)


class RouteTable:
    """Collects the routes of one module: ``@table.get(path, ...)``."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.routes: list[Route] = []

    def route(self, method: str, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            summary = kw.pop("summary", None) or (fn.__doc__ or "").strip().splitlines()[0]
            self.routes.append(Route(method, path, fn, summary, self.tag, **kw))
            return fn

        return deco

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kw)


def client_address(request: web.Request) -> str:
    """Who is asking: the peer's address, or behind a proxy of ``api.trusted_proxies`` the
    address it forwarded (``cryptomon.api.forwarded``). Every per-address limit, the access
    log and the audit use this."""
    found = request.get(CLIENT_ADDRESS)  # (asked several times per request: found once)
    if found is None:
        proxies = request.app[CONTEXT].proxies
        found = proxies.client(request) if proxies else (request.remote or "unknown")
        request[CLIENT_ADDRESS] = found
    return found


def authorize(request: web.Request, scope: Scope, *, public: bool = False) -> Principal:
    """Authenticate the request for ``scope`` (raises 401/403/429) and remember who it was."""
    ctx = request.app[CONTEXT]
    principal = ctx.auth.authenticate(
        request.headers.get("Authorization"), client_address(request), scope, public=public
    )
    request[PRINCIPAL] = principal
    return principal


_ANON = Principal("anonymous", frozenset(), "", 1.0, 1)


def _parse_query(route: Route, request: web.Request) -> Any:
    assert route.query is not None
    raw: dict[str, Any] = {}
    for key in request.query:
        if len(request.query.getall(key)) > 1:  # no parameter takes a list
            raise _given_twice("query", key, "parameter")
        raw[key] = request.query[key]
    try:
        return route.query.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, "query") from None


async def _parse_body(route: Route, request: web.Request) -> Any:
    """The JSON body of ``route``: one of its media types, an object, finite numbers, strict
    types, bounded nesting (pydantic-core's parser refuses deep nesting), no NUL characters."""
    assert route.body is not None
    if request.content_type not in route.content_types:
        expected = sorted(route.content_types)
        raise ApiError(
            415,
            f"Content-Type {request.content_type!r} is not accepted; send {' or '.join(expected)}",
            details={"expected": expected},
        )
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding != "identity":  # the server does not inflate bodies (ApiServer.start)
        raise ApiError(
            415,
            f"Content-Encoding {encoding[:20]!r} is not accepted; send the body uncompressed",
            code="unsupported_content_encoding",
        )
    timeout_s = request.app[CONTEXT].config.body_timeout_s
    try:
        # client_max_size bounds its size (413); the deadline its pace: a sender trickling a
        # byte at a time held a request slot for the whole api.request_timeout_s
        async with asyncio.timeout(timeout_s):
            raw = await request.read()
    except ConnectionError:
        # the sender hung up mid-body: nobody to answer, and not the daemon's error (this
        # was an error-level log line with a traceback, for anyone to cause at will)
        raise ApiError(
            400,
            "the connection closed before the request body was complete",
            code="body_incomplete",
        ) from None
    except TimeoutError:
        raise ApiError(
            408,
            f"request body not received within api.body_timeout_s ({timeout_s:g} s); "
            "send the whole body at once",
            details={"body_timeout_s": timeout_s},
        ) from None
    if not raw.strip():
        raise ApiError(400, "a JSON object body is required")
    try:
        body = route.body.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            raise ApiError(400, f"request body is not valid JSON: {first['msg']}") from None
        if first["type"] == "model_type" and not first.get("loc"):
            raise ApiError(400, "request body must be a JSON object") from None
        raise validation_error(exc, "body") from None
    # the parser keeps the last of a repeated key: {"action": "engage", "action": "release"}
    # released the kill switch. Checked once the body is valid (so its nesting is bounded).
    repeated = repeated_key(raw)
    if repeated is not None:
        raise _given_twice("body", repeated, "field")
    return body


def _given_twice(part: str, path: str, what: str) -> ApiError:
    """The 422 for a key of the query or the body (``path`` within it) given twice."""
    message = f"given more than once; send each {what} once"
    field = f"{part}.{path}"
    return ApiError(
        422,
        f"invalid {part}: {field} {message}",
        details={"fields": [{"field": field, "message": message, "value": None}]},
    )


# datetimes and dataclasses keep going through ``default=str`` as they did with json.dumps
_DUMP_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def _dump(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode()
    # plain data: orjson (Decimal and other unknown types as their str, as json.dumps did)
    return orjson.dumps(value, default=str, option=_DUMP_OPTIONS)


def make_handler(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The aiohttp handler of ``route``: auth, service presence, parsing, cache, serialization."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if route.scope is not None:
            principal = authorize(request, route.scope, public=route.public)
        else:
            request.app[CONTEXT].auth.limit_address(client_address(request))
            principal = _ANON
        for need in route.needs:
            if request.app.get(need) is None:
                capability = CAPABILITY_NAMES.get(need, "service")
                raise ApiError(
                    404,
                    f"{capability} is not available in this daemon",
                    code="capability_unavailable",
                    details={"capability": capability},
                )
        call = Call(request, principal)
        if route.query is not None:
            call.query = _parse_query(route, request)
        ctx = request.app[CONTEXT]
        try:
            async with asyncio.timeout(ctx.config.request_timeout_s):
                if route.body is not None:  # a half-sent body is bounded by the timeout too
                    call.body = await _parse_body(route, request)
                if route.cache_group is not None and ctx.cache.enabled:
                    key = f"{route.path}?{call.query.model_dump_json() if call.query else ''}"

                    async def load() -> bytes:
                        return _dump(await route.handler(call))

                    body = await ctx.cache.get(route.cache_group, key, load)
                else:
                    result = await route.handler(call)
                    if isinstance(result, web.StreamResponse):
                        return result
                    body = _dump(result)
        except TimeoutError:
            raise ApiError(
                503,
                f"no answer within api.request_timeout_s ({ctx.config.request_timeout_s:g} s)",
                code="timeout",
                headers={"Retry-After": "5"},
            ) from None
        except (TemporaryError, SQLAlchemyError) as exc:
            log.warning("api.store_error", path=request.path, error=type(exc).__name__)
            raise ApiError(
                503,
                f"the store is unavailable ({type(exc).__name__}); try again later",
                code="store_unavailable",
                headers={"Retry-After": "5"},
            ) from None
        return web.Response(body=body, content_type="application/json")

    handle.__name__ = route.operation_id
    return handle
