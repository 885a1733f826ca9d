"""``GET /metrics``: Prometheus text format, collected from the services' stats at scrape time.

Each ``ApiServer`` has its own ``CollectorRegistry`` (no global registry: several daemons may
live in one test process). Nothing is counted twice: the collector reads the counters the
components already keep (hub, feeds, detectors, store writer, notifier, trading) and the
API's own (requests, auth, WebSocket clients and drops, response cache).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from cryptomon.api.routing import CONTEXT, authorize
from cryptomon.api.services import DETECTORS, FEEDS, HUB, NOTIFIER, TRADING, WRITER

_BAD = re.compile(r"[^a-zA-Z0-9_]")
_COUNTER_HINTS = (
    "total",
    "count",
    "published",
    "dropped",
    "errors",
    "sent",
    "failed",
    "reconnects",
    "written",
    "received",
    "delivered",
    "enqueued",
)


def _name(*parts: str) -> str:
    return _BAD.sub("_", "_".join(p for p in parts if p)).strip("_").lower()


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        return float(v) if math.isfinite(float(v)) or math.isinf(float(v)) else None
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


class _Flat:
    """Collects gauges from an arbitrary nested stats mapping, labelled by nesting level."""

    def __init__(self, prefix: str, levels: Sequence[str]) -> None:
        self.prefix = prefix
        self.levels = tuple(levels)
        self.families: dict[str, tuple[tuple[str, ...], list[tuple[list[str], float]]]] = {}

    def walk(self, obj: Any, labels: list[str] | None = None, path: tuple[str, ...] = ()) -> None:
        labels = labels or []
        if isinstance(obj, Mapping):
            if _is_histogram(obj):
                return
            for k, v in obj.items():
                if isinstance(v, Mapping) and len(labels) < len(self.levels) and not path:
                    self.walk(v, [*labels, str(k)], ())
                else:
                    self.walk(v, labels, (*path, str(k)))
            return
        value = _num(obj)
        if value is None or not path:
            return
        name = _name(self.prefix, *path)
        names = self.levels[: len(labels)]
        fam = self.families.setdefault(name, (names, []))
        if fam[0] == names:
            fam[1].append((labels, value))

    def metrics(self) -> Iterator[Metric]:
        for name, (names, samples) in self.families.items():
            if name.endswith("_total") or any(name.endswith(h) for h in _COUNTER_HINTS):
                fam: Metric = CounterMetricFamily(name.removesuffix("_total"), name, labels=names)
            else:
                fam = GaugeMetricFamily(name, name, labels=names)
            for labels, value in samples:
                fam.add_metric(labels, value)  # type: ignore[attr-defined]
            yield fam


def _is_histogram(obj: Mapping[str, Any]) -> bool:
    return "buckets" in obj and "counts" in obj


def _histograms(prefix: str, obj: Any, path: tuple[str, ...] = ()) -> Iterator[Metric]:
    """``{"buckets": [upper bounds], "counts": [per bucket], "sum": s}`` -> a histogram."""
    if not isinstance(obj, Mapping):
        return
    if _is_histogram(obj):
        bounds = [float(b) for b in obj["buckets"]]
        counts = [float(c) for c in obj["counts"]]
        cum, acc = [], 0.0
        for b, c in zip(bounds, counts, strict=False):
            acc += c
            cum.append((repr(b) if not math.isinf(b) else "+Inf", acc))
        if len(counts) > len(bounds):
            acc += sum(counts[len(bounds) :])
        if not cum or cum[-1][0] != "+Inf":
            cum.append(("+Inf", acc))
        h = HistogramMetricFamily(_name(prefix, *path), "histogram from component stats")
        h.add_metric([], cum, sum_value=float(obj.get("sum", 0.0)))
        yield h
        return
    for k, v in obj.items():
        yield from _histograms(prefix, v, (*path, str(k)))


class ServiceCollector(Collector):
    """Reads every service's stats when Prometheus scrapes."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        app = self.app
        ctx = app[CONTEXT]
        yield from self._hub(app[HUB].stats())
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
            "cryptomon_api_cache_hits", "response cache hits", value=ctx.cache.hits
        )
        yield CounterMetricFamily(
            "cryptomon_api_cache_misses", "response cache misses", value=ctx.cache.misses
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
        feeds = app.get(FEEDS)
        if feeds is not None:
            with contextlib.suppress(Exception):
                yield from _feed_metrics(feeds.health())
        sources: list[tuple[web.AppKey[Any], str, Sequence[str]]] = [
            (DETECTORS, "cryptomon_detect", ("group",)),
            (NOTIFIER, "cryptomon_notify", ("group",)),
            (TRADING, "cryptomon_trading", ("group",)),
            (WRITER, "cryptomon_store", ("group",)),
        ]
        for key, prefix, levels in sources:
            svc = app.get(key)
            if svc is None:
                continue
            try:
                stats = svc.stats()
            except Exception:  # noqa: S112 - one failing source must not break the scrape
                continue
            flat = _Flat(prefix, levels)
            flat.walk(stats)
            yield from flat.metrics()
            yield from _histograms(prefix, stats)

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


_FEED_EXCHANGE = {
    "reconnects": ("cryptomon_feed_reconnects", "counter", "reconnects per exchange"),
    "parse_errors": ("cryptomon_feed_parse_errors", "counter", "malformed messages skipped"),
    "crossed_books": ("cryptomon_feed_crossed_books", "counter", "crossed books resynced"),
    "connected": ("cryptomon_feed_connected", "gauge", "1 while connected"),
}
_FEED_CHANNEL = {
    "messages": ("cryptomon_feed_messages", "counter", "messages per exchange and channel"),
    "last_message_age_s": (
        "cryptomon_feed_message_age_seconds",
        "gauge",
        "seconds since the channel's last message",
    ),
    "messages_per_s": ("cryptomon_feed_messages_per_second", "gauge", "recent message rate"),
    "gaps": ("cryptomon_feed_gaps", "counter", "sequence gaps"),
    "resyncs": ("cryptomon_feed_resyncs", "counter", "book resyncs"),
    "stalls": ("cryptomon_feed_stalls", "counter", "stall watchdog firings"),
}


def _family(name: str, kind: str, doc: str, labels: list[str]) -> Metric:
    if kind == "counter":
        return CounterMetricFamily(name, doc, labels=labels)
    return GaugeMetricFamily(name, doc, labels=labels)


def _feed_metrics(health: Mapping[str, Any]) -> Iterator[Metric]:
    """Per exchange and channel feed health (``FeedManager.health()``)."""
    ex_fams = {
        k: _family(n, kind, doc, ["exchange"]) for k, (n, kind, doc) in _FEED_EXCHANGE.items()
    }
    ch_fams = {
        k: _family(n, kind, doc, ["exchange", "channel"])
        for k, (n, kind, doc) in _FEED_CHANNEL.items()
    }
    live = GaugeMetricFamily(
        "cryptomon_feed_live", "1 while the channel is live", labels=["exchange", "channel"]
    )
    for exchange, snap in health.items():
        if not isinstance(snap, Mapping):
            continue
        for key, fam in ex_fams.items():
            v = _num(snap.get(key))
            if v is not None:
                fam.add_metric([str(exchange)], v)  # type: ignore[attr-defined]
        channels = snap.get("channels")
        if not isinstance(channels, Mapping):
            continue
        for channel, ch in channels.items():
            if not isinstance(ch, Mapping):
                continue
            for key, fam in ch_fams.items():
                v = _num(ch.get(key))
                if v is not None:
                    fam.add_metric([str(exchange), str(channel)], v)  # type: ignore[attr-defined]
            live.add_metric([str(exchange), str(channel)], float(ch.get("state") == "live"))
    yield from ex_fams.values()
    yield from ch_fams.values()
    yield live


def make_registry(app: web.Application) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(app))
    return registry


METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)


async def metrics_handler(request: web.Request) -> web.Response:
    """Prometheus exposition (scope ``read``, or open with ``api.public_read``)."""
    authorize(request, "read")
    body = generate_latest(request.app[METRICS_REGISTRY])
    resp = web.Response(body=body)
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    resp.charset = "utf-8"
    return resp
