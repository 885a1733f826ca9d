"""The composition of the collector and brain roles (no NATS needed to build them)."""

from __future__ import annotations

from pathlib import Path

from cryptomon.app import build_app
from cryptomon.bus.lease import LeasedBroker
from cryptomon.bus.source import BusFeedSource
from cryptomon.config import Settings


def test_collector_role_runs_feeds_and_the_publisher_only(shared_data: Path) -> None:
    """A collector builds the hub, its instrument specs, the publisher, its /health server and
    the feeds with the quality layer; no store, detection, trading or API."""
    files = [str(p) for p in sorted(shared_data.glob("OKX.*"))]
    settings = Settings.model_validate(
        {
            "bus": {"role": "collector"},
            "exchanges": [{"name": "okx", "source": "replay", "files": files}],
        }
    )
    app = build_app(settings)
    assert [c.name for c in app.components] == [
        "hub",
        "instruments",
        "bus-collector",
        "collector-http",
        "feeds",
    ]
    assert app.services.feeds is not None
    (okx,) = app.services.feeds.sources
    assert okx.health.quality is not None  # history, duplicates, bad prints, staleness
    assert okx.converter.units is not None  # type: ignore[attr-defined]


def test_brain_role_consumes_the_bus_and_gates_the_broker_with_the_lease(tmp_path: Path) -> None:
    """A brain with trading on gets the bus feed source, the outbound publisher, the lease
    (started before the trading engine) and a lease-gated broker."""
    settings = Settings.model_validate(
        {
            "bus": {"role": "brain"},
            "trading": {"auto_trading_enabled": True},
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"},
        }
    )
    app = build_app(settings)
    names = [c.name for c in app.components]
    assert names.index("bus-events") < names.index("database")
    assert names.index("bus-lease") < names.index("trading-engine")
    assert app.services.feeds is not None
    assert isinstance(app.services.feeds.sources[0], BusFeedSource)
    assert app.services.trading is not None
    assert isinstance(app.services.trading.broker, LeasedBroker)


def test_brain_without_trading_takes_no_lease(tmp_path: Path) -> None:
    """With auto trading off a brain competes for no lease."""
    settings = Settings.model_validate(
        {"bus": {"role": "brain"}, "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"}}
    )
    assert "bus-lease" not in [c.name for c in build_app(settings).components]
