"""``ApiServer``: the embedded aiohttp server (``AppRunner`` + ``TCPSite``) as a component."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

import structlog
from aiohttp import web

from cryptomon import __version__
from cryptomon.api import services as svc
from cryptomon.api.auth import Authenticator
from cryptomon.api.cache import ResponseCache
from cryptomon.api.forwarded import PROXIES
from cryptomon.api.guard import harden
from cryptomon.api.limits import (
    HEADER_FIELD_MAX,
    REQUEST_LINE_MAX,
    CappedServer,
    cap_connections,
)
from cryptomon.api.metrics import METRICS_REGISTRY, make_registry, metrics_handler
from cryptomon.api.middleware import api_middleware
from cryptomon.api.openapi import build_openapi
from cryptomon.api.rest import all_routes
from cryptomon.api.routing import CONTEXT, ApiContext, client_address, make_handler
from cryptomon.api.static_files import StaticFiles
from cryptomon.api.tls import server_context
from cryptomon.api.ws import WsManager
from cryptomon.clock import Clock
from cryptomon.config import ApiConfig
from cryptomon.errors import ConfigError, Problem, listen_problem
from cryptomon.events import Anomaly, NotificationRecord
from cryptomon.hub import Hub, InlineSubscription

log = structlog.get_logger()
ServiceT = TypeVar("ServiceT")


class ApiServer:
    """REST + WebSocket API. Every service is optional: its endpoints answer 404 without it."""

    name = "api"

    def __init__(
        self,
        *,
        config: ApiConfig,
        hub: Hub,
        clock: Clock,
        queries: svc.StoreQueries | None = None,
        market: svc.Market | None = None,
        feeds: svc.Feeds | None = None,
        detectors: svc.Detectors | None = None,
        notifier: svc.Notifier | None = None,
        trading: svc.Trading | None = None,
        db: svc.Database | None = None,
        writer: svc.Stats | None = None,
        webhooks: svc.Webhooks | None = None,
        backtests: svc.Backtests | None = None,
        resources: svc.Stats | None = None,
        version: str = __version__,
        components: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.config = config
        self.hub = hub
        self.clock = clock
        self.version = version
        self.ws = WsManager(hub=hub, config=config, clock=clock)
        self.cache = ResponseCache(
            clock=clock, ttl_s=config.cache_ttl_s, max_entries=config.cache_entries
        )
        self.routes = all_routes()
        self.openapi = build_openapi(self.routes, version=version)
        self._openapi_body = json.dumps(self.openapi).encode()
        self.app = web.Application(
            middlewares=[api_middleware], client_max_size=config.max_body_bytes
        )
        self.app.on_response_prepare.append(harden)
        self.app[CONTEXT] = ApiContext(
            config=config,
            auth=Authenticator(config, clock=clock),
            cache=self.cache,
            version=version,
            started_monotonic=clock.monotonic(),
            components=components or self._components,
            ws_stats=self.ws.stats,
        )
        self.app[PROXIES] = self.app[CONTEXT].proxies  # HSTS behind a TLS-terminating proxy
        self.app[svc.HUB] = hub
        self.app[svc.CLOCK] = clock
        # an absent service (None) has no key: its endpoints answer 404
        _provide(self.app, svc.QUERIES, queries)
        _provide(self.app, svc.MARKET, market)
        _provide(self.app, svc.FEEDS, feeds)
        _provide(self.app, svc.DETECTORS, detectors)
        _provide(self.app, svc.NOTIFIER, notifier)
        _provide(self.app, svc.TRADING, trading)
        _provide(self.app, svc.DATABASE, db)
        _provide(self.app, svc.WRITER, writer)
        _provide(self.app, svc.WEBHOOKS, webhooks)
        _provide(self.app, svc.BACKTESTS, backtests)
        _provide(self.app, svc.RESOURCES, resources)
        self.app[METRICS_REGISTRY] = make_registry(self.app)
        self._add_routes()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.connections: CappedServer | None = None
        self._invalidators: list[InlineSubscription] = []
        self.port: int | None = None

    def _add_routes(self) -> None:
        for route in self.routes:
            handler = make_handler(route)
            self.app.router.add_route(route.method, route.path, handler)
            if route.method == "GET":  # HEAD as aiohttp's add_get gives it: headers, no body
                self.app.router.add_route("HEAD", route.path, handler)
        self.static = StaticFiles()
        self.static.add_routes(self.app.router)
        self.app.router.add_get("/api/v1/openapi.json", self._openapi)
        self.app.router.add_get("/metrics", metrics_handler)
        self.app.router.add_get("/ws", self.ws.handle)

    @property
    def app_context(self) -> ApiContext:
        return self.app[CONTEXT]

    def _components(self) -> dict[str, str]:
        return {
            svc.CAPABILITY_NAMES[key]: "available" if self.app.get(key) is not None else "absent"
            for key in svc.CAPABILITY_NAMES
        }

    async def _openapi(self, request: web.Request) -> web.Response:
        self.app_context.auth.limit_address(client_address(request))
        return web.Response(body=self._openapi_body, content_type="application/json")

    @property
    def url(self) -> str:
        """Base URL of the running server (``http://127.0.0.1:PORT``)."""
        if self.port is None:
            raise RuntimeError("the API server is not running")
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        scheme = "https" if self.config.tls_cert_file is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    async def start(self) -> None:
        cfg = self.config
        if not cfg.tokens and not cfg.is_loopback:
            raise ConfigError(
                [
                    Problem(
                        "api.host",
                        cfg.host,
                        "a loopback address while api.tokens is empty: it is not a loopback "
                        "address, refusing to serve the API unauthenticated on the network "
                        "(configure tokens or bind 127.0.0.1)",
                    )
                ]
            )
        tls = None
        if cfg.tls_cert_file is not None and cfg.tls_key_file is not None:
            tls = server_context(cfg.tls_cert_file, cfg.tls_key_file)  # HTTPS and WSS
        self._invalidators = [
            self.hub.subscribe(
                Anomaly, lambda ev: self.cache.invalidate("anomalies"), name="api.cache.anomalies"
            ),
            self.hub.subscribe(
                NotificationRecord,
                lambda ev: self.cache.invalidate("notifications"),
                name="api.cache.notifications",
            ),
        ]
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            shutdown_timeout=cfg.shutdown_timeout_s,
            keepalive_timeout=cfg.idle_timeout_s,  # idle and half-sent-header connections
            # request bodies are never inflated: a 512 KB gzip of 512 MB cost ~1.3 s of the
            # event loop's CPU before its 413 (bodies with a Content-Encoding get 415)
            auto_decompress=False,
            # a too-long request line is 414, a too-long header 400: told apart by the limit
            # aiohttp's error names (cryptomon.api.limits)
            max_line_size=REQUEST_LINE_MAX,
            max_field_size=HEADER_FIELD_MAX,
        )
        await self._runner.setup()
        self.connections = cap_connections(
            self._runner.server, cfg.max_connections, stall_timeout_s=cfg.idle_timeout_s
        )
        self._site = web.TCPSite(
            self._runner, cfg.host, cfg.port, reuse_address=True, ssl_context=tls
        )
        try:
            await self._site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise ConfigError([listen_problem(cfg.host, cfg.port, exc)]) from None
        addresses = self._runner.addresses  # the bound port (api.port: 0 = ephemeral)
        self.port = int(addresses[0][1]) if addresses else cfg.port
        log.info(
            "api.listening",
            host=cfg.host,
            port=self.port,
            tokens=len(cfg.tokens),
            public_read=cfg.public_read,
            tls=tls is not None,
        )

    async def stop(self) -> None:
        for sub in self._invalidators:
            sub.close()
        self._invalidators = []
        await self.ws.close_all(timeout=min(2.0, self.config.shutdown_timeout_s))
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.port = None


def _provide(app: web.Application, key: web.AppKey[ServiceT], service: ServiceT | None) -> None:
    """Set ``app[key]`` when the service exists; handlers reach it through the typed key."""
    if service is not None:
        app[key] = service
