"""The root of the configuration: one frozen section per subsystem."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, Field, SecretStr, field_validator

from cryptomon.config.alerts import AlertsConfig
from cryptomon.config.api import ApiConfig
from cryptomon.config.backtest import BacktestConfig
from cryptomon.config.base import Section, redact_url_password, url_passwords
from cryptomon.config.bus import BusConfig
from cryptomon.config.detect import AnomalyDetectionConfig
from cryptomon.config.feeds import ExchangeConfig
from cryptomon.config.logging import LoggingConfig
from cryptomon.config.market import MarketDataConfig
from cryptomon.config.resources import ResourcesConfig
from cryptomon.config.store import DatabaseConfig, StorageConfig
from cryptomon.config.trading import TradingConfig


class Settings(Section):
    """The whole configuration. Build it with :func:`cryptomon.config.load_settings`."""

    exchanges: list[ExchangeConfig] = Field(default_factory=list)
    anomaly_detection: AnomalyDetectionConfig = Field(default_factory=AnomalyDetectionConfig)
    market_data: MarketDataConfig = Field(default_factory=MarketDataConfig)
    trading: TradingConfig = Field(default_factory=TradingConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    bus: BusConfig = Field(default_factory=BusConfig)
    shutdown_timeout_s: float = Field(default=10.0, gt=0, le=600)
    data_dir: Path = Field(
        default=Path("."),
        description="local state that must survive the database; default the working directory",
    )

    @field_validator("exchanges")
    @classmethod
    def _unique_exchanges(cls, v: list[ExchangeConfig]) -> list[ExchangeConfig]:
        names = [e.name for e in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"each exchange once; repeated: {', '.join(sorted(dup))}")
        return v

    def secret_values(self) -> list[str]:
        """Every secret string in this config, for the log redaction processor."""
        found: list[str] = []

        def walk(obj: Any) -> None:
            if isinstance(obj, SecretStr):
                val = obj.get_secret_value()
                if val:
                    found.append(val)
            elif isinstance(obj, str) and "://" in obj:  # database.url, bus.nats_url, ...
                for password in url_passwords(obj):  # as written, and as the driver sees it
                    found.extend(sorted({password, unquote(password)}))
            elif isinstance(obj, BaseModel):
                for name in type(obj).model_fields:
                    walk(getattr(obj, name))
            elif isinstance(obj, list | tuple):
                for item in obj:
                    walk(item)
            elif isinstance(obj, dict):
                for item in obj.values():
                    walk(item)

        walk(self)
        return found

    def redacted(self) -> dict[str, Any]:
        """The effective configuration as plain data with every secret replaced by ``***``."""
        data = self.model_dump(mode="json")

        def walk(model: Any, obj: Any) -> Any:
            if isinstance(model, SecretStr):
                return "***"
            if isinstance(model, BaseModel) and isinstance(obj, dict):
                return {k: walk(getattr(model, k), v) for k, v in obj.items()}
            if isinstance(model, list) and isinstance(obj, list):
                return [walk(m, o) for m, o in zip(model, obj, strict=True)]
            if isinstance(obj, str) and "://" in obj:  # database.url, bus.nats_url, ...
                return redact_url_password(obj)
            return obj

        out: dict[str, Any] = walk(self, data)
        return out
