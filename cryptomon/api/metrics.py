"""``GET /metrics``: Prometheus text format, collected from the services' stats at scrape time.

Each ``ApiServer`` has its own ``CollectorRegistry`` (no global registry: several daemons may
live in one test process). Nothing is counted twice: the collector reads the counters the
components already keep (hub, feeds, detectors, store writer, notifier, trading) and the
API's own (requests, auth, WebSocket clients and drops, response cache).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cryptomon.api import metrics_sources as src
from cryptomon.api.routing import CONTEXT, authorize
from cryptomon.api.services import (
    CAPABILITY_NAMES,
    DETECTORS,
    FEEDS,
    HUB,
    NOTIFIER,
    RESOURCES,
    TRADING,
    WEBHOOKS,
    WRITER,
)

log = structlog.get_logger()


class ServiceCollector(Collector):
    """Reads every service's stats when Prometheus scrapes."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        app = self.app
        ctx = app[CONTEXT]
        yield from self._hub(app[HUB].stats())
        yield from self._api(ctx)
        sources: list[tuple[web.AppKey[Any], Callable[[Any], Iterator[Metric]]]] = [
            (FEEDS, lambda f: src.feed_metrics(f.health())),
            (DETECTORS, lambda d: src.detector_metrics(d.stats())),
            (WRITER, lambda w: src.writer_metrics(w.stats())),
            (NOTIFIER, lambda n: src.notifier_metrics(n.stats())),
            (TRADING, _trading),
            (RESOURCES, lambda r: src.resource_metrics(r.stats())),
            (WEBHOOKS, lambda w: src.webhook_metrics(w.stats())),
        ]
        for key, collect in sources:
            service = app.get(key)
            if service is None:
                continue
            try:
                families = list(collect(service))
            except Exception as exc:  # one failing source must not break the scrape
                log.warning(
                    "api.metrics_source_failed", source=CAPABILITY_NAMES[key], error=repr(exc)
                )
                continue
            yield from families

    @staticmethod
    def _api(ctx: Any) -> Iterator[Metric]:
        """The API's own counters: requests, auth, cache and WebSocket clients."""
        req = CounterMetricFamily(
            "cryptomon_api_requests",
            "API requests by method and status",
            labels=["method", "status"],
        )
        for (method, status), n in sorted(ctx.requests.items()):
            req.add_metric([method, str(status)], n)
        yield req
        auth = ctx.auth
        yield CounterMetricFamily(
            "cryptomon_api_auth_failures", "failed authentications", value=auth.auth_failures
        )
        yield CounterMetricFamily(
            "cryptomon_api_rate_limited",
            "requests answered 429",
            value=auth.rate_limited + auth.throttle.throttled,
        )
        yield CounterMetricFamily(
            "cryptomon_api_inflight_refused",
            "requests answered 429 because their client address had api.max_inflight_per_ip "
            "requests in progress",
            value=ctx.inflight_refused,
        )
        yield CounterMetricFamily(
            "cryptomon_api_cache_hits", "response cache hits", value=ctx.cache.hits
        )
        yield CounterMetricFamily(
            "cryptomon_api_cache_misses", "response cache misses", value=ctx.cache.misses
        )
        yield CounterMetricFamily(
            "cryptomon_api_cache_evictions",
            "response cache entries evicted at the api.cache_entries bound",
            value=ctx.cache.evictions,
        )
        ws = ctx.ws_stats()
        yield GaugeMetricFamily(
            "cryptomon_ws_clients", "connected WebSocket clients", value=ws.get("clients", 0)
        )
        yield CounterMetricFamily(
            "cryptomon_ws_dropped", "events dropped for slow clients", value=ws.get("dropped", 0)
        )
        yield CounterMetricFamily(
            "cryptomon_ws_disconnected_slow",
            "clients disconnected for being stuck",
            value=ws.get("disconnected_slow", 0),
        )

    @staticmethod
    def _hub(stats: Mapping[str, Any]) -> Iterator[Metric]:
        pub = CounterMetricFamily(
            "cryptomon_hub_events", "events published per topic", labels=["topic"]
        )
        for topic, t in sorted(stats.get("topics", {}).items()):
            pub.add_metric([topic], t.get("published", 0))
        yield pub
        dropped = CounterMetricFamily(
            "cryptomon_hub_dropped", "events dropped per subscriber", labels=["subscriber"]
        )
        depth = GaugeMetricFamily(
            "cryptomon_hub_queue_depth", "queued events per subscriber", labels=["subscriber"]
        )
        errors = CounterMetricFamily(
            "cryptomon_hub_subscriber_errors",
            "handler errors per subscriber",
            labels=["subscriber"],
        )
        for name, s in sorted(stats.get("subscribers", {}).items()):
            errors.add_metric([name], s.get("errors", 0))
            if s.get("kind") == "queued":
                dropped.add_metric([name], s.get("dropped", 0))
                depth.add_metric([name], s.get("depth", 0))
        yield from (dropped, depth, errors)


def _trading(t: Any) -> Iterator[Metric]:
    return src.trading_metrics(t.stats(), list(t.orders(limit=100_000)), str(t.risk_state))


def make_registry(app: web.Application) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(app))
    return registry


METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)


async def metrics_handler(request: web.Request) -> web.Response:
    """Prometheus exposition (scope ``read``; never anonymous: it counts orders and PnL)."""
    authorize(request, "read")
    body = generate_latest(request.app[METRICS_REGISTRY])
    resp = web.Response(body=body)
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    resp.charset = "utf-8"
    return resp
