"""Typed configuration (DESIGN.md sections 3.2 and 4).

One pydantic-settings root, one ``Section`` model per subsystem; every model forbids unknown
keys. Sources, lowest priority first: built-in defaults, the YAML file given by ``--config``,
environment variables ``CRYPTOMON_<SECTION>__<KEY>`` (``__`` separates nesting levels; lists
and dicts take JSON). Any ``SecretStr`` field ``X`` may instead be given as ``X_file: PATH``,
whose stripped content becomes the value.

:func:`load_settings` turns every problem into a :class:`~cryptomon.errors.ConfigError` whose
lines name the key path, the offending value and what was expected.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from cryptomon.errors import ConfigError, Problem

ENV_PREFIX = "CRYPTOMON_"
SUBSCRIPTIONS = (
    "trades",
    "orderbook",
    "ticker",
    "candles",
    "funding",
    "liquidations",
    "open_interest",
)
Subscription = Literal[
    "trades", "orderbook", "ticker", "candles", "funding", "liquidations", "open_interest"
]
_DEFAULT_SUBS: tuple[Subscription, ...] = ("trades", "orderbook", "ticker", "candles")
SeverityName = Literal["low", "medium", "high", "critical"]

_SYMBOL_RE = re.compile(r"^[A-Z0-9]+([-/][A-Z0-9]+)+$")


def normalize_symbol(value: str) -> str:
    """``btc/usdt`` -> ``BTC-USDT`` (cryptofeed's normalized form)."""
    s = value.strip().upper()
    if not _SYMBOL_RE.match(s):
        raise ValueError(f"a symbol like BTC/USDT or BTC-USDT, not {value!r}")
    return s.replace("/", "-")


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret(a) for a in get_args(annotation))


class Section(BaseModel):
    """Base of every config section: unknown keys are errors; ``X_file`` loads secret ``X``."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=False)

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key in list(out):
            if not (isinstance(key, str) and key.endswith("_file")):
                continue
            base = key[: -len("_file")]
            field = cls.model_fields.get(base)
            if field is None or not _is_secret(field.annotation):
                continue
            path = Path(str(out.pop(key))).expanduser()
            try:
                out[base] = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(
                    f"{key}: cannot read secret file {str(path)!r} ({exc.strerror or exc})"
                ) from None
        return out


# --------------------------------------------------------------------------- exchanges


class ExchangeConfig(Section):
    """One market data source: a cryptofeed exchange, the built-in simulator, or a replay."""

    name: str = Field(min_length=1, description="cryptofeed exchange name, or 'simulator'")
    enabled: bool = True
    source: Literal["live", "replay"] = "live"
    files: list[str] = Field(default_factory=list, description="recordings for source: replay")
    replay_speed: str = Field(default="max", pattern=r"^(max|\d+(\.\d+)?x)$")
    symbols: list[str] = Field(default_factory=list)
    subscriptions: list[Subscription] = Field(default_factory=lambda: list(_DEFAULT_SUBS))
    depth: int = Field(default=20, ge=1, le=1000, description="order book depth kept")
    book_levels: int = Field(default=10, ge=1, le=1000, description="levels summed in BookTop")
    book_snapshot_interval_s: float = Field(default=1.0, gt=0)
    stale_after_s: float | None = Field(
        default=None, gt=0, description="stall watchdog; None = sized per channel"
    )
    url: str | None = Field(default=None, description="endpoint override (simulator address)")
    candle_interval: str = "1m"
    loop_yield_every: int = Field(
        default=16,
        ge=0,
        description="give the event loop back every N market messages within a burst, so the "
        "detectors' flush and API requests run during it (latency); 0 = never",
    )

    @field_validator("name")
    @classmethod
    def _lower_name(cls, v: str) -> str:
        return v.strip().lower()

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        out = [normalize_symbol(s) for s in v]
        dup = {s for s in out if out.count(s) > 1}
        if dup:
            raise ValueError(f"each symbol once; repeated: {', '.join(sorted(dup))}")
        return out

    @model_validator(mode="after")
    def _check(self) -> ExchangeConfig:
        if self.enabled and self.source == "live" and not self.symbols:
            raise ValueError("an enabled exchange needs at least one symbol in 'symbols'")
        if self.source == "replay" and not self.files:
            raise ValueError("source: replay needs recording paths in 'files'")
        if self.book_levels > self.depth:
            raise ValueError(f"book_levels ({self.book_levels}) <= depth ({self.depth})")
        return self


# --------------------------------------------------------------------------- detection


class AnomalyDetectionConfig(Section):
    """Thresholds of the detectors; any of them may be overridden per ``exchange:symbol``."""

    enabled: bool = Field(default=True, description="run the detectors at all")
    volume_threshold_multiplier: float = Field(
        default=4.0, gt=0, description="z-score of bucket volume that fires"
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
        default=20, ge=1, description="trades in the bucket before its imbalance counts"
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
    whale_k_std: float = Field(
        default=5.0, gt=0, description="or this many std above the mean log notional"
    )
    whale_window_trades: int = Field(
        default=1000, ge=2, le=100_000, description="recent trades behind the whale statistics"
    )
    whale_burst_count: int = Field(
        default=5, ge=2, le=32, description="same-side large trades that make a burst"
    )
    whale_burst_window_s: float = Field(default=30.0, gt=0, description="burst time window")
    whale_burst_k_std: float = Field(
        default=3.0, gt=0, description="a 'large' trade for bursts: z of log notional"
    )
    whale_burst_fraction: float = Field(
        default=0.25, gt=0, le=1, description="or this fraction of the whale notional"
    )
    divergence_bps: float = Field(
        default=50.0, gt=0, description="mid-price gap to the other exchanges, bps"
    )
    divergence_min_s: float = Field(default=5.0, ge=0, description="seconds the gap must last")
    divergence_max_age_s: float = Field(
        default=10.0, gt=0, description="other exchanges' mids older than this are ignored"
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
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("whale_notional")
    @classmethod
    def _quotes(cls, v: dict[str, float]) -> dict[str, float]:
        out = {}
        for quote, amount in v.items():
            if not amount > 0:
                raise ValueError(f"whale_notional[{quote!r}] must be > 0, not {amount!r}")
            out[str(quote).upper()] = float(amount)
        return out

    _not_overridable: ClassVar[frozenset[str]] = frozenset({"overrides", "enabled", "batch_size"})

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
            self._merged(values)  # validates the values
        return self

    def _merged(self, values: dict[str, Any]) -> AnomalyDetectionConfig:
        base = self.model_dump(exclude={"overrides"})
        base.update(values)
        return type(self).model_validate(base)

    def for_symbol(self, exchange: str, symbol: str) -> AnomalyDetectionConfig:
        """The thresholds for one market: this section with its override applied."""
        values = self.overrides.get(f"{exchange.lower()}:{symbol}")
        return self._merged(values) if values else self


# --------------------------------------------------------------------------- trading


class SignalRuleConfig(Section):
    """Maps anomalies to a signal: ``momentum`` trades with the price move, ``reversion``
    against it. Conditions not set are not checked."""

    name: str = Field(min_length=1, description="rule name, shown as the signal source")
    style: Literal["momentum", "reversion"] = Field(default="momentum", description="direction")
    kinds: list[str] = Field(
        default_factory=list, description="anomaly kinds that trigger the rule; empty = any"
    )
    min_price_change_pct: float = Field(
        default=0.0, ge=0, description="|price change %| of the anomaly (or a recent one)"
    )
    max_price_change_pct: float | None = Field(
        default=None, gt=0, description="skip moves larger than this (mean reversion caps)"
    )
    min_volume_z: float | None = Field(
        default=None, ge=0, description="volume z-score of the anomaly or a recent volume one"
    )
    min_severity: SeverityName = Field(default="low", description="lowest anomaly severity")
    window_s: float = Field(
        default=300.0, gt=0, description="how long a companion anomaly counts as recent"
    )
    strength: float | None = Field(
        default=None, ge=0, le=1, description="fixed strength; None = anomaly confidence"
    )
    sides: list[Literal["buy", "sell"]] = Field(
        default_factory=lambda: ["buy", "sell"],  # type: ignore[arg-type]
        description="sides this rule may emit",
    )


def _default_rules() -> list[SignalRuleConfig]:
    return [
        SignalRuleConfig(
            name="momentum", style="momentum", min_price_change_pct=1.0, min_volume_z=3.0
        )
    ]


class IndicatorStrategyConfig(Section):
    """RSI / MACD / Bollinger / SMA / EMA vote on closed candles of ``interval``."""

    enabled: bool = Field(default=True, description="emit indicator signals")
    interval: str = Field(default="1m", min_length=1, description="candle interval used")
    rsi_period: int = Field(default=14, ge=2, le=500, description="RSI lookback (candles)")
    rsi_overbought: float = Field(
        default=70.0, gt=50, lt=100, description="RSI above this votes sell"
    )
    rsi_oversold: float = Field(default=30.0, gt=0, lt=50, description="RSI below this votes buy")
    macd_fast: int = Field(default=12, ge=1, le=500, description="MACD fast EMA")
    macd_slow: int = Field(default=26, ge=2, le=500, description="MACD slow EMA")
    macd_signal: int = Field(default=9, ge=1, le=500, description="MACD signal EMA")
    bb_period: int = Field(default=20, ge=2, le=500, description="Bollinger SMA period")
    bb_std: float = Field(default=2.0, gt=0, le=10, description="Bollinger band width (std devs)")
    sma_fast: int = Field(default=20, ge=1, le=1000, description="fast SMA (trend vote)")
    sma_slow: int = Field(default=50, ge=2, le=1000, description="slow SMA (trend vote)")
    ema_fast: int = Field(default=12, ge=1, le=1000, description="fast EMA (trend vote)")
    ema_slow: int = Field(default=26, ge=2, le=1000, description="slow EMA (trend vote)")
    max_candles: int = Field(default=500, ge=60, le=100_000, description="candles kept")
    cooldown_s: float = Field(default=300.0, ge=0, description="min gap between signals")

    @model_validator(mode="after")
    def _periods(self) -> IndicatorStrategyConfig:
        for fast, slow in (
            ("macd_fast", "macd_slow"),
            ("sma_fast", "sma_slow"),
            ("ema_fast", "ema_slow"),
        ):
            if getattr(self, fast) >= getattr(self, slow):
                raise ValueError(f"{fast} ({getattr(self, fast)}) < {slow} ({getattr(self, slow)})")
        return self


class PaperBrokerConfig(Section):
    """Simulated venue: fills against the live book, balances in ``quote_currency``."""

    quote_currency: str = Field(default="USDT", min_length=1, description="balance currency")
    starting_balance: float = Field(default=10_000.0, gt=0, description="quote currency")
    taker_fee: float = Field(default=0.001, ge=0, lt=0.1, description="fraction, 0.001 = 0.1%")
    maker_fee: float = Field(default=0.001, ge=0, lt=0.1, description="fraction")
    tick_size: float = Field(default=0.01, gt=0, description="price increment")
    lot_size: float = Field(default=0.00001, gt=0, description="amount increment")
    min_notional: float = Field(default=5.0, ge=0, description="smallest order, quote")


class LiveTradingConfig(Section):
    """The ccxt broker (mode: live). Keys from the environment or ``*_file`` paths."""

    exchange: str = Field(default="binance", min_length=1, description="ccxt exchange id")
    api_key: SecretStr | None = Field(default=None, description="or api_key_file")
    secret: SecretStr | None = Field(default=None, description="or secret_file")
    password: SecretStr | None = Field(default=None, description="passphrase (okx, ...)")
    sandbox: bool = Field(default=False, description="ccxt set_sandbox_mode")
    url: str | None = Field(default=None, description="REST base URL override (simulator)")
    timeout_ms: int = Field(default=10_000, ge=100, le=120_000, description="request timeout")
    enable_rate_limit: bool = Field(default=True, description="ccxt enableRateLimit")
    recv_window_ms: int = Field(default=5_000, ge=100, le=60_000, description="signed window")
    options: dict[str, Any] = Field(default_factory=dict, description="extra ccxt options")
    native_stop_loss: bool = Field(
        default=True, description="place SL/TP on the venue when it supports it"
    )

    @field_validator("exchange")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.strip().lower()


class TradingConfig(Section):
    """Order engine: signals, risk limits, protection, brokers."""

    auto_trading_enabled: bool = Field(default=False, description="signals become orders")
    mode: Literal["paper", "live"] = Field(default="paper", description="paper or live (ccxt)")
    exchange: str | None = Field(
        default=None, description="market data exchange traded; None = every exchange"
    )
    symbols: list[str] = Field(default_factory=list, description="traded symbols; [] = all")
    max_position_size: float = Field(default=1000.0, gt=0, description="quote currency")
    risk_percentage: float = Field(default=2.0, gt=0, le=100, description="% equity risked")
    stop_loss_percentage: float = Field(
        default=3.0, gt=0, lt=100, description="stop distance from the entry, %"
    )
    take_profit_percentage: float = Field(
        default=6.0, gt=0, description="take-profit distance from the entry, %"
    )
    trailing_stop_percentage: float | None = Field(
        default=None, gt=0, lt=100, description="trail the stop this % behind the best price"
    )
    max_open_positions: int = Field(
        default=3, ge=1, le=1000, description="markets with a position or entry"
    )
    max_symbol_exposure: float = Field(default=1000.0, gt=0, description="quote, per symbol")
    max_total_exposure: float = Field(default=3000.0, gt=0, description="quote, all symbols")
    daily_loss_limit: float = Field(
        default=500.0, gt=0, description="quote; entries halt for the UTC day"
    )
    max_orders_per_minute: int = Field(
        default=10, ge=1, le=10_000, description="new orders per minute (exits exempt)"
    )
    price_band_percentage: float = Field(
        default=5.0, gt=0, le=100, description="max limit price distance from mid"
    )
    max_leverage: float = Field(default=1.0, ge=1, le=125, description="exposure / equity")
    allow_short: bool = Field(default=False, description="sell signals may open shorts")
    min_signal_strength: float = Field(
        default=0.65, ge=0, le=1, description="weaker signals are ignored"
    )
    signal_rules: list[SignalRuleConfig] = Field(
        default_factory=_default_rules, description="anomaly -> signal rules, first match wins"
    )
    indicators: IndicatorStrategyConfig = Field(
        default_factory=IndicatorStrategyConfig, description="the indicator strategy"
    )
    paper: PaperBrokerConfig = Field(
        default_factory=PaperBrokerConfig, description="the paper broker (mode: paper)"
    )
    live: LiveTradingConfig = Field(
        default_factory=LiveTradingConfig, description="the ccxt broker (mode: live)"
    )
    kill_switch_flatten: bool = Field(default=True, description="kill switch closes positions")
    reconcile_on_start: bool = Field(default=True, description="reconcile before trading")
    reconcile_interval_s: float = Field(default=60.0, gt=0, description="periodic reconcile")
    order_timeout_s: float = Field(default=10.0, gt=0, description="placement -> unknown")
    unknown_lookups: int = Field(
        default=5, ge=1, le=100, description="lookups before an absent order is rejected"
    )
    poll_interval_s: float = Field(default=1.0, gt=0, description="open order polling")
    mark_interval_s: float = Field(default=1.0, gt=0, description="position marks published")
    equity_snapshot_interval_s: float = Field(
        default=60.0, gt=0, description="equity snapshots written to the database"
    )

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        return [normalize_symbol(s) for s in v]

    @field_validator("exchange")
    @classmethod
    def _exchange(cls, v: str | None) -> str | None:
        return None if v is None else v.strip().lower()

    @model_validator(mode="after")
    def _check(self) -> TradingConfig:
        if self.max_symbol_exposure > self.max_total_exposure:
            raise ValueError(
                f"max_symbol_exposure ({self.max_symbol_exposure}) <= max_total_exposure "
                f"({self.max_total_exposure})"
            )
        if self.mode == "live" and (self.live.api_key is None or self.live.secret is None):
            raise ValueError("mode: live needs live.api_key and live.secret (or *_file)")
        return self


# --------------------------------------------------------------------------- alerts


NotifyCategory = Literal["anomaly", "trading", "system"]
_ALL_CATEGORIES: tuple[NotifyCategory, ...] = ("anomaly", "trading", "system")
NotifyEventType = Literal[
    "anomaly",
    "fill",
    "exit",
    "risk",
    "kill_switch",
    "feed_down",
    "feed_recovered",
    "notice",
    "test",
]
_HHMM = r"([01]\d|2[0-3]):[0-5]\d"


class ChannelConfig(Section):
    """One apprise destination and what reaches it (routing, rate limit, quiet hours)."""

    name: str = Field(min_length=1, description="channel name used in records and the API")
    url: SecretStr = Field(description="any apprise URL: tgram://, mailto://, json://, ...")
    min_severity: SeverityName = Field(default="medium", description="lowest severity sent")
    kinds: list[str] | None = Field(default=None, description="anomaly kinds; None = all")
    exchanges: list[str] | None = Field(default=None, description="None = all exchanges")
    symbols: list[str] | None = Field(default=None, description="None = all symbols")
    events: list[NotifyCategory] = Field(
        default_factory=lambda: list(_ALL_CATEGORIES),
        min_length=1,
        description="event categories routed here: anomaly, trading, system",
    )
    format: Literal["auto", "markdown", "text"] = Field(
        default="auto", description="auto = by URL scheme (Markdown for chat, text otherwise)"
    )
    rate_limit_per_min: float = Field(
        default=6.0, gt=0, le=6000, description="token bucket refill, messages per minute"
    )
    rate_limit_burst: int | None = Field(
        default=None, ge=1, le=10_000, description="bucket size; None = rate_limit_per_min"
    )
    digest_interval_s: float = Field(
        default=60.0, gt=0, le=86_400, description="beyond the limit: one digest per interval"
    )
    quiet_hours: str | None = Field(
        default=None,
        pattern=rf"^{_HHMM}-{_HHMM}$",
        description="HH:MM-HH:MM in quiet_hours_tz; only P0 passes then",
    )
    quiet_hours_tz: str = Field(default="UTC", min_length=1, description="IANA time zone")

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [normalize_symbol(s) for s in v]

    @field_validator("exchanges")
    @classmethod
    def _exchanges(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [e.strip().lower() for e in v]

    @field_validator("url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        if "://" not in v.get_secret_value():
            raise ValueError("an apprise URL such as tgram://TOKEN/CHAT or mailto://...")
        return v

    @field_validator("quiet_hours_tz")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"an IANA time zone such as UTC or Europe/Berlin, not {v!r}") from None
        return v

    @property
    def burst(self) -> int:
        """Token bucket size."""
        return self.rate_limit_burst or max(1, round(self.rate_limit_per_min))


class TemplateOverride(Section):
    """Replacement title and/or body (``str.format`` fields of the event type)."""

    title: str | None = Field(default=None, min_length=1, description="None = built-in title")
    body: str | None = Field(default=None, min_length=1, description="None = built-in body")


class AlertsConfig(Section):
    """Notifications: channels, spam control, delivery retries, templates."""

    enabled: bool = Field(default=True, description="false: nothing is sent")
    channels: list[ChannelConfig] = Field(default_factory=list)
    feed_down_after_s: float = Field(
        default=60.0, gt=0, le=86_400, description="notify a feed stale/down this long"
    )
    dedup_window_s: float = Field(
        default=300.0, ge=0, le=86_400, description="same exchange+symbol+kind once; 0 = off"
    )
    attempt_timeout_s: float = Field(default=10.0, gt=0, le=300, description="per attempt")
    retries: int = Field(default=3, ge=0, le=20, description="retries after the first attempt")
    retry_backoff_s: float = Field(default=1.0, gt=0, le=600, description="first retry delay")
    retry_backoff_cap_s: float = Field(default=60.0, gt=0, le=3600, description="max delay")
    api_base_url: str = Field(
        default="http://127.0.0.1:8080",
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="base of links to the API in messages",
    )
    tick_s: float = Field(
        default=1.0, gt=0, le=60, description="resolution of digest and feed-down timers"
    )
    stop_timeout_s: float = Field(
        default=5.0, gt=0, le=600, description="time to deliver queued messages at shutdown"
    )
    templates: dict[NotifyEventType, TemplateOverride] = Field(
        default_factory=dict, description="per event type title/body overrides"
    )

    @field_validator("channels")
    @classmethod
    def _unique(cls, v: list[ChannelConfig]) -> list[ChannelConfig]:
        names = [c.name for c in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"unique channel names; repeated: {', '.join(sorted(dup))}")
        return v

    @field_validator("api_base_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @field_validator("templates")
    @classmethod
    def _check_templates(
        cls, v: dict[NotifyEventType, TemplateOverride]
    ) -> dict[NotifyEventType, TemplateOverride]:
        from cryptomon.notify.templates import check_override

        for event_type, ov in v.items():
            for part in ("title", "body"):
                text = getattr(ov, part)
                if text is None:
                    continue
                try:
                    check_override(event_type, text)
                except ValueError as exc:
                    raise ValueError(f"{event_type}.{part}: {exc}") from None
        return v


# --------------------------------------------------------------------------- storage


class DatabaseConfig(Section):
    """Where everything is stored (``cryptomon.store``)."""

    url: str = Field(
        default="sqlite+aiosqlite:///./cryptomon.db",
        description="sqlite+aiosqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DB",
    )
    auto_migrate: bool = Field(default=True, description="run `db upgrade head` at start")
    pool_size: int = Field(default=5, ge=1, description="PostgreSQL connections kept open")
    max_overflow: int = Field(default=5, ge=0, description="extra connections under load")
    pool_timeout_s: float = Field(default=10.0, gt=0, description="wait for a free connection")
    connect_timeout_s: float = Field(default=10.0, gt=0, description="connect attempt limit")
    statement_timeout_s: float = Field(
        default=10.0, gt=0, description="PostgreSQL: a write or read unanswered this long fails"
    )
    sqlite_busy_timeout_s: float = Field(
        default=10.0, gt=0, description="SQLite: wait this long for a lock held by another process"
    )
    echo: bool = Field(default=False, description="log every SQL statement")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^(sqlite\+aiosqlite|postgresql\+psycopg)://", v):
            raise ValueError(
                "sqlite+aiosqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DB"
            )
        return v


class StorageConfig(Section):
    """What the store writer persists, how it batches, how long market data is kept."""

    trades: bool = Field(default=False, description="persist every public trade (heavy)")
    book_sample_s: float = Field(default=1.0, gt=0, description="book top sampling period")
    retention_days: float = Field(default=30, gt=0, description="market data kept this long")
    batch_size: int = Field(default=1000, ge=1, description="rows per write transaction")
    batch_max_age_s: float = Field(default=1.0, gt=0, description="flush a partial batch after")
    market_batch_size: int = Field(
        default=5000, ge=1, description="market rows (trades, book tops) per write transaction"
    )
    market_buffer: int = Field(default=100_000, ge=1, description="market rows kept in memory")
    retry_max_s: float = Field(default=30.0, gt=0, description="cap of the write retry backoff")
    retention_interval_s: float = Field(
        default=3600.0, gt=0, description="how often old market data is deleted"
    )
    retention_batch: int = Field(default=10_000, ge=1, description="rows deleted per statement")


# --------------------------------------------------------------------------- api


Scope = Literal["read", "trade", "admin"]
_DEFAULT_SCOPES: tuple[Scope, ...] = ("read",)
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class TokenConfig(Section):
    """One API bearer token: its name (for logs and audit), the secret or its SHA-256, scopes."""

    name: str = Field(min_length=1, description="who holds the token (shown in logs/audit)")
    token: SecretStr | None = Field(default=None, description="the bearer token itself")
    token_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the token"
    )
    scopes: list[Scope] = Field(
        default_factory=lambda: list(_DEFAULT_SCOPES), description="read | trade | admin"
    )
    rate_limit_per_s: float | None = Field(
        default=None, gt=0, description="requests/s for this token; None = api.rate_limit_per_s"
    )
    rate_limit_burst: int | None = Field(
        default=None, ge=1, description="burst for this token; None = api.rate_limit_burst"
    )

    @model_validator(mode="after")
    def _one_of(self) -> TokenConfig:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("exactly one of token, token_file or token_sha256")
        if self.token is not None and len(self.token.get_secret_value()) < 12:
            raise ValueError("a token of at least 12 characters")
        return self


class ApiConfig(Section):
    """The REST + WebSocket API server."""

    enabled: bool = Field(default=True, description="serve the API")
    host: str = Field(default="127.0.0.1", min_length=1, description="bind address")
    port: int = Field(default=8080, ge=0, le=65535, description="0 = any free port")
    tokens: list[TokenConfig] = Field(default_factory=list, description="bearer tokens")
    public_read: bool = Field(default=False, description="reads allowed without a token")
    cors_origins: list[str] = Field(default_factory=list, description="allowed CORS origins")
    cors_allow_credentials: bool = Field(
        default=False, description="send Access-Control-Allow-Credentials (never with '*')"
    )
    rate_limit_per_s: float = Field(default=20.0, gt=0, description="per token (or client IP)")
    rate_limit_burst: int = Field(default=40, ge=1, description="requests allowed at once")
    auth_fail_limit: int = Field(
        default=10, ge=1, description="failed authentications per client IP per window"
    )
    auth_fail_window_s: float = Field(default=60.0, gt=0, description="failed-auth window")
    max_body_bytes: int = Field(default=65_536, ge=1024, le=16_777_216, description="413 above")
    max_page_size: int = Field(default=500, ge=1, le=10_000, description="max 'limit' per page")
    cache_ttl_s: float = Field(
        default=0.5, ge=0, le=60, description="read response cache lifetime; 0 = off"
    )
    cache_entries: int = Field(default=256, ge=1, description="read response cache bound")
    ws_max_clients: int = Field(default=100, ge=1, description="concurrent WebSocket clients")
    ws_queue_size: int = Field(default=1000, ge=1, description="events queued per client")
    ws_channel_queue_size: int = Field(
        default=10_000, ge=1, description="events queued per channel before the fan-out"
    )
    ws_send_timeout_s: float = Field(
        default=5.0, gt=0, description="a send stuck this long disconnects the client"
    )
    ws_heartbeat_s: float = Field(default=30.0, gt=0, description="WebSocket ping interval")
    request_timeout_s: float = Field(
        default=15.0, gt=0, le=600, description="a request taking longer answers 503"
    )
    shutdown_timeout_s: float = Field(default=5.0, gt=0, description="grace for open requests")
    tls_cert_file: Path | None = Field(
        default=None, description="PEM certificate (chain): serve HTTPS and WSS; with tls_key_file"
    )
    tls_key_file: Path | None = Field(default=None, description="PEM private key of tls_cert_file")

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for origin in v:
            if origin != "*" and not re.match(r"^https?://[^/\s]+$", origin):
                raise ValueError(f"origins like https://dash.example.com (no path), not {origin!r}")
        return v

    @model_validator(mode="after")
    def _check(self) -> ApiConfig:
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError("cors_origins '*' cannot be combined with cors_allow_credentials")
        names = [t.name for t in self.tokens]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"unique token names; repeated: {', '.join(sorted(dup))}")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: give both or neither")
        if self.enabled and not self.tokens and not self.is_loopback:
            raise ValueError(
                f"host {self.host!r} is not a loopback address: configure api.tokens "
                "(or bind 127.0.0.1)"
            )
        return self

    @property
    def is_loopback(self) -> bool:
        """True when ``host`` only accepts connections from this machine."""
        return self.host in _LOOPBACK_HOSTS or self.host.startswith("127.")


# --------------------------------------------------------------------------- logging


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["auto", "console", "json"] = "auto"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


# --------------------------------------------------------------------------- root


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        case_sensitive=False,
    )

    exchanges: list[ExchangeConfig] = Field(default_factory=list)
    anomaly_detection: AnomalyDetectionConfig = Field(default_factory=AnomalyDetectionConfig)
    trading: TradingConfig = Field(default_factory=TradingConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first: it wins over the YAML document, which arrives as init kwargs.
        return (env_settings, init_settings)

    def secret_values(self) -> list[str]:
        """Every secret string in this config, for the log redaction processor."""
        found: list[str] = []

        def walk(obj: Any) -> None:
            if isinstance(obj, SecretStr):
                val = obj.get_secret_value()
                if val:
                    found.append(val)
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
        pw = _url_password(self.database.url)
        if pw:
            found.append(pw)
        return found

    def redacted(self) -> dict[str, Any]:
        """The effective configuration as plain data with every secret replaced by ``***``."""
        from cryptomon.log import redact_url

        data = self.model_dump(mode="json")

        def walk(model: Any, obj: Any) -> Any:
            if isinstance(model, SecretStr):
                return "***"
            if isinstance(model, BaseModel) and isinstance(obj, dict):
                return {k: walk(getattr(model, k), v) for k, v in obj.items()}
            if isinstance(model, list) and isinstance(obj, list):
                return [walk(m, o) for m, o in zip(model, obj, strict=True)]
            return obj

        out = walk(self, data)
        out["database"]["url"] = redact_url(self.database.url)
        return out


def _url_password(url: str) -> str | None:
    m = re.match(r"^[a-z0-9+.-]+://[^:/@]+:([^@]+)@", url, re.IGNORECASE)
    return m.group(1) if m else None


# --------------------------------------------------------------------------- loading


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse the YAML config file; every failure is a ConfigError naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(str(p), None, "an existing YAML config file")]) from None
    except OSError as exc:
        raise ConfigError([Problem(str(p), None, f"a readable file ({exc.strerror})")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([Problem(where, None, f"valid YAML ({problem})")]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([Problem(str(p), data, "a YAML mapping of sections at the top level")])
    return data


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    data: dict[str, Any] | None = None,
) -> Settings:
    """Build :class:`Settings` from a YAML file (and/or a dict) plus ``CRYPTOMON_*`` env vars
    (which win).

    Raises :class:`ConfigError` with one :class:`Problem` per invalid key.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_yaml(path)
    if data is not None:
        raw = {**raw, **data}
    try:
        return Settings(**raw)
    except ValidationError as exc:
        raise ConfigError(problems_from(exc)) from None


def problems_from(exc: ValidationError) -> list[Problem]:
    """One Problem per pydantic error: dotted key path, offending value, what was expected."""
    out: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err.get("loc", ())]
        path = ".".join(loc) or "config"
        kind = err.get("type", "")
        value = err.get("input")
        msg = str(err.get("msg", ""))
        if kind == "extra_forbidden":
            allowed = _allowed_keys(err.get("loc", ())[:-1])
            expected = "no such key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
        elif kind == "missing":
            expected = "a value (this key is required)"
            value = None
        else:
            expected = _expected(msg)
        if isinstance(value, dict | list) and len(repr(value)) > 80:
            value = f"<{type(value).__name__}>"
        if _looks_secret(loc):
            value = "***"
        out.append(Problem(path, value, expected))
    return out


def _looks_secret(loc: list[str]) -> bool:
    return any(p in {"url", "token", "api_key", "secret", "password"} for p in loc[-1:])


def _expected(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    for prefix in ("Input should be ", "String should "):
        if msg.startswith(prefix):
            rest = msg[len(prefix) :]
            return rest if prefix == "Input should be " else "a string that should " + rest
    return msg[:1].lower() + msg[1:]


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        model = _model_in(field.annotation)
        if model is None:
            return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(model.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None or get_args(annotation):
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
