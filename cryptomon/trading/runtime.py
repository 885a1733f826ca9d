"""What may change while the daemon runs: risk limits and signal gates, in one object.

Config sections are frozen. :class:`TradingRuntime` holds the *current* trading settings
(the startup ``TradingConfig`` with the changes made since) and the :class:`Limits` the risk
check enforces. :meth:`TradingRuntime.update` is the only way to change them: the change is
validated like the config file (``ConfigError`` naming each bad key) and audited (an
``AuditEntry`` on the hub). The order engine and the signal generator share one instance and
read ``runtime.config`` when they act, so a change reaches both at once.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from cryptomon.clock import Clock
from cryptomon.config import TradingConfig, problems_from
from cryptomon.errors import ConfigError, Problem
from cryptomon.events import AuditEntry
from cryptomon.hub import Hub
from cryptomon.trading.risk import Limits

# The settings an operator may change at runtime (risk limits and signal gates).
LIMIT_FIELDS = (
    "auto_trading_enabled",
    "max_position_size",
    "risk_percentage",
    "stop_loss_percentage",
    "take_profit_percentage",
    "trailing_stop_percentage",
    "max_open_positions",
    "max_symbol_exposure",
    "max_total_exposure",
    "daily_loss_limit",
    "max_orders_per_minute",
    "price_band_percentage",
    "max_leverage",
    "allow_short",
    "min_signal_strength",
    "kill_switch_flatten",
)


def publish_audit(hub: Hub, clock: Clock, actor: str, action: str, payload: dict[str, Any]) -> None:
    """Publish one ``AuditEntry`` (the payload as sorted JSON, Decimals as strings)."""
    now = clock.time()
    hub.publish(
        AuditEntry(
            exchange=str(payload.get("exchange", "")),
            symbol=str(payload.get("symbol", "")),
            ts=now,
            ts_recv=now,
            actor=actor,
            action=action,
            payload=json.dumps(payload, default=str, sort_keys=True),
        )
    )


class TradingRuntime:
    """The current trading settings and risk limits; see the module docstring."""

    def __init__(self, *, config: TradingConfig, hub: Hub, clock: Clock) -> None:
        self._config = config
        self._limits = Limits.from_config(config)
        self._hub = hub
        self._clock = clock

    @property
    def config(self) -> TradingConfig:
        """The current settings (frozen; replaced as a whole by :meth:`update`)."""
        return self._config

    @property
    def limits(self) -> Limits:
        """The limits the risk check enforces, derived from :attr:`config`."""
        return self._limits

    def values(self) -> dict[str, Any]:
        """The runtime-changeable settings and their current values."""
        return {name: getattr(self._config, name) for name in LIMIT_FIELDS}

    def update(self, actor: str, **fields: Any) -> dict[str, Any]:
        """Validate and apply ``fields`` (names from :data:`LIMIT_FIELDS`), audited."""
        unknown = [name for name in fields if name not in LIMIT_FIELDS]
        if unknown:
            expected = "one of " + ", ".join(LIMIT_FIELDS)
            raise ConfigError([Problem(f"trading.{k}", fields[k], expected) for k in unknown])
        try:
            new = TradingConfig.model_validate({**self._config.model_dump(), **fields})
        except ValidationError as exc:
            where = ", ".join(sorted(fields))
            raise ConfigError(
                [
                    Problem(
                        f"trading.{where if p.path == 'config' else p.path}",
                        fields if p.path == "config" else p.value,
                        p.expected,
                    )
                    for p in problems_from(exc)
                ]
            ) from None
        self._config = new
        self._limits = Limits.from_config(new)
        publish_audit(self._hub, self._clock, actor, "update_limits", {"changes": fields})
        return self.values()

    def reload(self, config: TradingConfig, actor: str = "config") -> dict[str, Any]:
        """The config file was read again: its settings replace the current ones whole
        (changes made through the API are reset), audited as ``reloaded``."""
        old = self._config.model_dump()
        new = config.model_dump()
        changes = {k: new[k] for k in new if new[k] != old.get(k)}
        self._config = config
        self._limits = Limits.from_config(config)
        publish_audit(self._hub, self._clock, actor, "reloaded", {"changes": changes})
        return changes
