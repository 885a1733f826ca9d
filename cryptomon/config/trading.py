"""The ``trading`` section: signal rules, indicator strategy, risk limits and brokers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from cryptomon.config.base import (
    Section,
    SeverityName,
    check_finite,
    check_http_url,
    check_proxy,
    normalize_symbol,
)
from cryptomon.config.signals import GradeThresholds, WebhookConfig
from cryptomon.kinds import AnomalyKind

OFFLINE = "offline"
"""Validation context key: the settings of a command that never reaches the venue (no keys
needed for ``trading.mode: live``)."""


class SignalRuleConfig(Section):
    """Maps anomalies to a signal: ``momentum`` trades with the price move, ``reversion``
    against it. Conditions not set are not checked."""

    name: str = Field(min_length=1, description="rule name, shown as the signal source")
    style: Literal["momentum", "reversion"] = Field(default="momentum", description="direction")
    kinds: list[AnomalyKind] = Field(
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
        default=None, ge=0, le=1, description="fixed strength; None = anomaly confidence / 100"
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
    """RSI / MACD / Bollinger / SMA / EMA on closed candles of ``interval``, scored the way
    the specification says (``spec``) or by the trend/oscillator vote (``votes``)."""

    enabled: bool = Field(default=True, description="emit indicator signals")
    interval: str = Field(default="1m", min_length=1, description="candle interval used")
    scoring: Literal["spec", "votes"] = Field(
        default="spec", description="spec = buy/sell scores; votes = trend/oscillator vote"
    )
    min_candles: int = Field(
        default=200,
        ge=2,
        le=100_000,
        description="spec: closes before it scores (<= max_candles)",
    )
    near_band_fraction: float = Field(
        default=0.1, ge=0, le=1, description="spec: 'near a band' = within this x band width"
    )
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
    max_candles: int = Field(
        default=500, ge=60, le=100_000, description="history used; caps min_candles"
    )
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
    # below 1e15: equity rows hold less than 1e18 (NUMERIC(36, 18)), with room for gains
    starting_balance: float = Field(default=10_000.0, gt=0, lt=1e15, description="quote currency")
    taker_fee: float = Field(default=0.001, ge=0, lt=0.1, description="fraction, 0.001 = 0.1%")
    maker_fee: float = Field(default=0.001, ge=0, lt=0.1, description="fraction")
    tick_size: float = Field(default=0.01, gt=0, description="price increment")
    lot_size: float = Field(default=0.00001, gt=0, description="amount increment")
    min_notional: float = Field(default=5.0, ge=0, description="smallest order, quote")
    balances: dict[str, float] = Field(
        default_factory=dict,
        description="extra starting balances per currency (coin-margined contracts settle "
        "in the coin: {BTC: 0.5})",
    )
    mid_max_spread: float = Field(
        default=0.02,
        gt=0,
        le=1,
        description="book-mid liquidation (contract markets without mark or trades): a book "
        "top whose spread is wider than this fraction of its mid is skipped",
    )
    mid_confirm_ms: int = Field(
        default=1_000,
        ge=0,
        le=600_000,
        description="book-mid liquidation: the mid must stay past the liquidation price on "
        "every top for this long (event time) before the position is closed",
    )


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
    max_clock_skew_ms: int = Field(
        default=1_000, ge=1, le=600_000, description="alert when the venue's clock is further off"
    )
    options: dict[str, Any] = Field(default_factory=dict, description="extra ccxt options")
    proxy: SecretStr | None = Field(
        default=None, description="HTTP or SOCKS proxy for every request to the venue"
    )
    native_stop_loss: bool = Field(
        default=True, description="place SL/TP on the venue when it supports it"
    )

    @field_validator("exchange")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.strip().lower()

    @field_validator("options")
    @classmethod
    def _finite_options(cls, v: dict[str, Any]) -> dict[str, Any]:
        check_finite(v, "options")
        return v

    _proxy = field_validator("proxy")(check_proxy)
    _url = field_validator("url")(check_http_url)


MarginMode = Literal["isolated", "cross"]


class SymbolOverrideConfig(Section):
    """Per-symbol contract settings (``trading.overrides: {BTC-USDT-PERP: {leverage: 5}}``);
    unset keys fall back to the ``trading`` section's."""

    leverage: float | None = Field(default=None, ge=1, le=125, description="contract leverage")
    margin_mode: MarginMode | None = Field(default=None, description="isolated or cross")
    maintenance_margin_rate: float | None = Field(
        default=None, ge=0, lt=1, description="mmr used when the venue's brackets are unknown"
    )


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
    # at most 100x away: a bracket price past 1e18 is no order row (NUMERIC(36, 18))
    take_profit_percentage: float = Field(
        default=6.0, gt=0, le=10_000, description="take-profit distance from the entry, %"
    )
    trailing_stop_percentage: float | None = Field(
        default=None, gt=0, lt=100, description="trail the stop this % behind the best price"
    )
    trailing_stop_save_interval_s: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="a trailed stop is saved at most once per this many seconds per position "
        "(once it moved a tick or more; always at stop)",
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
    leverage: float = Field(
        default=1.0, ge=1, le=125, description="leverage of perpetual/future positions"
    )
    margin_mode: MarginMode = Field(default="isolated", description="isolated or cross margin")
    maintenance_margin_rate: float = Field(
        default=0.005, ge=0, lt=1, description="mmr when the venue's brackets are unknown"
    )
    overrides: dict[str, SymbolOverrideConfig] = Field(
        default_factory=dict, description="per-symbol leverage / margin_mode / mmr"
    )
    min_signal_strength: float = Field(
        default=0.65, ge=0, le=1, description="weaker signals are stored, never traded"
    )
    max_signal_age_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="a signal whose event time is older than this is not traded (a brain "
        "catching up on the bus after a restart, a late candle); 0 = no limit",
    )
    grades: GradeThresholds = Field(
        default_factory=GradeThresholds, description="strength thresholds of the signal grades"
    )
    webhooks: list[WebhookConfig] = Field(
        default_factory=list, description="external signal senders (TradingView alerts, ...)"
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

    @field_validator("webhooks")
    @classmethod
    def _unique_webhooks(cls, v: list[WebhookConfig]) -> list[WebhookConfig]:
        names = [w.name for w in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"each webhook name once; repeated: {', '.join(dup)}")
        return v

    @field_validator("overrides")
    @classmethod
    def _override_symbols(
        cls, v: dict[str, SymbolOverrideConfig]
    ) -> dict[str, SymbolOverrideConfig]:
        return {normalize_symbol(k): o for k, o in v.items()}

    def leverage_for(self, symbol: str) -> float:
        """The leverage of ``symbol``: its override, else ``leverage``."""
        override = self.overrides.get(symbol)
        return self.leverage if override is None or override.leverage is None else override.leverage

    def margin_mode_for(self, symbol: str) -> MarginMode:
        """The margin mode of ``symbol``: its override, else ``margin_mode``."""
        override = self.overrides.get(symbol)
        if override is None or override.margin_mode is None:
            return self.margin_mode
        return override.margin_mode

    def mmr_for(self, symbol: str) -> float:
        """The fallback maintenance margin rate of ``symbol``."""
        override = self.overrides.get(symbol)
        if override is None or override.maintenance_margin_rate is None:
            return self.maintenance_margin_rate
        return override.maintenance_margin_rate

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> TradingConfig:
        if self.max_symbol_exposure > self.max_total_exposure:
            raise ValueError(
                f"max_symbol_exposure ({self.max_symbol_exposure}) <= max_total_exposure "
                f"({self.max_total_exposure})"
            )
        for name, lev in [("leverage", self.leverage)] + [
            (f"overrides.{k}.leverage", o.leverage)
            for k, o in self.overrides.items()
            if o.leverage is not None
        ]:
            if lev > self.max_leverage:
                raise ValueError(
                    f"{name} ({lev}) <= max_leverage ({self.max_leverage}), the account-wide cap"
                )
        if self.allow_short and self.take_profit_percentage >= 100:
            raise ValueError(
                f"take_profit_percentage ({self.take_profit_percentage}) < 100 with allow_short: "
                "a short's take-profit that far below its entry is at or below a price of 0"
            )
        # a command that never reaches the venue (``trades``, ``db``) loads the config of a
        # live daemon from a shell without its keys (context ``offline``)
        offline = isinstance(info.context, dict) and info.context.get(OFFLINE) is True
        keyless = self.live.api_key is None or self.live.secret is None
        if self.mode == "live" and keyless and not offline:
            raise ValueError("mode: live needs live.api_key and live.secret (or *_file)")
        return self
