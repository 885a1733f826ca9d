"""Prometheus families built from each subsystem's ``stats()``/``health()`` at scrape time.

One function per source, written against the shapes those components document; a missing
key simply yields no sample. Counters keep the components' own totals (nothing is counted
twice here).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)


def num(v: Any) -> float | None:
    """A finite-or-infinite float from a number or numeric string; None otherwise."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        f = float(v)
    elif isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return None
    else:
        return None
    return None if math.isnan(f) else f


def _m(obj: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(p)
    return obj


def _counter(name: str, doc: str, value: Any) -> Iterator[Metric]:
    v = num(value)
    if v is not None:
        yield CounterMetricFamily(name, doc, value=v)


def _gauge(name: str, doc: str, value: Any) -> Iterator[Metric]:
    v = num(value)
    if v is not None:
        yield GaugeMetricFamily(name, doc, value=v)


def _labelled(
    cls: type[CounterMetricFamily] | type[GaugeMetricFamily],
    name: str,
    doc: str,
    label: str,
    values: Any,
) -> Iterator[Metric]:
    if not isinstance(values, Mapping):
        return
    fam = cls(name, doc, labels=[label])
    for key, value in sorted(values.items(), key=lambda kv: str(kv[0])):
        v = num(value)
        if v is not None:
            fam.add_metric([str(key)], v)
    yield fam


def histogram(name: str, doc: str, h: Any) -> Iterator[Metric]:
    """``{"buckets": {"0.001": cumulative, ..., "+Inf": n}, "count": n, "sum": s}``."""
    buckets = _m(h, "buckets")
    if not isinstance(buckets, Mapping):
        return
    points: list[tuple[float, str, float]] = []
    for le, count in buckets.items():
        bound = num(le) if le != "+Inf" else math.inf
        c = num(count)
        if bound is not None and c is not None:
            points.append((bound, "+Inf" if math.isinf(bound) else str(le), c))
    points.sort()
    if not points or not math.isinf(points[-1][0]):
        points.append((math.inf, "+Inf", num(_m(h, "count")) or (points[-1][2] if points else 0)))
    fam = HistogramMetricFamily(name, doc)
    fam.add_metric([], [(le, c) for _, le, c in points], sum_value=num(_m(h, "sum")) or 0.0)
    yield fam


# --------------------------------------------------------------------------- feeds

_FEED_EXCHANGE = {
    "reconnects": ("cryptomon_feed_reconnects", True, "reconnects per exchange"),
    "parse_errors": ("cryptomon_feed_parse_errors", True, "malformed messages skipped"),
    "crossed_books": ("cryptomon_feed_crossed_books", True, "crossed books resynced"),
    "unquoted_tickers": (
        "cryptomon_feed_unquoted_tickers",
        True,
        "tickers without a best bid or ask, not published",
    ),
    "book_tops": (
        "cryptomon_feed_book_tops",
        True,
        "BookTop events published (at most one per symbol and loop turn: conflated book updates)",
    ),
    "connected": ("cryptomon_feed_connected", False, "1 while connected"),
}
_FEED_CHANNEL = {
    "messages": ("cryptomon_feed_messages", True, "messages per exchange and channel"),
    "last_message_age_s": (
        "cryptomon_feed_message_age_seconds",
        False,
        "seconds since the channel's last message",
    ),
    "messages_per_s": ("cryptomon_feed_messages_per_second", False, "recent message rate"),
    "gaps": ("cryptomon_feed_gaps", True, "sequence gaps"),
    "resyncs": ("cryptomon_feed_resyncs", True, "book resyncs"),
    "stalls": ("cryptomon_feed_stalls", True, "stall watchdog firings"),
}


def _family(name: str, counter: bool, doc: str, labels: list[str]) -> Any:
    cls = CounterMetricFamily if counter else GaugeMetricFamily
    return cls(name, doc, labels=labels)


def feed_metrics(health: Mapping[str, Any]) -> Iterator[Metric]:
    """``FeedManager.health()``: ``{exchange: {..., "channels": {channel: {...}}}}``."""
    ex = {k: _family(n, c, d, ["exchange"]) for k, (n, c, d) in _FEED_EXCHANGE.items()}
    ch = {k: _family(n, c, d, ["exchange", "channel"]) for k, (n, c, d) in _FEED_CHANNEL.items()}
    live = GaugeMetricFamily(
        "cryptomon_feed_live", "1 while the channel is live", labels=["exchange", "channel"]
    )
    quality = CounterMetricFamily(
        "cryptomon_feed_quality",
        "market data kept away by the quality layer (duplicates, historical, bad_prints, "
        "bad_books), real moves accepted, first prints passed unjudged (unjudged) and trades "
        "judged against the ticker or other venues (ticker_/venue_judged, ..._refuted)",
        labels=["exchange", "kind"],
    )
    symbols = GaugeMetricFamily(
        "cryptomon_feed_symbols",
        "symbols per state: stale (silent past their bound), delisted, unknown (no spec)",
        labels=["exchange", "state"],
    )
    for exchange, snap in health.items():
        if not isinstance(snap, Mapping):
            continue
        _quality_metrics(str(exchange), snap, quality, symbols)
        for key, fam in ex.items():
            v = num(snap.get(key))
            if v is not None:
                fam.add_metric([str(exchange)], v)
        channels = snap.get("channels")
        for channel, c in channels.items() if isinstance(channels, Mapping) else ():
            if not isinstance(c, Mapping):
                continue
            for key, fam in ch.items():
                v = num(c.get(key))
                if v is not None:
                    fam.add_metric([str(exchange), str(channel)], v)
            live.add_metric([str(exchange), str(channel)], float(c.get("state") == "live"))
    yield from ex.values()
    yield from ch.values()
    yield live
    yield quality
    yield symbols
    yield from _collector_metrics(health)


_COLLECTOR = {
    "published_events": ("cryptomon_bus_collector_published_events", True, "events published"),
    "dropped_events": (
        "cryptomon_bus_collector_dropped_events",
        True,
        "market data dropped beyond the buffer while NATS was away",
    ),
    "buffered_batches": ("cryptomon_bus_collector_buffered_batches", False, "batches waiting"),
    "connected": ("cryptomon_bus_collector_connected", False, "1 while connected to NATS"),
}


def _collector_metrics(health: Mapping[str, Any]) -> Iterator[Metric]:
    """A brain: each collector's publisher counters (``collector`` label) and which collector
    feeds each exchange (``cryptomon_bus_collector_report_age_seconds``), from the health the
    collectors send over the bus (the bus source's ``collectors``)."""
    fams = {k: _family(n, c, d, ["collector"]) for k, (n, c, d) in _COLLECTOR.items()}
    age = GaugeMetricFamily(
        "cryptomon_bus_collector_report_age_seconds",
        "seconds since the collector feeding this exchange last reported its health",
        labels=["collector", "exchange"],
    )
    found = False
    for exchange, snap in health.items():
        if not isinstance(snap, Mapping):
            continue
        if isinstance(snap.get("collector"), str) and num(snap.get("age_s")) is not None:
            found = True
            age.add_metric([snap["collector"], str(exchange)], float(snap["age_s"]))
        collectors = snap.get("collectors")
        for name, info in collectors.items() if isinstance(collectors, Mapping) else ():
            stats = _m(info, "nats")
            for key, fam in fams.items():
                v = num(_m(stats, key))
                if v is not None:
                    found = True
                    fam.add_metric([str(name)], v)
    if found:
        yield from fams.values()
        yield age


def _quality_metrics(exchange: str, snap: Mapping[str, Any], quality: Any, symbols: Any) -> None:
    counts = snap.get("quality")
    for kind, value in counts.items() if isinstance(counts, Mapping) else ():
        v = num(value)
        if v is not None and kind != "stale_symbols":
            quality.add_metric([exchange, str(kind)], v)
    if isinstance(counts, Mapping) and num(counts.get("stale_symbols")) is not None:
        symbols.add_metric([exchange, "stale"], float(counts["stale_symbols"]))
    for state, key in (("delisted", "delisted"), ("unknown", "unknown_instruments")):
        listed = snap.get(key)
        if isinstance(listed, list):
            symbols.add_metric([exchange, state], float(len(listed)))


# --------------------------------------------------------------------------- detection


def detector_metrics(s: Mapping[str, Any]) -> Iterator[Metric]:
    """``DetectorEngine.stats()``."""
    yield from _labelled(
        CounterMetricFamily,
        "cryptomon_detect_events",
        "events seen by detectors",
        "type",
        s.get("events"),
    )
    yield from _labelled(
        CounterMetricFamily,
        "cryptomon_detect_anomalies",
        "anomalies by kind",
        "kind",
        _m(s, "anomalies", "by_kind"),
    )
    yield from _labelled(
        CounterMetricFamily,
        "cryptomon_detect_anomalies_by_severity",
        "anomalies by severity",
        "severity",
        _m(s, "anomalies", "by_severity"),
    )
    yield from _counter(
        "cryptomon_detect_suppressed",
        "anomalies held back by cooldown",
        s.get("suppressed_by_cooldown"),
    )
    yield from _labelled(
        CounterMetricFamily,
        "cryptomon_detect_store_warmed",
        "stored rows that warmed the detector windows at start, by source",
        "source",
        s.get("store_warmed"),
    )
    yield from _counter("cryptomon_detect_errors", "detector errors", s.get("errors"))
    yield from histogram(
        "cryptomon_detect_latency_seconds",
        "receipt of an event to publication of its anomaly",
        s.get("latency_seconds"),
    )


# --------------------------------------------------------------------------- store


def writer_metrics(s: Mapping[str, Any]) -> Iterator[Metric]:
    """``StoreWriter.stats()``."""
    yield from _labelled(
        CounterMetricFamily,
        "cryptomon_store_rows",
        "rows written per table",
        "table",
        s.get("rows"),
    )
    yield from _counter("cryptomon_store_batches", "write transactions", s.get("batches"))
    yield from _counter("cryptomon_store_retries", "write retries", s.get("retries"))
    yield from _counter(
        "cryptomon_store_dropped", "market rows dropped (bound reached)", s.get("dropped")
    )
    yield from _counter(
        "cryptomon_store_rejected",
        "rows the database refused for good (bad data, logged)",
        s.get("rejected"),
    )
    yield from _gauge(
        "cryptomon_store_outage_seconds",
        "seconds since writes started failing (0: the writer is storing)",
        s.get("outage_s"),
    )
    yield from _labelled(
        GaugeMetricFamily,
        "cryptomon_store_backlog",
        "rows waiting per kind",
        "kind",
        s.get("backlog"),
    )
    yield from _labelled(
        GaugeMetricFamily,
        "cryptomon_store_write_latency_seconds",
        "write transaction latency",
        "stat",
        s.get("write_latency_s"),
    )


# --------------------------------------------------------------------------- notifications


def notifier_metrics(s: Mapping[str, Any]) -> Iterator[Metric]:
    """``NotificationRouter.stats()``."""
    fam = CounterMetricFamily(
        "cryptomon_notifications",
        "notifications by channel and status",
        labels=["channel", "status"],
    )
    by_channel = s.get("notifications")
    for channel, statuses in by_channel.items() if isinstance(by_channel, Mapping) else ():
        for status, n in statuses.items() if isinstance(statuses, Mapping) else ():
            v = num(n)
            if v is not None:
                fam.add_metric([str(channel), str(status)], v)
    yield fam
    yield from _gauge(
        "cryptomon_notify_queue_depth", "alerts waiting to be routed", s.get("queue_depth")
    )
    yield from _labelled(
        GaugeMetricFamily, "cryptomon_notify_outbox", "messages pending", "channel", s.get("outbox")
    )


# --------------------------------------------------------------------------- webhooks


def webhook_metrics(s: Mapping[str, Any]) -> Iterator[Metric]:
    """``SignalWebhooks.stats()``."""
    yield from _counter(
        "cryptomon_webhook_accepted", "webhook calls whose signal was published", s.get("accepted")
    )
    yield from _counter(
        "cryptomon_webhook_duplicates",
        "webhook calls answered as a duplicate of an earlier alert_id",
        s.get("duplicates"),
    )
    yield from _labelled(
        CounterMetricFamily,
        "cryptomon_webhook_refused",
        "correctly signed webhook calls refused: replayed (409 signature_replayed), expired "
        "(401 signature_expired: outside signature_window_s), unstamped (401: no or a bad "
        "X-Signature-Timestamp)",
        "reason",
        {
            reason: s[key]
            for reason, key in (
                ("replayed", "replays"),
                ("expired", "expired"),
                ("unstamped", "unstamped"),
            )
            if key in s
        },
    )


# --------------------------------------------------------------------------- trading

RISK_STATES = ("active", "reducing", "halted")


def trading_metrics(
    s: Mapping[str, Any], orders: list[Mapping[str, Any]], state: str
) -> Iterator[Metric]:
    """``TradingEngine.stats()``, its risk state and its orders grouped by state."""
    risk = GaugeMetricFamily(
        "cryptomon_trading_risk_state", "1 for the current risk state", labels=["state"]
    )
    for name in RISK_STATES:
        risk.add_metric([name], float(state == name))
    yield risk
    by_state: dict[str, int] = {}
    for o in orders:
        key = str(o.get("state", "unknown"))
        by_state[key] = by_state.get(key, 0) + 1
    yield from _labelled(
        GaugeMetricFamily, "cryptomon_trading_orders", "orders by state", "state", by_state
    )
    for key in ("realized_pnl", "unrealized_pnl", "net_pnl", "equity", "fees", "max_drawdown"):
        yield from _gauge(f"cryptomon_trading_{key}", f"{key} (quote currency)", s.get(key))
    yield from _gauge("cryptomon_trading_open_positions", "open positions", s.get("open_positions"))
    yield from _counter("cryptomon_trading_trades", "closed round trips", s.get("trades"))
    yield from _labelled(
        CounterMetricFamily,
        "cryptomon_trading_signals_not_acted",
        "signals that made no order, by reason (cryptomon.trading.entries.NOT_ACTED)",
        "reason",
        s.get("signals_not_acted") or {},
    )
    yield from _gauge(
        "cryptomon_trading_reconciled", "1 once reconciled with the broker", s.get("reconciled")
    )
    broker = s.get("broker") or {}
    yield from _labelled(
        CounterMetricFamily,
        "cryptomon_paper_mid_checks_skipped",
        "paper book-mid liquidation checks skipped (markets without mark or trades): tops "
        "wider than mid_max_spread (spread), tops past the liquidation price still within "
        "mid_confirm_ms (unconfirmed)",
        "reason",
        {
            reason: broker[key]
            for reason, key in (
                ("spread", "mid_skipped_spread"),
                ("unconfirmed", "mid_unconfirmed"),
            )
            if key in broker
        },
    )


# --------------------------------------------------------------------------- process


def resource_metrics(s: Mapping[str, Any]) -> Iterator[Metric]:
    """``ResourceMonitor.stats()``: process CPU, RSS, open files, free disk, loop lag."""
    yield from _counter(
        "cryptomon_process_cpu_seconds", "CPU time used by the daemon", s.get("cpu_seconds")
    )
    yield from _gauge(
        "cryptomon_process_cpu_percent",
        "CPU use over the last sample (% of one core)",
        s.get("cpu_percent"),
    )
    yield from _gauge("cryptomon_process_rss_bytes", "resident memory", s.get("rss_bytes"))
    yield from _gauge("cryptomon_process_open_files", "open file descriptors", s.get("open_files"))
    yield from _gauge(
        "cryptomon_data_dir_free_bytes",
        "free disk space where data_dir lives",
        s.get("disk_free_bytes"),
    )
    yield from _gauge(
        "cryptomon_event_loop_lag_seconds",
        "worst event-loop lag over the last sample",
        s.get("loop_lag_s"),
    )
    crossed = set(s.get("crossed") or ())
    yield from _labelled(
        GaugeMetricFamily,
        "cryptomon_resource_threshold_crossed",
        "1 while a resources.* threshold is crossed",
        "resource",
        {key: float(key in crossed) for key in s.get("thresholds") or {}},
    )
    yield from _counter("cryptomon_resource_alerts", "threshold crossings alerted", s.get("alerts"))
