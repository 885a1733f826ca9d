"""Typed configuration (DESIGN.md sections 3.2, 3.13 and 4): one frozen section model per
subsystem under the root :class:`Settings`, built by :func:`load_settings` from the YAML file and
``CRYPTOMON_*`` environment variables.

This package is a base layer: it imports :mod:`cryptomon.errors` and :mod:`cryptomon.kinds`
only. Every public name is re-exported here, so ``from cryptomon.config import X`` is the one
way in.
"""

from __future__ import annotations

from cryptomon.config.alerts import AlertsConfig, ChannelConfig, NotifyCategory, TemplateOverride
from cryptomon.config.api import ApiConfig, Scope, TokenConfig
from cryptomon.config.base import Section, SeverityName, normalize_symbol
from cryptomon.config.bus import ROLES, BusConfig, Role
from cryptomon.config.detect import AnomalyDetectionConfig
from cryptomon.config.feeds import SUBSCRIPTIONS, ExchangeConfig, Subscription
from cryptomon.config.loader import (
    ENV_PREFIX,
    RESERVED_ENV_PREFIXES,
    env_overrides,
    load_settings,
    read_yaml,
)
from cryptomon.config.logging import LoggingConfig
from cryptomon.config.problems import problems_from
from cryptomon.config.settings import Settings, redact_url_password
from cryptomon.config.store import DatabaseConfig, StorageConfig
from cryptomon.config.trading import (
    IndicatorStrategyConfig,
    LiveTradingConfig,
    PaperBrokerConfig,
    SignalRuleConfig,
    TradingConfig,
)
from cryptomon.kinds import AnomalyKind, NotifyEventType

__all__ = [
    "ENV_PREFIX",
    "RESERVED_ENV_PREFIXES",
    "ROLES",
    "SUBSCRIPTIONS",
    "AlertsConfig",
    "AnomalyDetectionConfig",
    "AnomalyKind",
    "ApiConfig",
    "BusConfig",
    "ChannelConfig",
    "DatabaseConfig",
    "ExchangeConfig",
    "IndicatorStrategyConfig",
    "LiveTradingConfig",
    "LoggingConfig",
    "NotifyCategory",
    "NotifyEventType",
    "PaperBrokerConfig",
    "Role",
    "Scope",
    "Section",
    "Settings",
    "SeverityName",
    "SignalRuleConfig",
    "StorageConfig",
    "Subscription",
    "TemplateOverride",
    "TokenConfig",
    "TradingConfig",
    "env_overrides",
    "load_settings",
    "normalize_symbol",
    "problems_from",
    "read_yaml",
    "redact_url_password",
]
