"""What the brain knows of its collectors: each one's last health report (``<prefix>.health.*``)
and the markets it reports. A collector silent for 3 health intervals has its exchanges marked
stale on the hub, so trading pauses on them; its next report marks them live again."""

from __future__ import annotations

from typing import Any

import structlog

from cryptomon.clock import Clock
from cryptomon.events import FeedState, FeedStatus
from cryptomon.feeds.health import FeedHealth
from cryptomon.hub import Hub

log = structlog.get_logger()

_NOT_LIVE = frozenset({"stale", "disconnected", "error"})  # MarketState's stale states


class BusHealth(FeedHealth):
    """Feed health of the bus source, with each collector's last reported health. A collector
    silent for ``silent_after_s`` has its exchanges marked stale on the hub (``FeedStatus``),
    so trading pauses on them; its next health report marks them live again."""

    def __init__(self, *, hub: Hub, clock: Clock, silent_after_s: float) -> None:
        super().__init__("bus", [], hub=hub, clock=clock, source="bus")
        self.silent_after_s = silent_after_s
        self.collectors: dict[str, dict[str, Any]] = {}
        self.seen_at: dict[str, float] = {}  # our monotonic time of each collector's report
        self.silent: set[str] = set()
        self.counters: dict[str, int] = {}
        self.by_kind: dict[str, int] = {}  # events published on the hub per kind
        # the collectors' own not-live markers still in force, per (exchange, symbol), as
        # MarketState keeps them: restored after a collector's silence is over
        self.markers: dict[tuple[str, str], FeedStatus] = {}
        # per collector_id: the process instances heard from lately (our monotonic time), so
        # two collectors started with one id are told apart and reported
        self.instances: dict[str, dict[str, float]] = {}
        self.shared_ids: set[str] = set()
        self.detail = ""  # why the bus is not consumed (another brain has the durable)
        # per collector: the markets its health reported, exchange -> symbols (empty: any)
        self.markets: dict[str, dict[str, frozenset[str]]] = {}

    def remember(self, event: FeedStatus) -> None:
        """A collector's own feed status (travelled with its data), kept as MarketState keeps
        it: a not-live state per (exchange, symbol) until that key's own "live" (an
        exchange-wide "live" does not clear a symbol's)."""
        key = (event.exchange, event.symbol)
        if event.status == "live":
            self.markers.pop(key, None)
        elif event.status in _NOT_LIVE:
            self.markers[key] = event

    def report(self, info: dict[str, Any]) -> None:
        """A collector's health message (ValueError, KeyError or TypeError: malformed, and
        nothing of it kept)."""
        name = str(info["collector_id"])
        markets = reported_markets(info)
        now = self.clock.monotonic()
        self.markets[name] = markets
        self._instance(name, str(info.get("instance") or ""), now)
        self.collectors[name] = info
        self.seen_at[name] = now
        if name in self.silent:
            self.silent.discard(name)
            self._mark(name, "live", f"collector {name} reports again")

    def _instance(self, name: str, instance: str, now: float) -> None:
        """Two processes reporting under one ``collector_id`` within ``silent_after_s``
        (a restart replaces the old instance, which then stops reporting) are two
        collectors sharing it: their message ids ``<collector_id>:<seq>`` can meet, and the
        stream drops the later batch as a duplicate. Logged once per id, at error."""
        if not instance:
            return
        seen = self.instances.setdefault(name, {})
        seen[instance] = now
        for other, at in list(seen.items()):
            if now - at > self.silent_after_s:
                del seen[other]
        if len(seen) > 1 and name not in self.shared_ids:
            self.shared_ids.add(name)
            log.error(
                "bus.collector_id_shared",
                collector=name,
                instances=sorted(seen),
                detail="two collector processes report under one collector_id: give each its "
                "own bus.collector_id, or the stream drops batches whose ids meet",
            )

    def watched(self) -> dict[str, frozenset[str]] | None:
        """The markets of every collector heard from within ``silent_after_s`` (a symbol
        set merged across collectors; an empty one, any symbol, wins); None when none."""
        now = self.clock.monotonic()
        out: dict[str, frozenset[str]] = {}
        for name, markets in self.markets.items():
            if now - self.seen_at.get(name, now) > self.silent_after_s:
                continue
            for exchange, symbols in markets.items():
                have = out.get(exchange)
                if have is None:
                    out[exchange] = symbols
                elif have and symbols:
                    out[exchange] = have | symbols
                else:  # one of them watches any symbol
                    out[exchange] = frozenset()
        return out or None

    def check_stale(self) -> list[str]:
        """Collectors silent longer than ``silent_after_s`` (their exchanges marked stale)."""
        now = self.clock.monotonic()
        found = []
        for name, seen in self.seen_at.items():
            if name not in self.silent and now - seen > self.silent_after_s:
                self.silent.add(name)
                found.append(name)
                self._mark(name, "stale", f"collector {name} silent for {now - seen:.1f}s")
        return found

    def _mark(self, name: str, status: FeedState, detail: str) -> None:
        """Mark the collector's exchanges ``status``. Back to "live" (it reports again): the
        markers its own feeds set before (a stale symbol, a disconnected exchange) are in
        force again (the exchange-wide "live" clears the exchange's own marker; a symbol's
        is republished alike), as the single process would still have them."""
        log.warning("bus.collector_" + status, collector=name, detail=detail)
        for exchange in self.collectors[name].get("feeds", {}):
            now = self.clock.time()
            self.hub.publish(
                FeedStatus(
                    exchange=exchange,
                    symbol="",
                    ts=now,
                    ts_recv=now,
                    channel="",
                    status=status,
                    detail=detail,
                )
            )
            if status == "live":
                for (ex, _), marker in list(self.markers.items()):
                    if ex == exchange:
                        self.hub.publish(marker)

    def snapshot(self) -> dict[str, Any]:
        out = super().snapshot()
        out["messages"] = self.counters.get("events", 0)
        if self.detail:
            out["detail"] = self.detail
        out["bus"] = {**self.counters, "by_kind": dict(self.by_kind)}
        now = self.clock.time()
        out["collectors"] = {
            name: {
                **info,
                "age_s": round(now - float(info.get("ts", now)), 3),
                "id_shared": name in self.shared_ids,
            }
            for name, info in self.collectors.items()
        }
        return out


def reported_markets(info: dict[str, Any]) -> dict[str, frozenset[str]]:
    """The markets a collector's health reports (``markets``: exchange -> symbols, in the
    normalized form of ``exchanges[].symbols``; empty: any, a recording's); a collector of an
    earlier version reports none: each exchange of its ``feeds``, with any symbol. TypeError
    when malformed."""
    raw = info.get("markets")
    if raw is None:
        feeds = info.get("feeds") or {}
        if not isinstance(feeds, dict):
            raise TypeError("feeds: expected an object")
        return {str(exchange): frozenset() for exchange in feeds}
    if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
        raise TypeError("markets: expected an object of exchange -> list of symbols")
    return {str(ex): frozenset(str(s) for s in symbols) for ex, symbols in raw.items()}
