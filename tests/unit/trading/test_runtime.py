"""TradingRuntime: the one object holding what may change at runtime, changed only by update."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cryptomon.clock import ManualClock
from cryptomon.errors import ConfigError
from cryptomon.events import AuditEntry
from cryptomon.hub import Hub
from cryptomon.trading.runtime import LIMIT_FIELDS, TradingRuntime
from tests.unit.trading.helpers import Collector, trading_config


def test_update_replaces_settings_and_limits_and_audits() -> None:
    """A valid change is visible in config, limits and values at once, with one AuditEntry."""
    hub = Hub()
    audits = Collector(hub, AuditEntry)
    runtime = TradingRuntime(config=trading_config(), hub=hub, clock=ManualClock())
    out = runtime.update("ops", min_signal_strength=0.9, daily_loss_limit=40.0)
    assert out["min_signal_strength"] == 0.9
    assert runtime.config.min_signal_strength == 0.9
    assert runtime.limits.daily_loss_limit == Decimal(40)
    assert set(runtime.values()) == set(LIMIT_FIELDS)
    (entry,) = audits.of(AuditEntry)
    assert (entry.actor, entry.action) == ("ops", "update_limits")
    assert "min_signal_strength" in entry.payload


def test_bad_or_unknown_fields_change_nothing() -> None:
    """An unknown key or an invalid value raises ConfigError naming it; nothing applies."""
    hub = Hub()
    audits = Collector(hub, AuditEntry)
    runtime = TradingRuntime(config=trading_config(), hub=hub, clock=ManualClock())
    before = runtime.config
    with pytest.raises(ConfigError, match=r"trading\.poll_interval_s"):
        runtime.update("ops", poll_interval_s=0.5)
    with pytest.raises(ConfigError, match=r"trading\.min_signal_strength"):
        runtime.update("ops", min_signal_strength=1.5, daily_loss_limit=40.0)
    assert runtime.config is before
    assert audits.of(AuditEntry) == []
