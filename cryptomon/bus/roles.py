"""The parts of the scale-out roles that ``app.build_app`` composes (DESIGN.md section 8).

- collector: the feeds (with their market-data quality checks), the publisher and the small
  ``/health`` + ``/metrics`` server; no detection, trading, store or API;
- brain: the full pipeline whose only feed source is :class:`~cryptomon.bus.source.BusFeedSource`,
  plus the outbound event publisher and, with trading on, the trading lease around the broker.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from cryptomon.bus.collector import CollectorPublisher
from cryptomon.bus.http import CollectorHttp
from cryptomon.bus.lease import LeasedBroker, TradingLease
from cryptomon.clock import Clock
from cryptomon.config import ExchangeConfig, Settings
from cryptomon.feeds.manager import FeedManager, build_sources
from cryptomon.hub import Hub
from cryptomon.market.specs_file import spec_to_dict
from cryptomon.market.venues import specs_from_recording
from cryptomon.trading.brokers.base import Broker
from cryptomon.trading.context import EngineContext
from cryptomon.trading.risk import RiskState

log = structlog.get_logger()

LEASE_REASON = "no trading lease: another brain trades this account (or NATS is unreachable)"


def recorded_specs(configs: list[ExchangeConfig]) -> dict[str, list[dict[str, Any]]]:
    """Instrument specs from the ``EXCHANGE.0`` file of each replayed exchange (a live
    exchange's specs come from its instrument loader where one is configured)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for cfg in configs:
        if not cfg.enabled or cfg.source != "replay":
            continue
        for name in cfg.files:
            path = Path(name)
            if path.suffix == ".0" and ".ws." not in path.name and ".http." not in path.name:
                try:
                    specs = specs_from_recording(path, cfg.name)
                except (OSError, ValueError) as exc:
                    log.warning("bus.instruments_unavailable", exchange=cfg.name, error=str(exc))
                    continue
                out[cfg.name] = [spec_to_dict(spec) for spec in specs]
    return out


def collector_parts(settings: Settings, *, hub: Hub, clock: Clock) -> list[Any]:
    """The components of a collector process, in start order."""
    sources = build_sources(settings.exchanges, hub=hub, clock=clock)
    feeds = FeedManager(sources, hub=hub, clock=clock)
    publisher = CollectorPublisher(
        config=settings.bus,
        hub=hub,
        clock=clock,
        health=feeds.health,
        instruments=lambda: recorded_specs(settings.exchanges),
    )
    parts: list[Any] = [publisher]
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


def leased(
    broker: Broker, *, settings: Settings, hub: Hub, clock: Clock
) -> tuple[Broker, TradingLease | None]:
    """``(broker, lease)``: the broker gated by a new lease when this is a brain with trading
    on; else ``(broker, None)``."""
    if settings.bus.role != "brain" or not settings.trading.auto_trading_enabled:
        return broker, None
    lease = TradingLease(config=settings.bus, clock=clock, hub=hub)
    return LeasedBroker(broker, lease=lease), lease
