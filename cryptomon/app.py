"""Composition root and lifecycle (DESIGN.md section 1).

``build_app`` builds every component from its own config section and passes collaborators by
keyword; it is the only place that knows the whole graph. ``App`` starts components in
dependency order, stops them in reverse, and turns SIGTERM/SIGINT into a graceful stop within
``shutdown_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import structlog

from cryptomon import __version__
from cryptomon.clock import Clock, LiveClock
from cryptomon.config import Settings
from cryptomon.errors import ConfigError, CryptomonError, Problems
from cryptomon.events import Notice
from cryptomon.feeds.specs import exchange_names
from cryptomon.hub import Hub
from cryptomon.market.inputs import MarketInputs
from cryptomon.market.refresh import InstrumentRefresher
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.state import MarketState
from cryptomon.systemd import SystemdNotifier

log = structlog.get_logger()


@runtime_checkable
class Component(Protocol):
    """A long-lived part of the daemon."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class StartupError(CryptomonError):
    """A component failed to start; the ones already started were stopped again."""

    def __init__(self, component: str, cause: BaseException) -> None:
        self.component = component
        self.cause = cause
        super().__init__(f"{component} failed to start: {cause}")


class HubComponent:
    """Starts the hub's queued subscribers first and drains what is left last."""

    name = "hub"

    def __init__(self, *, hub: Hub, drain_timeout_s: float) -> None:
        self.hub = hub
        self.drain_timeout_s = drain_timeout_s

    async def start(self) -> None:
        await self.hub.start()

    async def stop(self) -> None:
        await self.hub.stop(self.drain_timeout_s)


class App:
    """Ordered components with start/rollback/stop and signal-driven shutdown."""

    def __init__(
        self,
        components: list[Component],
        *,
        hub: Hub,
        clock: Clock,
        shutdown_timeout_s: float = 10.0,
        services: Services | None = None,
    ) -> None:
        names = [c.name for c in components]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"component names must be unique: {sorted(dup)}")
        self.components = components
        self.hub = hub
        self.clock = clock
        self.shutdown_timeout_s = shutdown_timeout_s
        self.services = services or Services()
        self.started: list[Component] = []
        self.started_at: float | None = None
        self._stop_requested = asyncio.Event()
        self.reloader: Reloader | None = None  # set by `run`: SIGHUP re-reads the config file
        self._reloading: asyncio.Task[bool] | None = None

    async def start(self) -> None:
        """Start every component in order; on a failure stop the started ones and raise."""
        for comp in self.components:
            log.debug("component.starting", component=comp.name)
            try:
                await comp.start()
            except Exception as exc:
                log.error("component.start_failed", component=comp.name, error=str(exc))
                await self.stop()
                raise StartupError(comp.name, exc) from exc
            self.started.append(comp)
        self.started_at = self.clock.time()
        self.hub.publish(_notice(self.clock, "daemon_start", f"cryptomon {__version__} running"))

    async def stop(self) -> bool:
        """Stop started components in reverse order within ``shutdown_timeout_s`` in total.

        Returns False when a component failed to stop or the time ran out.
        """
        if self.started_at is not None:
            self.started_at = None
            self.hub.publish(_notice(self.clock, "daemon_stop", "cryptomon stopping"))
        deadline = time.monotonic() + self.shutdown_timeout_s
        clean = True
        while self.started:
            comp = self.started.pop()
            left = deadline - time.monotonic()
            try:
                await asyncio.wait_for(comp.stop(), timeout=max(0.05, left))
                log.debug("component.stopped", component=comp.name)
            except TimeoutError:
                clean = False
                log.error("component.stop_timeout", component=comp.name)
            except Exception as exc:
                clean = False
                log.error("component.stop_failed", component=comp.name, error=str(exc))
        return clean

    def request_stop(self) -> None:
        self._stop_requested.set()

    async def run(self, *, until: Callable[[], Any] | None = None) -> int:
        """Start, wait for SIGTERM/SIGINT (or ``until`` to finish), stop. Returns the exit code."""
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
        if self.reloader is not None:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGHUP, self._on_reload)
                installed.append(signal.SIGHUP)
        try:
            try:
                await self.start()
            except StartupError as exc:
                log.error("daemon.start_failed", component=exc.component, error=str(exc.cause))
                if isinstance(exc.cause, ConfigError):
                    raise exc.cause from None  # a config problem found at start: exit 2
                return 1
            log.info(
                "daemon.running",
                version=__version__,
                components=[c.name for c in self.started],
            )
            waiter = asyncio.ensure_future(self._stop_requested.wait())
            waits: set[asyncio.Future[Any]] = {waiter}
            if until is not None:
                waits.add(asyncio.ensure_future(until()))
            done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for p in pending:
                p.cancel()
            for d in done:
                if d is not waiter and d.exception() is not None:
                    log.error("daemon.task_failed", error=repr(d.exception()))
            log.info("daemon.stopping", timeout_s=self.shutdown_timeout_s)
            clean = await self.stop()
            log.info("daemon.stopped", clean=clean)
            return 0 if clean else 1
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _on_reload(self) -> None:
        log.info("daemon.signal", signal="SIGHUP")
        if self.reloader is None or (self._reloading is not None and not self._reloading.done()):
            return
        self._reloading = asyncio.get_running_loop().create_task(
            self.reloader.reload(), name="config-reload"
        )

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("daemon.signal", signal=sig.name)
        self._stop_requested.set()


def _notice(clock: Clock, code: str, message: str) -> Notice:
    now = clock.time()
    return Notice(exchange="", symbol="", ts=now, ts_recv=now, code=code, message=message)


if TYPE_CHECKING:
    from cryptomon.api import ApiServer
    from cryptomon.api.resources import ResourceMonitor
    from cryptomon.detect.engine import DetectorEngine
    from cryptomon.feeds.manager import FeedManager
    from cryptomon.market.instruments import InstrumentSpec
    from cryptomon.notify.router import NotificationRouter
    from cryptomon.reload import Reloader
    from cryptomon.store.db import Database
    from cryptomon.store.queries import Queries
    from cryptomon.store.retention import Retention
    from cryptomon.store.writer import StoreWriter
    from cryptomon.trading.engine import TradingEngine
    from cryptomon.trading.signals import SignalGenerator
    from cryptomon.trading.signals.webhooks import SignalWebhooks


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """The services ``build_app`` made, set once and typed (``None``: not built). The API
    receives them at construction; commands, tests and benchmarks read them from ``App``."""

    market: MarketState | None = None  # latest market state (trading, API)
    db: Database | None = None  # the store's Database (engine, sessionmaker)
    queries: Queries | None = None  # the store's read side for the API
    store_writer: StoreWriter | None = None  # its stats() feed /metrics
    notifier: NotificationRouter | None = None  # channels, send_test, stats
    detectors: DetectorEngine | None = None  # stats() for /metrics
    trading: TradingEngine | None = None  # the order engine
    webhooks: SignalWebhooks | None = None  # external signal senders (trading.webhooks)
    feeds: FeedManager | None = None  # health() for /api/v1/feeds and /metrics
    instruments: InstrumentRegistry | None = None  # specs; unknown() for /api/v1/feeds


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreParts:
    """What ``_build_store`` makes: the database and its writer, reader and retention."""

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
    store = _build_store(settings, hub=hub, clock=clock)
    inputs = _build_market_inputs(settings, db=store.db)
    market = MarketState(hub=hub, instruments=inputs.registry)
    # every problem of the independent parts at once (check-config runs this same build)
    problems = Problems()
    notifier = problems.attempt(lambda: _build_notify(settings, hub=hub, clock=clock))
    feeds = problems.attempt(lambda: _build_feeds(settings, hub=hub, clock=clock, market=inputs))
    problems.raise_any()
    if notifier is None or feeds is None:  # pragma: no cover - raise_any raised above
        raise ConfigError(problems.items)
    detectors = _build_detect(settings, hub=hub, clock=clock)
    signals, trading, lease = _build_trading(
        settings, hub=hub, clock=clock, market=market, db=store.db, specs=inputs.registry.get
    )
    webhooks = _build_webhooks(settings, signals=signals, clock=clock)
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
    ordered: list[Component | None] = [
        HubComponent(hub=hub, drain_timeout_s=settings.shutdown_timeout_s / 2),
        _build_outbound(settings, hub=hub, clock=clock),
        store.db,
        store.writer,
        store.retention,
        instruments,  # specs (cache, then venue) before the feeds need their units
        notifier,
        detectors,
        signals,
        lease,
        trading,
        resources,
        api,
        feeds,
    ]
    # last: READY=1 only once everything else has started (Type=notify, WatchdogSec)
    ordered.append(SystemdNotifier.from_environ())
    return App(
        [c for c in ordered if c is not None],
        hub=hub,
        clock=clock,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        services=services,
    )


def _build_store(settings: Settings, *, hub: Hub, clock: Clock) -> StoreParts:
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

    return NotificationRouter(hub=hub, clock=clock, config=settings.alerts)


def _build_detect(settings: Settings, *, hub: Hub, clock: Clock) -> DetectorEngine | None:
    if not settings.anomaly_detection.enabled:
        return None
    from cryptomon.detect.engine import DetectorEngine

    return DetectorEngine(hub=hub, clock=clock, config=settings.anomaly_detection)


def _build_collector(settings: Settings, *, hub: Hub, clock: Clock) -> App:
    """``bus.role: collector``: feeds and the bus publisher only (DESIGN.md section 8)."""
    from cryptomon.bus.roles import collector_parts

    hub_part = HubComponent(hub=hub, drain_timeout_s=settings.shutdown_timeout_s / 2)
    parts = collector_parts(settings, hub=hub, clock=clock)
    return App(
        [hub_part, *parts],
        hub=hub,
        clock=clock,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        services=Services(feeds=parts[-1]),  # the feed manager comes last
    )


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
    settings: Settings, *, signals: SignalGenerator, clock: Clock
) -> SignalWebhooks | None:
    if not settings.trading.webhooks:
        return None
    from cryptomon.trading.signals.webhooks import SignalWebhooks

    return SignalWebhooks(generator=signals, clock=clock)


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
