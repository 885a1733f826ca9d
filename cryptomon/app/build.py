"""The composition root (DESIGN.md section 1): ``build_app`` builds every component from its
own config section and passes collaborators by keyword; it is the only place that knows the
whole graph. :class:`~cryptomon.app.lifecycle.App` starts what it builds.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptomon.app.lifecycle import App, Component, HubComponent, InstanceLock
from cryptomon.app.services import Services
from cryptomon.clock import Clock, LiveClock
from cryptomon.config import Settings
from cryptomon.errors import ConfigError, Problem, Problems
from cryptomon.feeds.specs import exchange_names
from cryptomon.heartbeat import Heartbeat, api_probed
from cryptomon.hub import Hub
from cryptomon.market.inputs import MarketInputs
from cryptomon.market.refresh import InstrumentRefresher
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.state import MarketState
from cryptomon.systemd import SystemdNotifier

if TYPE_CHECKING:
    from cryptomon.api import ApiServer
    from cryptomon.api.resources import ResourceMonitor
    from cryptomon.detect.engine import DetectorEngine
    from cryptomon.feeds.manager import FeedManager
    from cryptomon.market.instruments import InstrumentSpec
    from cryptomon.notify.router import NotificationRouter
    from cryptomon.store.db import Database
    from cryptomon.store.queries import Queries
    from cryptomon.store.retention import Retention
    from cryptomon.store.writer import StoreWriter
    from cryptomon.trading.engine import TradingEngine
    from cryptomon.trading.signals import SignalGenerator
    from cryptomon.trading.signals.webhooks import SignalWebhooks


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreParts:
    """What ``build_store`` makes: the database and its writer, reader and retention."""

    db: Database
    queries: Queries
    writer: StoreWriter
    retention: Retention


def build_app(settings: Settings, *, clock: Clock | None = None, hub: Hub | None = None) -> App:
    """Build the daemon from ``settings``: every component first, each from its own section
    with its collaborators by keyword; ``App`` starts them afterwards in dependency order."""
    clock = clock or LiveClock()
    hub = hub or Hub()
    if settings.bus.role == "collector":
        return _build_collector(settings, hub=hub, clock=clock)
    # The latest market state is read by trading and the API and fed by the hub: one instance.
    store = build_store(settings, hub=hub, clock=clock)
    inputs = _build_market_inputs(settings, db=store.db)
    market = MarketState(hub=hub, instruments=inputs.registry)
    # every problem of the independent parts at once (check-config runs this same build)
    problems = Problems()
    if store.db is not None:  # protective exits are journaled there while the database is away
        problems.attempt(lambda: writable_data_dir(settings.data_dir))
    notifier = problems.attempt(lambda: _build_notify(settings, hub=hub, clock=clock))
    feeds = problems.attempt(lambda: _build_feeds(settings, hub=hub, clock=clock, market=inputs))
    problems.raise_any()
    if notifier is None or feeds is None:  # pragma: no cover - raise_any raised above
        raise ConfigError(problems.items)
    if settings.bus.role == "brain":  # a message is acknowledged once its rows are stored
        from cryptomon.bus.source import BusFeedSource

        for source in feeds.sources:
            if isinstance(source, BusFeedSource):
                source.commits = store.writer.track(f"{settings.bus.stream}/{settings.bus.durable}")
    detectors = _build_detect(settings, hub=hub, clock=clock)
    signals, trading, lease = _build_trading(
        settings, hub=hub, clock=clock, market=market, db=store.db, specs=inputs.registry.get
    )
    if lease is not None:  # the brain trades only while it consumes the market data
        from cryptomon.bus.lease import TradingLease
        from cryptomon.bus.roles import lease_follows_durable
        from cryptomon.bus.source import BusFeedSource

        for source in feeds.sources:
            if isinstance(source, BusFeedSource) and isinstance(lease, TradingLease):
                lease_follows_durable(lease, source)
    webhooks = _build_webhooks(settings, signals=signals, clock=clock, feeds=feeds)
    instruments = InstrumentRefresher(
        registry=inputs.registry,
        exchanges=exchange_names(settings.exchanges),
        clock=clock,
        interval_s=settings.market_data.instrument_refresh_s,
        on_delisted=feeds.on_delisted,
        on_loaded=feeds.forget_units,
    )
    services = Services(
        market=market,
        db=store.db,
        queries=store.queries,
        store_writer=store.writer,
        notifier=notifier,
        detectors=detectors,
        trading=trading,
        webhooks=webhooks,
        feeds=feeds,
        instruments=inputs.registry,
    )
    resources = _build_resources(settings, hub=hub, clock=clock)
    api = _build_api(settings, hub=hub, clock=clock, services=services, resources=resources)
    # Start order: storage, notifications, detection, trading, API, then the feeds that make
    # data flow once every consumer is ready. Shutdown runs the other way round.
    live = trading is not None and settings.trading.mode == "live" and lease is None
    ordered: list[Component | None] = [
        InstanceLock(settings.data_dir) if live else None,  # before anything reaches the venue
        HubComponent(hub=hub, drain_timeout_s=settings.shutdown_timeout_s / 2),
        _build_outbound(settings, hub=hub, clock=clock),
        store.db,
        store.writer,
        store.retention,
        instruments,  # specs (cache, then venue) before the feeds need their units
        notifier,
        detectors,
        _build_warm_start(settings, clock=clock, db=store.db, detectors=detectors),
        signals,
        lease,
        trading,
        resources,
        api,
        feeds,
    ]
    ordered.append(_heartbeat(settings))  # no API to probe: the health check reads it
    # last: READY=1 only once everything else has started (Type=notify, WatchdogSec)
    ordered.append(SystemdNotifier.from_environ())
    return App(
        [c for c in ordered if c is not None],
        hub=hub,
        clock=clock,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        services=services,
    )


def build_store(settings: Settings, *, hub: Hub, clock: Clock) -> StoreParts:
    from cryptomon.store.db import Database
    from cryptomon.store.queries import Queries
    from cryptomon.store.retention import Retention
    from cryptomon.store.writer import StoreWriter

    db = Database(settings.database)
    return StoreParts(
        db=db,
        queries=Queries(db=db),
        writer=StoreWriter(hub=hub, db=db, config=settings.storage, clock=clock),
        retention=Retention(db=db, config=settings.storage, clock=clock),
    )


def _build_notify(settings: Settings, *, hub: Hub, clock: Clock) -> NotificationRouter:
    # Always built, even with alerts disabled or no channels: the API lists channels and
    # sends tests through it. Disabled = it does not subscribe to the hub (nothing routed).
    from cryptomon.notify.router import NotificationRouter

    # replayed recordings only: the alerts' windows follow the recording's time (a recording
    # of hours plays in seconds), the channels' rate limits stay on the clock
    sources = [e.source for e in settings.exchanges if e.enabled]
    replay = bool(sources) and all(source == "replay" for source in sources)
    return NotificationRouter(
        hub=hub,
        clock=clock,
        config=settings.alerts,
        event_time=replay,
        links=settings.api.enabled,  # no API: no link to one in the messages
    )


def _build_detect(settings: Settings, *, hub: Hub, clock: Clock) -> DetectorEngine | None:
    if not settings.anomaly_detection.enabled:
        return None
    from cryptomon.detect.engine import DetectorEngine

    return DetectorEngine(hub=hub, clock=clock, config=settings.anomaly_detection)


def _build_warm_start(
    settings: Settings, *, clock: Clock, db: Database, detectors: DetectorEngine | None
) -> Component | None:
    """The detectors warmed from the store before the feeds start (the configured live
    markets; ``anomaly_detection.warm_from_store``)."""
    if detectors is None or not settings.anomaly_detection.warm_from_store:
        return None
    from cryptomon.app.warmstart import StoreWarmStart

    markets = [
        (ex.name, symbol)
        for ex in settings.exchanges
        if ex.enabled and ex.source == "live"
        for symbol in ex.symbols
    ]
    return StoreWarmStart(
        db=db,
        detectors=detectors,
        clock=clock,
        config=settings.anomaly_detection,
        markets=markets,
        trades=settings.storage.trades,
    )


def writable_data_dir(path: Path) -> None:
    """Create ``data_dir`` if missing and write a probe file in it: a ConfigError naming it
    when either fails, at start rather than when a protective exit needs its journal."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".cryptomon-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if path.exists() and not path.is_dir():
            reason = "a file is there"
        expected = (
            f"a writable directory ({reason}): protective exits are journaled there while "
            "the database is away"
        )
        raise ConfigError([Problem("data_dir", str(path), expected)]) from None


def _build_collector(settings: Settings, *, hub: Hub, clock: Clock) -> App:
    """``bus.role: collector``: feeds and the bus publisher only (DESIGN.md section 8)."""
    from cryptomon.bus.roles import collector_parts

    hub_part = HubComponent(hub=hub, drain_timeout_s=settings.shutdown_timeout_s / 2)
    parts = collector_parts(settings, hub=hub, clock=clock)
    return App(
        [hub_part, *parts, *filter(None, [_heartbeat(settings)])],
        hub=hub,
        clock=clock,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        services=Services(feeds=parts[-1]),  # the feed manager comes last
    )


def _heartbeat(settings: Settings) -> Heartbeat | None:
    """The heartbeat file of ``crypto-monitor healthcheck`` when it has no port to probe."""
    return None if api_probed(settings.api) else Heartbeat(settings.data_dir)


def _build_outbound(settings: Settings, *, hub: Hub, clock: Clock) -> Component | None:
    if settings.bus.role != "brain" or not settings.bus.publish_events:
        return None
    from cryptomon.bus.outbound import EventPublisher

    return EventPublisher(config=settings.bus, hub=hub, clock=clock)


def _build_trading(
    settings: Settings,
    *,
    hub: Hub,
    clock: Clock,
    market: MarketState,
    db: Database | None,
    specs: Callable[[str, str], InstrumentSpec | None],
) -> tuple[SignalGenerator, TradingEngine, Component | None]:
    from decimal import Decimal

    from cryptomon.store.journal import StoreJournal
    from cryptomon.trading.brokers.base import Broker
    from cryptomon.trading.engine import TradingEngine
    from cryptomon.trading.exit_journal import ExitJournal
    from cryptomon.trading.futures import terms_lookup
    from cryptomon.trading.journal import Journal, MemoryJournal
    from cryptomon.trading.runtime import TradingRuntime
    from cryptomon.trading.signals import SignalGenerator

    cfg = settings.trading
    broker: Broker
    if cfg.mode == "live":
        from cryptomon.trading.brokers.ccxt import CcxtBroker

        broker = CcxtBroker.from_config(cfg, clock=clock)
    else:
        from cryptomon.trading.brokers.paper import PaperBroker

        broker = PaperBroker(
            config=cfg.paper,
            market=market,
            hub=hub,
            clock=clock,
            allow_short=cfg.allow_short,
            terms=terms_lookup(cfg, specs),
        )
    lease = None
    if settings.bus.role == "brain":  # one brain trades per account: the broker needs a lease
        from cryptomon.bus.roles import leased

        broker, lease = leased(broker, settings=settings, hub=hub, clock=clock)
    journal: Journal = MemoryJournal(hub=hub)
    if db is not None:  # protective exits spool to data_dir while the database is away
        journal = ExitJournal(inner=StoreJournal(db=db), data_dir=settings.data_dir)
    # one runtime object: an API change of the limits or signal gates reaches both
    runtime = TradingRuntime(config=cfg, hub=hub, clock=clock)
    signals = SignalGenerator(config=cfg, hub=hub, clock=clock, market=market, runtime=runtime)
    # live: the cash is the venue's quote balance, read at reconciliation (never the paper one)
    engine = TradingEngine(
        config=cfg,
        hub=hub,
        clock=clock,
        broker=broker,
        market=market,
        journal=journal,
        runtime=runtime,
        starting_cash=Decimal(0) if cfg.mode == "live" else None,
        specs=specs,
    )
    if lease is not None:
        from cryptomon.bus.roles import gate_trading

        gate_trading(lease, engine.context, hub=hub)
    return signals, engine, lease


def _build_webhooks(
    settings: Settings, *, signals: SignalGenerator, clock: Clock, feeds: FeedManager
) -> SignalWebhooks | None:
    if not settings.trading.webhooks:
        return None
    from cryptomon.trading.signals.webhooks import SignalWebhooks

    # a signal for an exchange or market no feed watches is refused (it could never trade)
    return SignalWebhooks(generator=signals, clock=clock, markets=feeds.markets)


def _build_resources(settings: Settings, *, hub: Hub, clock: Clock) -> ResourceMonitor | None:
    if not settings.api.enabled:
        return None
    from cryptomon.api.resources import ResourceMonitor

    return ResourceMonitor(
        config=settings.resources, data_dir=settings.data_dir, hub=hub, clock=clock
    )


def _build_api(
    settings: Settings,
    *,
    hub: Hub,
    clock: Clock,
    services: Services,
    resources: ResourceMonitor | None = None,
) -> ApiServer | None:
    if not settings.api.enabled:
        return None
    from cryptomon.api import ApiServer
    from cryptomon.store.history import BacktestRuns

    # Each keyword is typed with the API's Protocol for it: mypy checks the real objects.
    return ApiServer(
        config=settings.api,
        hub=hub,
        clock=clock,
        queries=services.queries,
        db=services.db,
        writer=services.store_writer,
        market=services.market,
        feeds=services.feeds,
        notifier=services.notifier,
        detectors=services.detectors,
        trading=services.trading,
        webhooks=services.webhooks,
        backtests=BacktestRuns(db=services.db) if services.db is not None else None,
        resources=resources,
    )


def _build_market_inputs(settings: Settings, *, db: Database) -> MarketInputs:
    """The instrument registry (database cache, venue loaders, static specs) and the units
    and quality settings every feed shares."""
    from cryptomon.feeds.specs import spec_sources
    from cryptomon.store.instruments import DatabaseInstruments

    sources = spec_sources(settings.exchanges)
    registry = InstrumentRegistry(cache=DatabaseInstruments(db), loaders=sources.loaders)
    registry.add(sources.static)
    return MarketInputs(registry=registry, config=settings.market_data)


def _build_feeds(
    settings: Settings, *, hub: Hub, clock: Clock, market: MarketInputs | None = None
) -> FeedManager:
    from cryptomon.feeds.manager import FeedManager, build_sources

    if settings.bus.role == "brain":  # the collectors run the exchange feeds
        from cryptomon.bus.source import BusFeedSource

        bus_source = BusFeedSource(
            config=settings.bus,
            hub=hub,
            clock=clock,
            registry=None if market is None else market.registry,
        )
        return FeedManager([bus_source], hub=hub, clock=clock, market=market)
    sources = build_sources(settings.exchanges, hub=hub, clock=clock, market=market)
    return FeedManager(sources, hub=hub, clock=clock, market=market)
