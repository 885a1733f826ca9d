"""What ``build_app`` hands out: the built services, typed and fixed once built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptomon.detect.engine import DetectorEngine
    from cryptomon.feeds.manager import FeedManager
    from cryptomon.market.registry import InstrumentRegistry
    from cryptomon.market.state import MarketState
    from cryptomon.notify.router import NotificationRouter
    from cryptomon.store.db import Database
    from cryptomon.store.queries import Queries
    from cryptomon.store.writer import StoreWriter
    from cryptomon.trading.engine import TradingEngine
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
