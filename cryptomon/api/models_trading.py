"""Request and response models of the trading and alerts endpoints."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cryptomon.api.models import (
    SYMBOL_PATTERN,
    MarketNames,
    Out,
    PagedMarketWindow,
    Query,
    SeverityName,
    reject_nul,
)
from cryptomon.config import TradingConfig, normalize_symbol
from cryptomon.kinds import NotificationEventType

_NAME = r"^[A-Za-z0-9_.:-]{1,64}$"


def _as_str(v: Any) -> Any:
    return None if v is None else str(v)


DecimalStr = Annotated[str, BeforeValidator(_as_str)]
"""A Decimal amount serialized as a string (exact money, no float rounding)."""


class Body(BaseModel):
    """Base of request bodies (validated from the JSON text): unknown fields are errors naming
    the field; types are strict (``0`` is not a boolean, ``true`` not a number); numbers are
    finite (``1e999`` parses as infinity and is refused); NUL characters are refused."""

    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, strict=True, allow_inf_nan=False
    )

    @model_validator(mode="after")
    def _no_nul(self) -> Body:
        reject_nul(self.__dict__)  # after: the strict JSON-mode parsing stays in charge
        return self


# --------------------------------------------------------------------------- trading


class RiskConfigOut(Out):
    # a limit is never shown as null: a non-finite one would read "Infinity", not "no limit"
    model_config = ConfigDict(from_attributes=True, ser_json_inf_nan="strings")

    config: dict[str, Any] = Field(description="current risk limits and trading switches")


def _not_null_schema(schema: dict[str, Any]) -> None:
    """The documented schema: only the optional settings (``_NULLABLE``) may be null."""
    for name, prop in schema.get("properties", {}).items():
        if name in _NULLABLE or "anyOf" not in prop:
            continue
        kept = [s for s in prop.pop("anyOf") if s.get("type") != "null"]
        prop.pop("default", None)
        if len(kept) == 1:
            prop.update(kept[0])
        else:
            prop["anyOf"] = kept


class RiskConfigUpdate(Body):
    """A partial update of the risk limits: only the fields given change (validated again by
    the order engine exactly like the config file). null turns an optional setting off and is
    refused for the others."""

    model_config = ConfigDict(**Body.model_config, json_schema_extra=_not_null_schema)

    auto_trading_enabled: bool | None = None
    max_position_size: float | None = Field(default=None, gt=0, description="quote")
    risk_percentage: float | None = Field(default=None, gt=0, le=100)
    stop_loss_percentage: float | None = Field(default=None, gt=0, lt=100)
    take_profit_percentage: float | None = Field(default=None, gt=0, le=10_000)
    trailing_stop_percentage: float | None = Field(default=None, gt=0, lt=100)
    max_open_positions: int | None = Field(default=None, ge=1, le=1000)
    max_symbol_exposure: float | None = Field(default=None, gt=0, description="quote")
    max_total_exposure: float | None = Field(default=None, gt=0, description="quote")
    daily_loss_limit: float | None = Field(default=None, gt=0, description="quote")
    max_orders_per_minute: int | None = Field(default=None, ge=1, le=10_000)
    price_band_percentage: float | None = Field(default=None, gt=0, le=100)
    max_leverage: float | None = Field(default=None, ge=1, le=125)
    allow_short: bool | None = None
    min_signal_strength: float | None = Field(default=None, ge=0, le=1)
    kill_switch_flatten: bool | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _null_clears_only_optional(cls, v: Any, info: ValidationInfo) -> Any:
        # null turns an optional setting off (trailing_stop_percentage); the others always
        # have a value, so null is refused naming the field (it was silently ignored)
        if v is None and info.field_name not in _NULLABLE:
            raise ValueError("a value; this setting cannot be cleared with null")
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> RiskConfigUpdate:
        if not self.changes():
            raise ValueError("at least one risk limit to change")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields given, null included (it clears an optional setting)."""
        return self.model_dump(exclude_unset=True)


# the runtime settings that may be null (off) in TradingConfig
_NULLABLE = frozenset(
    name
    for name in RiskConfigUpdate.model_fields
    if type(None) in get_args(TradingConfig.model_fields[name].annotation)
)


class PositionOut(Out):
    exchange: str
    symbol: str
    amount: DecimalStr = Field(
        description="signed base amount (negative = short); contracts on a perpetual/future"
    )
    avg_price: DecimalStr
    mark_price: DecimalStr | None = None
    notional: DecimalStr | None = None
    realized_pnl: DecimalStr
    unrealized_pnl: DecimalStr
    fees: DecimalStr = "0"
    opened: float | None = None
    updated: float | None = None
    # perpetuals and futures (absent on spot); amounts in the settle currency
    side: Literal["long", "short", "flat"] | None = None
    settle: str | None = Field(default=None, description="currency of PnL, margin, funding")
    contracts: DecimalStr | None = None
    base_amount: DecimalStr | None = None
    leverage: DecimalStr | None = None
    margin_mode: str | None = Field(default=None, description="isolated or cross")
    initial_margin: DecimalStr | None = None
    maintenance_margin: DecimalStr | None = None
    liquidation_price: DecimalStr | None = Field(
        default=None, description="isolated-margin estimate; the venue decides"
    )
    funding: DecimalStr | None = Field(default=None, description="received (+) or paid (-)")
    # the protection as it stands now (absent when the position has none)
    stop_loss: DecimalStr | None = Field(
        default=None, description="current stop: trailed, restored, or the venue leg's price"
    )
    take_profit: DecimalStr | None = None
    trailing_best: DecimalStr | None = Field(
        default=None, description="best price the trailing stop follows (trailing only)"
    )
    stop_at: Literal["book", "venue"] | None = Field(
        default=None, description="book: watched by the engine; venue: a resting stop order"
    )


class PositionsOut(Out):
    positions: list[PositionOut]


class OrderOut(Out):
    client_order_id: str
    exchange: str
    symbol: str
    side: Literal["buy", "sell"]
    type: str
    state: str
    amount: DecimalStr
    filled: DecimalStr = "0"
    price: DecimalStr | None = None
    stop_price: DecimalStr | None = None
    avg_price: DecimalStr | None = None
    fees: DecimalStr | None = None
    origin: str | None = None
    reduce_only: bool = False
    signal_id: str | None = None
    exchange_order_id: str | None = None
    reason: str = ""
    created: float | None = None
    updated: float | None = None


class OrdersOut(Out):
    orders: list[OrderOut] = Field(description="newest first")


class OrdersQuery(Query, MarketNames):
    symbol: str | None = Field(default=None, min_length=3, max_length=40, pattern=SYMBOL_PATTERN)
    open_only: bool = False
    limit: int = Field(default=100, ge=1, le=1000)


class OrderCreate(Body, MarketNames):
    """A manual order; it goes through the same risk checks as automatic ones."""

    exchange: str = Field(pattern=_NAME)
    symbol: str = Field(min_length=3, max_length=40, pattern=SYMBOL_PATTERN)
    side: Literal["buy", "sell"]
    type: Literal["market", "limit"] = "market"
    amount: Decimal = Field(
        gt=0,
        max_digits=30,
        decimal_places=12,
        description="base amount on spot; contracts (the venue's quantity) on a perpetual/future",
    )
    price: Decimal | None = Field(default=None, gt=0, max_digits=30, decimal_places=12)
    stop_loss: Decimal | None = Field(default=None, gt=0, max_digits=30, decimal_places=12)
    take_profit: Decimal | None = Field(default=None, gt=0, max_digits=30, decimal_places=12)
    reduce_only: bool = False

    @model_validator(mode="after")
    def _price(self) -> OrderCreate:
        if self.type == "limit" and self.price is None:
            raise ValueError("price: required for a limit order")
        if self.type == "market" and self.price is not None:
            raise ValueError("price: must be omitted for a market order")
        return self


class KillSwitch(Body):
    action: Literal["engage", "release"] = Field(
        default="engage", description="engage halts trading; release resumes it"
    )
    flatten: bool | None = Field(
        default=None, description="engage: also close every position (default from config)"
    )


class KillSwitchOut(Out):
    state: str = Field(description="risk state after the action: active, reducing, halted")
    canceled: list[str] = Field(default_factory=list, description="orders canceled")
    cancel_pending: list[str] = Field(
        default_factory=list,
        description="orders whose cancel the venue has not confirmed yet (placement still on "
        "its way, or the cancel failed): still open, asked again by the next poll",
    )
    flatten: list[dict[str, Any]] = Field(default_factory=list, description="closing orders")


class TradingStatsOut(Out):
    risk_state: str
    reconciled: bool
    stats: dict[str, Any]


# --------------------------------------------------------------------------- alerts


class ChannelOut(Out):
    model_config = ConfigDict(from_attributes=True, extra="allow")

    name: str
    url: str = Field(description="redacted apprise URL")
    min_severity: str | None = None
    kinds: list[str] | None = None
    exchanges: list[str] | None = None
    symbols: list[str] | None = None


class AlertsConfigOut(Out):
    channels: list[ChannelOut]


_Name = Annotated[str, Field(pattern=_NAME)]
_Symbol = Annotated[str, Field(min_length=3, max_length=40, pattern=SYMBOL_PATTERN)]


class AlertRoutingUpdate(Body):
    """Routing and thresholds of one channel; URLs and names come from the config file only."""

    channel: str = Field(min_length=1, max_length=64)
    min_severity: SeverityName | None = None
    kinds: list[_Name] | None = Field(default=None, max_length=50)
    exchanges: list[_Name] | None = Field(default=None, max_length=50)
    symbols: list[_Symbol] | None = Field(default=None, max_length=200)
    events: list[Literal["anomaly", "trading", "system"]] | None = Field(default=None, min_length=1)
    format: Literal["auto", "markdown", "text"] | None = None
    rate_limit_per_min: float | None = Field(default=None, gt=0, le=6000)
    rate_limit_burst: int | None = Field(default=None, ge=1, le=10_000)
    digest_interval_s: float | None = Field(default=None, gt=0, le=86_400)
    quiet_hours: str | None = Field(
        default=None, pattern=r"^[0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9]$"
    )
    quiet_hours_tz: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [normalize_symbol(s) for s in v]

    @model_validator(mode="after")
    def _not_empty(self) -> AlertRoutingUpdate:
        if not self.changes():
            raise ValueError("at least one routing field to change besides channel")
        return self

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True, exclude={"channel"})


class AlertHistoryQuery(PagedMarketWindow):
    channel: str | None = Field(default=None, min_length=1, max_length=64)
    status: Literal["sent", "failed", "suppressed", "digested"] | None = None
    # a misspelt type is an error, not an empty page
    event_type: NotificationEventType | None = Field(
        default=None, description="what the notification was about; digest: a digest message"
    )


class NotificationOut(Out):
    model_config = ConfigDict(from_attributes=True, extra="allow")

    id: int
    ts: float
    channel: str
    status: str
    title: str
    body: str | None = None
    attempts: int | None = None
    error: str | None = None
    event_type: str | None = None
    ref_id: str | None = None


class NotificationsOut(Out):
    items: list[NotificationOut] = Field(description="newest first")
    next_cursor: str | None = Field(description="pass as cursor for the next page; null at end")


class AlertTest(Body):
    channel: str = Field(min_length=1, max_length=64)


class AlertTestOut(Out):
    channel: str
    ok: bool
    attempts: int = 0
    error: str = ""
