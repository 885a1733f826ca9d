"""The ``anomaly_detection`` section: detector thresholds, overridable per market."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import Field, ValidationError, field_validator, model_validator

from cryptomon.config.arbitrage import ArbitrageConfig
from cryptomon.config.base import Section, normalize_symbol


class AnomalyDetectionConfig(Section):
    """Thresholds of the detectors; any of them may be overridden per ``exchange:symbol``."""

    enabled: bool = Field(default=True, description="run the detectors at all")
    volume_threshold_multiplier: float = Field(
        default=4.0, gt=0, description="z-score of bucket volume that fires"
    )
    volume_min_ratio: float = Field(
        default=0.0,
        ge=0,
        description="bucket volume must also be this multiple of the lookback's mean bucket",
    )
    price_change_percentage: float = Field(
        default=5.0, gt=0, description="% move within the lookback that fires"
    )
    lookback_window_minutes: float = Field(
        default=60, gt=0, le=10080, description="history the statistics look back over"
    )
    min_samples: int = Field(default=30, ge=2, description="warm-up: samples before stats fire")
    bucket_seconds: float = Field(default=60, gt=0, description="volume/price bucket length")
    cooldown_s: float = Field(
        default=300, ge=0, description="per exchange+symbol+kind; a higher severity passes"
    )
    volume_imbalance_threshold: float = Field(
        default=0.8, gt=0, le=1, description="|buy-sell|/(buy+sell) of a busy bucket that fires"
    )
    volume_imbalance_min_trades: int = Field(
        default=50, ge=1, description="trades in the bucket before its imbalance counts"
    )
    volatility_z_threshold: float = Field(
        default=6.0, gt=0, description="z-score of the running bucket's log return"
    )
    ma_deviation_percentage: float = Field(
        default=3.0, gt=0, description="% distance from the moving average of bucket closes"
    )
    ma_deviation_z_threshold: float = Field(
        default=4.5, ge=0, description="and that many std of the closes away from their mean"
    )
    book_imbalance_threshold: float = Field(
        default=0.5, gt=0, le=1, description="|bid-ask|/(bid+ask) depth (smoothed) that fires"
    )
    book_imbalance_min_s: float = Field(
        default=3.0, ge=0, description="seconds the imbalance must persist"
    )
    book_imbalance_smoothing_s: float = Field(
        default=1.0, gt=0, description="half-life of the imbalance smoothing"
    )
    spread_z_threshold: float = Field(
        default=6.0, gt=0, description="z-score of the spread (bps) against its EWMA"
    )
    spread_min_ratio: float = Field(
        default=3.0, gt=1, description="spread must also be this multiple of its mean"
    )
    spread_min_ticks: float = Field(
        default=10.0, ge=0, description="a spread narrower than this many ticks never fires"
    )
    spread_min_bps: float = Field(
        default=0.0, ge=0, description="a spread narrower than this many bps never fires"
    )
    spread_halflife_s: float = Field(
        default=300.0, gt=0, description="half-life of the spread/imbalance/gap EWMAs"
    )
    whale_notional: dict[str, float] = Field(
        default_factory=lambda: {
            "USDT": 1_000_000.0,
            "USDC": 1_000_000.0,
            "USD": 1_000_000.0,
            "EUR": 1_000_000.0,
            "BTC": 15.0,
            "ETH": 400.0,
        },
        description="single-trade notional that fires, per quote currency",
    )
    whale_notional_usd: float = Field(
        default=1_000_000.0,
        gt=0,
        description="the whale threshold in USD for a USD-like quote without its own entry in "
        "whale_notional (where the trade's notional_usd is known)",
    )
    whale_min_notional: dict[str, float] = Field(
        default_factory=lambda: {
            "USDT": 1_000.0,
            "USDC": 1_000.0,
            "USD": 1_000.0,
            "EUR": 1_000.0,
            "BTC": 0.05,
            "ETH": 1.0,
        },
        description="the statistical whale rule needs at least this notional, per quote "
        "('*': any other quote; a quote with neither: no minimum)",
    )
    whale_median_multiple: float = Field(
        default=30.0, gt=1, description="statistical whale: at least this multiple of the median"
    )
    whale_quantile: float = Field(
        default=0.995, gt=0.5, lt=1, description="... and of this quantile of recent orders"
    )
    whale_quantile_multiple: float = Field(default=1.5, gt=0, description="... times this multiple")
    whale_window_trades: int = Field(
        default=1000, ge=2, le=100_000, description="recent trades behind the whale statistics"
    )
    whale_burst_count: int = Field(
        default=5, ge=2, le=32, description="same-side large trades that make a burst"
    )
    whale_burst_window_s: float = Field(default=30.0, gt=0, description="burst time window")
    whale_burst_fraction: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="'large' for bursts: this fraction of a whale threshold",
    )
    divergence_bps: float = Field(
        default=50.0, gt=0, description="mid-price gap to the other exchanges, bps"
    )
    divergence_min_s: float = Field(default=5.0, ge=0, description="seconds the gap must last")
    divergence_max_age_s: float = Field(
        default=10.0, gt=0, description="other exchanges' mids older than this are ignored"
    )
    arbitrage: ArbitrageConfig = Field(
        default_factory=ArbitrageConfig, description="fee-aware cross-exchange opportunities"
    )
    liquidation_z_threshold: float = Field(
        default=4.0, gt=0, description="z-score of liquidated volume per bucket"
    )
    funding_jump: float = Field(
        default=0.0005, gt=0, description="absolute change of the funding rate that fires"
    )
    batch_size: int = Field(
        default=1024, ge=1, le=1_000_000, description="events buffered before a kernel flush"
    )
    warm_from_store: bool = Field(
        default=True,
        description="at start, warm the windows from the stored trades (storage.trades) or "
        "1-minute candles of the lookback, before the feeds start",
    )
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("whale_notional", "whale_min_notional")
    @classmethod
    def _quotes(cls, v: dict[str, float]) -> dict[str, float]:
        out = {}
        for quote, amount in v.items():
            if not 0 <= amount < math.inf:
                raise ValueError(f"[{quote!r}] must be a finite notional >= 0, not {amount!r}")
            out[str(quote).upper()] = float(amount)
        return out

    _not_overridable: ClassVar[frozenset[str]] = frozenset(
        {"overrides", "enabled", "batch_size", "warm_from_store"}
    )

    @field_validator("overrides", mode="before")
    @classmethod
    def _override_keys(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out: dict[str, Any] = {}
        for key, val in v.items():
            exchange, sep, symbol = str(key).partition(":")
            if not sep or not exchange or not symbol:
                raise ValueError(f"override keys look like 'binance:BTC/USDT', not {key!r}")
            out[f"{exchange.strip().lower()}:{normalize_symbol(symbol)}"] = val
        return out

    @model_validator(mode="after")
    def _check_overrides(self) -> AnomalyDetectionConfig:
        for key, values in self.overrides.items():
            if not isinstance(values, dict):
                raise ValueError(f"overrides[{key!r}] must be a mapping of threshold: value")
            bad = [
                k for k in values if k not in type(self).model_fields or k in self._not_overridable
            ]
            if bad:
                raise ValueError(
                    f"overrides[{key!r}]: unknown threshold(s) {', '.join(map(str, bad))}"
                )
            try:
                self._merged(values)  # validates the values
            except ValidationError as exc:
                first = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in first["loc"])
                expected = str(first["msg"]).removeprefix("Input should be ")
                raise ValueError(
                    f"overrides[{key!r}].{where}: {expected} (got {first['input']!r})"
                ) from None
        return self

    def _merged(self, values: dict[str, Any]) -> AnomalyDetectionConfig:
        base = self.model_dump(exclude={"overrides"})
        base.update(values)
        return type(self).model_validate(base)

    def for_symbol(self, exchange: str, symbol: str) -> AnomalyDetectionConfig:
        """The thresholds for one market: this section with its override applied."""
        values = self.overrides.get(f"{exchange.lower()}:{symbol}")
        return self._merged(values) if values else self
