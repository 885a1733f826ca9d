"""``FeedManager``: every configured exchange feed, the stall watchdog, and feed health.

Built by ``app._build_feeds`` from ``settings.exchanges``: each enabled exchange config goes to
its plugin (:mod:`cryptomon.feeds.registry`), which creates one feed component. The manager
starts them in order, runs the stall watchdog (every ``watchdog_interval_s``) and reports
:meth:`health` for ``/api/v1/feeds`` and ``/metrics``::

    {"binance": {"source": "live", "state": "live", "connected": true, "reconnects": 0,
                 "parse_errors": 0, "crossed_books": 0, "book_tops": 800,
                 "messages": 1234, "gaps": 0,
                 "channels": {"trades": {"state": "live", "messages": 100,
                                         "messages_per_s": 4.2, "last_message_age_s": 0.3,
                                         "gaps": 0, "resyncs": 0, "stalls": 0,
                                         "stale_after_s": 60.0}, ...}}, ...}
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import structlog

from cryptomon.clock import Clock
from cryptomon.config import ExchangeConfig
from cryptomon.errors import ConfigError
from cryptomon.feeds.registry import FeedPlugin, FeedSource, load_plugins, plugin_for
from cryptomon.hub import Hub
from cryptomon.market.inputs import MarketInputs
from cryptomon.tasks import cancel_and_wait

log = structlog.get_logger()


def build_sources(
    configs: Iterable[ExchangeConfig],
    *,
    hub: Hub,
    clock: Clock,
    plugins: dict[str, type[FeedPlugin]] | None = None,
    market: MarketInputs | None = None,
) -> list[FeedSource]:
    """One feed component per enabled exchange config (ConfigError lists every bad one)."""
    registry = load_plugins() if plugins is None else plugins
    out: list[FeedSource] = []
    problems = []
    for cfg in configs:
        if not cfg.enabled:
            continue
        try:
            plugin = plugin_for(cfg, registry)
            if market is None:
                out.append(plugin.create(cfg, hub=hub, clock=clock))
            else:
                out.append(plugin.create(cfg, hub=hub, clock=clock, market=market))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return out


class FeedManager:
    """Starts/stops the feeds, watches for stalls, reports health."""

    name = "feeds"

    def __init__(
        self,
        sources: list[FeedSource],
        *,
        hub: Hub,
        clock: Clock,
        watchdog_interval_s: float = 0.5,
        market: MarketInputs | None = None,
    ) -> None:
        self.sources = sources
        self.market = market  # unknown instruments in health()
        self.hub = hub
        self.clock = clock
        self.watchdog_interval_s = watchdog_interval_s
        self._started: list[FeedSource] = []
        self._watchdog: asyncio.Task[None] | None = None

    def source(self, exchange: str) -> FeedSource:
        for src in self.sources:
            if src.exchange == exchange:
                return src
        raise KeyError(exchange)

    async def start(self) -> None:
        for src in self.sources:
            await src.start()
            self._started.append(src)
        self._watchdog = asyncio.get_running_loop().create_task(
            self._watch(), name="feeds-watchdog"
        )

    async def stop(self) -> None:
        await cancel_and_wait(self._watchdog)
        self._watchdog = None
        while self._started:
            src = self._started.pop()
            try:
                await src.stop()
            except Exception as exc:
                log.error("feed.stop_failed", exchange=src.exchange, error=repr(exc))

    def build(self, config: ExchangeConfig) -> FeedSource | None:
        """The feed ``config`` describes, not started (None when it is disabled);
        ``ConfigError`` when it cannot be built (checked before a reload changes anything)."""
        built = build_sources([config], hub=self.hub, clock=self.clock, market=self.market)
        return built[0] if built else None

    async def replace(self, config: ExchangeConfig, new: FeedSource | None = None) -> None:
        """Restart one feed with a changed config entry (config reload); the others go on.
        ``new``: the feed :meth:`build` made of ``config`` (built here when not given). An
        entry now disabled stops its feed; one now enabled starts it."""
        if new is None and config.enabled:
            new = self.build(config)
        try:
            old: FeedSource | None = self.source(config.name)
        except KeyError:  # it was disabled
            old = None
        if old is not None:
            if old in self._started:
                await old.stop()
                self._started.remove(old)
            self.sources.remove(old)
        if new is None:
            log.info("feed.stopped", exchange=config.name, reason="disabled by config reload")
            return
        old_guard = None if old is None else old.health.quality
        if old_guard is not None and new.health.quality is not None:
            new.health.quality.inherit_stale(old_guard)  # still silent: still stale
        self.sources.append(new)
        await new.start()
        self._started.append(new)
        log.info("feed.restarted", exchange=config.name, reason="config reload")

    async def _watch(self) -> None:
        while True:
            await self.clock.sleep(self.watchdog_interval_s)
            for src in self._started:
                try:
                    src.health.check_stale()
                except Exception as exc:  # the watchdog must outlive any one feed's bug
                    log.error("feed.watchdog_error", exchange=src.exchange, error=repr(exc))

    async def wait_replays(self) -> None:
        """Wait until every replay source has gone through its files."""
        for src in self.sources:
            done = getattr(src, "done", None)
            if done is not None:
                await done.wait()

    def forget_units(self, exchange: str) -> None:
        """``exchange``'s specs arrived late: every feed looks its symbols' units up again."""
        if self.market is not None:
            self.market.units.forget()
        for src in self.sources:
            converter = getattr(src, "converter", None)
            if src.exchange == exchange.lower() and converter is not None:
                converter.forget_units()

    def on_delisted(self, exchange: str, symbols: set[str]) -> None:
        """A refresh found ``symbols`` no longer listed: each feed that streams one skips it
        from now on (alerted, stale for trading); the daemon keeps running."""
        for src in self.sources:
            mark = getattr(src, "mark_delisted", None)
            if src.exchange == exchange.lower() and mark is not None:
                for symbol in sorted(symbols):
                    mark(symbol, "no longer listed by the exchange (instrument refresh)")

    def markets(self) -> dict[str, frozenset[str]] | None:
        """The exchanges this process's feeds watch and the symbols configured for each (an
        empty set: those of a recording); the current feeds, so a config reload counts. A
        brain's feed (the bus) adds those its collectors report watching; None while it
        knows none (no collector has reported lately)."""
        out: dict[str, frozenset[str]] = {}
        for src in self.sources:
            config = getattr(src, "config", None)
            remote = getattr(src, "remote_markets", None)
            if isinstance(config, ExchangeConfig):
                out[src.exchange] = frozenset(config.symbols)
            elif remote is not None:
                found = remote()
                if found is None:
                    return None
                out.update(found)
        return out

    def health(self) -> dict[str, Any]:
        """Per exchange and channel health (shape in the module docstring)."""
        out = {src.exchange: src.health.snapshot() for src in self.sources}
        unknown = set() if self.market is None else self.market.registry.unknown()
        for src in self.sources:
            snap = out[src.exchange]
            snap["unknown_instruments"] = sorted(s for ex, s in unknown if ex == src.exchange)
            snap["delisted"] = sorted(getattr(src, "delisted", ()))
            remote = getattr(src, "remote_feeds", None)  # a brain: each collector's exchanges
            if remote is not None:
                for exchange, info in remote().items():
                    out.setdefault(exchange, info)
        return out
