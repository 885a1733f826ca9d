"""Request and response models of the routes the dashboard reads (``rest/dashboard.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from cryptomon.api.models import ORDER_ID_PATTERN, SYMBOL_PATTERN, Out, Query
from cryptomon.api.models_trading import DecimalStr
from cryptomon.config import normalize_symbol

EXCHANGE_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


class OverviewQuery(Query):
    exchange: str | None = Field(
        default=None, pattern=EXCHANGE_PATTERN, description="only this exchange"
    )
    lookback_s: float = Field(
        default=3600.0, ge=60, le=7 * 86400, description="window of change and volume (s)"
    )


class MarketRow(Out):
    exchange: str
    symbol: str
    last: float | None = Field(default=None, description="last trade (or mid) price")
    change_pct: float | None = Field(default=None, description="change over the lookback, %")
    volume: float | None = Field(default=None, description="base volume over the lookback")
    spread_bps: float | None = None
    imbalance: float | None = Field(default=None, description="book imbalance, -1..1")
    stale: bool
    feed_state: str | None = Field(default=None, description="the exchange feed's state")
    state: Literal["live", "stale", "delisted"] = Field(
        default="live",
        description="this market's feed: delisted (for good), stale (silent or its exchange "
        "feed down) or live",
    )
    quarantined: int = Field(
        default=0, description="trades quarantined as bad prints since the feed started"
    )
    anomalies: dict[str, int] = Field(description="anomalies in the last hour by severity")


class OverviewOut(Out):
    lookback_s: float
    markets: list[MarketRow]


class SymbolQuery(Query):
    symbol: str | None = Field(
        default=None, min_length=3, max_length=40, pattern=SYMBOL_PATTERN, description="BTC-USDT"
    )
    limit: int = Field(default=200, ge=1, le=1000)

    @field_validator("symbol")
    @classmethod
    def _norm(cls, v: str | None) -> str | None:
        return None if v is None else normalize_symbol(v)


class FillsQuery(SymbolQuery):
    client_order_id: str | None = Field(
        default=None, pattern=ORDER_ID_PATTERN, description="only the fills of this order"
    )


class FillOut(Out):
    exchange: str
    symbol: str
    trade_id: str
    client_order_id: str = Field(
        description="the order this fill executes (GET /api/v1/trading/orders)"
    )
    exchange_order_id: str | None = Field(
        default=None,
        description="the venue's id of that order: the fill's own, else the one its order "
        "learned (a venue may report a fill before, or without, its order's id); null when "
        "neither is known",
    )
    side: str
    amount: DecimalStr
    price: DecimalStr
    fee: DecimalStr
    fee_currency: str = ""
    liquidity: str = ""
    ts: float


class FillsOut(Out):
    fills: list[FillOut] = Field(description="newest first")


class EquityQuery(Query):
    limit: int = Field(default=1000, ge=1, le=5000)


class EquityPoint(Out):
    ts: float
    equity: DecimalStr
    cash: DecimalStr
    realized_pnl: DecimalStr
    unrealized_pnl: DecimalStr
    exposure: DecimalStr
    drawdown_pct: float = Field(description="below the running peak, % (0 at a new peak)")


class EquityOut(Out):
    points: list[EquityPoint] = Field(description="oldest first")
    max_drawdown_pct: float


class LevelOut(Out):
    exchange: str
    symbol: str
    side: str = Field(description="side of the entry order")
    amount: DecimalStr = Field(description="open position amount (signed)")
    entry: DecimalStr | None = None
    stop_loss: DecimalStr | None = None
    take_profit: DecimalStr | None = None
    client_order_id: str | None = Field(default=None, description="the entry order")


class LevelsOut(Out):
    levels: list[LevelOut]


class ResourcesOut(Out):
    model_config = Out.model_config | {"extra": "allow"}

    ts: float
    cpu_seconds: float
    cpu_percent: float
    rss_bytes: float
    open_files: float | None = None
    data_dir: str
    disk_free_bytes: float | None = None
    disk_total_bytes: float | None = None
    loop_lag_s: float = 0.0
    thresholds: dict[str, float] = Field(default_factory=dict)
    crossed: list[str] = Field(default_factory=list)
    alerts: int = 0


class SessionOut(Out):
    name: str = Field(description="the token's name, or 'anonymous' (api.public_read)")
    scopes: list[str] = Field(description="read | trade | admin")
    anonymous: bool
    public_read: bool = Field(description="market data and anomalies readable without a token")
