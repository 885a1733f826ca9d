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
from cryptomon.config.arbitrage import ArbitrageConfig
from cryptomon.config.backtest import BacktestConfig
from cryptomon.config.base import Section, SeverityName, normalize_symbol, split_symbol
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
from cryptomon.config.market import DEFAULT_USD_QUOTES, MarketDataConfig
from cryptomon.config.problems import problems_from
from cryptomon.config.resources import ResourcesConfig
from cryptomon.config.settings import Settings, redact_url_password
from cryptomon.config.signals import GradeThresholds, WebhookConfig
from cryptomon.config.store import DatabaseConfig, StorageConfig
from cryptomon.config.trading import (
    IndicatorStrategyConfig,
    LiveTradingConfig,
    PaperBrokerConfig,
    SignalRuleConfig,
    TradingConfig,
)
from cryptomon.kinds import AnomalyKind, NotifyEventType, SignalGrade

__all__ = [
    "DEFAULT_USD_QUOTES",
    "ENV_PREFIX",
    "RESERVED_ENV_PREFIXES",
    "ROLES",
    "SUBSCRIPTIONS",
    "AlertsConfig",
    "AnomalyDetectionConfig",
    "AnomalyKind",
    "ApiConfig",
    "ArbitrageConfig",
    "BacktestConfig",
    "BusConfig",
    "ChannelConfig",
    "DatabaseConfig",
    "ExchangeConfig",
    "GradeThresholds",
    "IndicatorStrategyConfig",
    "LiveTradingConfig",
    "LoggingConfig",
    "MarketDataConfig",
    "NotifyCategory",
    "NotifyEventType",
    "PaperBrokerConfig",
    "ResourcesConfig",
    "Role",
    "Scope",
    "Section",
    "Settings",
    "SeverityName",
    "SignalGrade",
    "SignalRuleConfig",
    "StorageConfig",
    "Subscription",
    "TemplateOverride",
    "TokenConfig",
    "TradingConfig",
    "WebhookConfig",
    "env_overrides",
    "load_settings",
    "normalize_symbol",
    "problems_from",
    "read_yaml",
    "redact_url_password",
    "split_symbol",
]
