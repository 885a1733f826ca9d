"""The collector's own ``/health`` (JSON) and ``/metrics`` (Prometheus text) on ``api.host``
and ``api.port``. Read-only and without secrets, like ``/health`` of the full API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from cryptomon.errors import ConfigError, listen_problem

log = structlog.get_logger()


def _metrics_text(health: dict[str, Any]) -> str:
    nats = health["nats"]
    collector = health["collector_id"]
    lines = []
    for key in (
        "published_batches",
        "published_events",
        "dropped_batches",
        "dropped_events",
        "publish_errors",
        "buffered_batches",
    ):
        kind = "gauge" if key.startswith("buffered") else "counter"
        name = f"cryptomon_bus_{key}" + ("_total" if kind == "counter" else "")
        lines += [f"# TYPE {name} {kind}", f'{name}{{collector="{collector}"}} {nats[key]}']
    lines += [
        "# TYPE cryptomon_bus_connected gauge",
        f'cryptomon_bus_connected{{collector="{collector}"}} {int(nats["connected"])}',
        "# TYPE cryptomon_feed_messages_total counter",
    ]
    for exchange, feed in health["feeds"].items():
        lines.append(
            f'cryptomon_feed_messages_total{{collector="{collector}",exchange="{exchange}"}} '
            f"{feed.get('messages', 0)}"
        )
    lines.append("# TYPE cryptomon_feed_quality_total counter")
    for exchange, feed in health["feeds"].items():
        for kind, value in (feed.get("quality") or {}).items():
            if kind != "stale_symbols":
                lines.append(
                    f'cryptomon_feed_quality_total{{collector="{collector}",'
                    f'exchange="{exchange}",kind="{kind}"}} {value}'
                )
    lines.append("# TYPE cryptomon_feed_stale_symbols gauge")
    for exchange, feed in health["feeds"].items():
        stale = (feed.get("quality") or {}).get("stale_symbols")
        if stale is not None:
            lines.append(
                f'cryptomon_feed_stale_symbols{{collector="{collector}",exchange="{exchange}"}} '
                f"{stale}"
            )
    return "\n".join(lines) + "\n"


class CollectorHttp:
    """A two-route aiohttp server for a collector process."""

    name = "collector-http"

    def __init__(self, *, host: str, port: int, health: Callable[[], dict[str, Any]]) -> None:
        self.host = host
        self.port = port
        self.health = health
        self.runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    async def _health(self, request: web.Request) -> web.Response:
        data = self.health()
        status = 200 if data["nats"]["connected"] else 503
        return web.Response(text=json.dumps(data), status=status, content_type="application/json")

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=_metrics_text(self.health()), content_type="text/plain")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self.runner.cleanup()
            self.runner = None
            raise ConfigError([listen_problem(self.host, self.port, exc)]) from None
        addresses = self.runner.addresses  # api.port: 0 = ephemeral
        self.bound_port = int(addresses[0][1]) if addresses else self.port
        log.info("bus.collector_http", host=self.host, port=self.bound_port)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
