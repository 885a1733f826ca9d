"""The parts of the scale-out roles that ``app.build_app`` composes (DESIGN.md section 8).

- collector: the instrument specs, the feeds with the market-data quality layer (as in the
  single process), the publisher and the small ``/health`` + ``/metrics`` server; no
  detection, trading, store or API;
- brain: the full pipeline whose only feed source is :class:`~cryptomon.bus.source.BusFeedSource`,
  plus the outbound event publisher and, with trading on, the trading lease around the broker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from cryptomon.bus.collector import CollectorPublisher
from cryptomon.bus.http import CollectorHttp
from cryptomon.bus.lease import LeasedBroker, TradingLease
from cryptomon.bus.source import BusFeedSource
from cryptomon.clock import Clock
from cryptomon.config import Settings
from cryptomon.events import RiskEvent
from cryptomon.feeds.manager import FeedManager, build_sources
from cryptomon.feeds.specs import exchange_names, spec_sources
from cryptomon.hub import Hub
from cryptomon.market.inputs import MarketInputs
from cryptomon.market.refresh import InstrumentRefresher
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.specs_file import spec_to_dict
from cryptomon.trading.brokers.base import Broker
from cryptomon.trading.context import EngineContext
from cryptomon.trading.risk import RiskState

log = structlog.get_logger()

LEASE_REASON = "no trading lease: another brain trades this account (or NATS is unreachable)"


def collector_market(settings: Settings) -> MarketInputs:
    """The collector's instrument registry (each exchange's own spec source: a recording's
    files, the simulator, a venue loader; no database) and the quality settings its feeds
    judge market data with, exactly as the single process builds them."""
    sources = spec_sources(settings.exchanges)
    registry = InstrumentRegistry(loaders=sources.loaders)
    registry.add(sources.static)
    return MarketInputs(registry=registry, config=settings.market_data)


def collector_parts(settings: Settings, *, hub: Hub, clock: Clock) -> list[Any]:
    """The components of a collector process, in start order: the instrument specs (loaded
    before anything is published), the publisher, the small HTTP server, then the feeds with
    the market-data quality layer (history, duplicates, bad prints, per-symbol staleness)."""
    market = collector_market(settings)
    names = exchange_names(settings.exchanges)
    registry = market.registry
    sources = build_sources(settings.exchanges, hub=hub, clock=clock, market=market)
    feeds = FeedManager(sources, hub=hub, clock=clock, market=market)

    def specs() -> dict[str, list[dict[str, Any]]]:
        return {name: [spec_to_dict(spec) for spec in registry.specs(name)] for name in names}

    publisher = CollectorPublisher(
        config=settings.bus,
        hub=hub,
        clock=clock,
        health=feeds.health,
        instruments=specs,
        markets=feeds.markets,
    )

    def loaded(exchange: str) -> None:  # specs arrived late: units again, the brain told
        feeds.forget_units(exchange)
        publisher.queue_instruments()

    def delisted(exchange: str, symbols: set[str]) -> None:
        feeds.on_delisted(exchange, symbols)
        publisher.queue_instruments()

    refresher = InstrumentRefresher(
        registry=registry,
        exchanges=names,
        clock=clock,
        interval_s=settings.market_data.instrument_refresh_s,
        on_delisted=delisted,
        on_loaded=loaded,
    )
    parts: list[Any] = [refresher, publisher]
    if settings.api.enabled:
        parts.append(
            CollectorHttp(host=settings.api.host, port=settings.api.port, health=publisher.health)
        )
    parts.append(feeds)  # last: data flows once the publisher is connected
    return parts


def lease_risk_gate(context: EngineContext) -> Callable[[bool], None]:
    """``on_change`` of the lease: ``reducing`` without it, ``active`` again with it (only
    when the lease was the reason; a kill switch or another reason stays)."""

    def apply(held: bool) -> None:
        if not held and context.risk_state == RiskState.ACTIVE:
            context.set_risk_state(RiskState.REDUCING, LEASE_REASON)
        elif (
            held
            and context.risk_state == RiskState.REDUCING
            and context.state_reason == LEASE_REASON
        ):
            context.set_risk_state(RiskState.ACTIVE, "trading lease held")

    return apply


def gate_trading(lease: TradingLease, context: EngineContext, *, hub: Hub) -> None:
    """Keep the engine ``reducing`` whenever the lease is not held: on every lease report
    and on every risk state change (the start-up reconciliation, an operator's resume), so a
    standby brain is never ``active`` between two renewals."""
    apply = lease_risk_gate(context)
    lease.on_change = apply

    def on_risk(event: RiskEvent) -> None:
        if context.risk_state == RiskState.ACTIVE and not lease.held():
            apply(False)

    hub.subscribe(RiskEvent, on_risk, name="bus-lease.risk-gate")


def leased(
    broker: Broker, *, settings: Settings, hub: Hub, clock: Clock
) -> tuple[Broker, TradingLease | None]:
    """``(broker, lease)``: the broker gated by a new lease when this is a brain with trading
    on; else ``(broker, None)``."""
    if settings.bus.role != "brain" or not settings.trading.auto_trading_enabled:
        return broker, None
    lease = TradingLease(config=settings.bus, clock=clock, hub=hub)
    return LeasedBroker(broker, lease=lease), lease


def lease_follows_durable(lease: TradingLease, source: BusFeedSource) -> None:
    """Only the brain that consumes the market data (holds its claim on ``bus.durable``)
    takes the trading lease, and it gives the lease up with the claim: two brains of one
    config would otherwise take the two independently, one trading without prices (its
    stops never fire) while the other sees them and cannot trade."""
    lease.eligible = source.consuming
    source.on_claim = lease.renew_soon
