"""Request and response models (pydantic) of the API: the handlers validate and serialize
with them and ``openapi.py`` documents them, so code and document cannot drift.

Trading and alerts models live in ``models_trading.py``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cryptomon.config import normalize_symbol
from cryptomon.kinds import AnomalyKind

SeverityName = Literal["low", "medium", "high", "critical"]
NAME_MAX_LENGTH = 64  # an exchange (or other) name: what _NAME allows
_NAME = r"^[A-Za-z0-9_.:-]{1,64}$"
SYMBOL_MAX_LENGTH = 40  # a symbol field's max_length
SYMBOL_PATTERN = r"^[A-Za-z0-9]+([-/][A-Za-z0-9]+)+$"
"""What ``normalize_symbol`` accepts (documented in OpenAPI): BTC-USDT, btc/usdt, BTC-USD-PERP."""
INTERVAL_PATTERN = r"^[0-9]{1,3}[smhdw]$"
CANDLE_INTERVALS = (
    "1s",
    "1m",
    "3m",
    "5m",
    "15m",
    "30m",
    "1h",
    "2h",
    "4h",
    "6h",
    "8h",
    "12h",
    "1d",
    "3d",
    "1w",
)
"""The candle intervals any venue serves (cryptofeed's, bar the month): what can be stored."""
# an order id as venues and this engine spell them: printable ASCII, no space, at most 64
# (the orders and fills columns' width)
ORDER_ID_PATTERN = r"^[!-~]{1,64}$"
PATTERN_WORDS = {
    SYMBOL_PATTERN: "a market symbol such as BTC-USDT or BTC/USDT",
    _NAME: "letters, digits and _ . : - only, at most 64 (such as binance)",
    INTERVAL_PATTERN: "an interval such as 1m, 5m or 1h",
    ORDER_ID_PATTERN: "printable characters without spaces, at most 64",
}
"""The form a value of each pattern takes, in words: a refused value's 422 says this, not the
regular expression."""
MAX_EPOCH = 32_503_680_000.0  # year 3000: larger times are input errors, not dates


def _has_nul(item: Any) -> bool:
    if isinstance(item, str):
        return "\x00" in item
    if isinstance(item, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in item.items())
    if isinstance(item, list | tuple):
        return any(_has_nul(v) for v in item)
    return False


def reject_nul(fields: dict[str, Any]) -> None:
    """Refuse NUL characters in any field (no store or venue accepts them), naming the field."""
    for name, value in fields.items():
        if _has_nul(value):
            raise ValueError(f"{name}: text must not contain NUL characters (\\u0000)")


class Query(BaseModel):
    """Base of query-string models: unknown parameters are errors (they are usually typos);
    numbers are finite; NUL characters are refused."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if isinstance(data, dict):
            reject_nul(data)
        return data

    @field_validator("since", "until", mode="before", check_fields=False)
    @classmethod
    def _epoch_seconds(cls, value: Any) -> Any:
        # a date here is the usual mistake: say the unit instead of "a valid number"
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                raise ValueError(
                    f"expected epoch seconds (a number such as 1767225600), got {value!r}"
                ) from None
        return value


class Out(BaseModel):
    """Base of response models: read from dicts or attribute objects alike."""

    model_config = ConfigDict(from_attributes=True)


# --------------------------------------------------------------------------- errors / system


class ErrorBody(BaseModel):
    code: str = Field(description="machine-readable error code, e.g. validation_error")
    message: str = Field(description="what was wrong and what was expected")
    details: Any = Field(default=None, description="e.g. the offending fields")
    request_id: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(Out):
    status: Literal["ok"] = "ok"


class Check(Out):
    ok: bool
    detail: str = ""


class Ready(Out):
    ready: bool
    checks: dict[str, Check]


class Status(Out):
    version: str
    uptime_s: float
    components: dict[str, str]
    hub: dict[str, Any]
    feeds: dict[str, Any] | None = None
    websocket: dict[str, Any]
    store: dict[str, Any] | None = Field(
        default=None,
        description="the store writer's counters, with the database's last error "
        "(last_error) and how long writes have been failing (outage_s); /ready, open to "
        "anyone, says only that they fail",
    )


class Feeds(Out):
    feeds: dict[str, Any] = Field(description="health per exchange and channel")


# --------------------------------------------------------------------------- market


class MarketNames(BaseModel):
    """Mixed into a model with ``exchange`` and/or ``symbol`` fields: the exchange in lower
    case, the symbol in cryptofeed's form (BTC/USDT -> BTC-USDT)."""

    @field_validator("exchange", check_fields=False)
    @classmethod
    def _lower(cls, v: str | None) -> str | None:
        return None if v is None else v.lower()

    @field_validator("symbol", check_fields=False)
    @classmethod
    def _symbol(cls, v: str | None) -> str | None:
        return None if v is None else normalize_symbol(v)


class MarketQuery(Query, MarketNames):
    exchange: str = Field(pattern=_NAME, description="e.g. binance")
    symbol: str = Field(
        min_length=3, max_length=40, pattern=SYMBOL_PATTERN, description="BTC-USDT or BTC/USDT"
    )


class OrderbookQuery(MarketQuery):
    depth: int = Field(default=10, ge=1, le=1000, description="levels per side")


class TradesQuery(MarketQuery):
    limit: int = Field(default=100, ge=1, le=1000)


class HistoryQuery(MarketQuery):
    interval: str = Field(default="1m", pattern=INTERVAL_PATTERN, description="e.g. 1m")
    since: float | None = Field(default=None, ge=0, le=MAX_EPOCH, description="epoch seconds")
    until: float | None = Field(default=None, ge=0, le=MAX_EPOCH, description="epoch seconds")
    limit: int = Field(default=500, ge=1, le=5000)

    @field_validator("interval")
    @classmethod
    def _served(cls, value: str) -> str:
        if value not in CANDLE_INTERVALS:  # "7m" matched the form and found nothing, a 200
            raise ValueError(f"an interval exchanges serve: one of {', '.join(CANDLE_INTERVALS)}")
        return value

    @model_validator(mode="after")
    def _range(self) -> HistoryQuery:
        if self.since is not None and self.until is not None and self.until < self.since:
            raise ValueError("until: must not be before since")
        return self


class StatsQuery(Query):
    exchange: str | None = Field(default=None, pattern=_NAME)


class TickerOut(Out):
    exchange: str
    symbol: str
    ts: float
    bid: float
    ask: float
    last: float | None = None
    stale: bool = False


class BookTopOut(Out):
    ts: float
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    spread: float
    spread_bps: float
    bid_depth: float
    ask_depth: float
    imbalance: float
    levels: int
    bid_contracts: float | None = Field(
        default=None,
        description="the venue's quantity (contracts) at the best bid, beside bid_size in base "
        "units; null on spot and where the instrument spec is unknown",
    )
    ask_contracts: float | None = Field(
        default=None, description="the venue's quantity (contracts) at the best ask"
    )


class OrderbookOut(Out):
    exchange: str
    symbol: str
    ts: float | None = None
    bids: list[tuple[float, float]] = Field(
        description="[price, size in base units (a derivative's contracts converted by its "
        "instrument spec, as the top's sizes)], best first"
    )
    asks: list[tuple[float, float]]
    contract_bids: list[tuple[float, float]] = Field(
        default_factory=list,
        description="the same levels as bids in the venue's quantity (contracts) where it "
        "differs from base units; empty on spot and where the instrument spec is unknown",
    )
    contract_asks: list[tuple[float, float]] = Field(
        default_factory=list, description="the same levels as asks in contracts"
    )
    top: BookTopOut | None = None
    stale: bool = False


class TradeOut(Out):
    ts: float
    price: float
    amount: float
    side: Literal["buy", "sell"]
    trade_id: str | None = None
    contracts: float | None = Field(
        default=None,
        description="the venue's quantity (contracts) beside amount in base units; null on "
        "spot and where the instrument spec is unknown",
    )


class TradesOut(Out):
    exchange: str
    symbol: str
    trades: list[TradeOut] = Field(description="newest last")


class CandleOut(Out):
    open_time: float = Field(description="epoch seconds")
    close_time: float | None = None
    open: float
    high: float
    low: float
    close: float
    volume: float
    trade_count: int | None = None
    buy_volume: float | None = None
    sell_volume: float | None = None
    closed: bool = True
    source: str | None = Field(default=None, description="exchange or aggregated trades")


class HistoryOut(Out):
    exchange: str
    symbol: str
    interval: str
    candles: list[CandleOut]


class MarketSummary(Out):
    exchange: str
    symbol: str
    mid: float | None = None
    bid: float | None = None
    ask: float | None = None
    spread_bps: float | None = None
    last: float | None = None
    last_trade_ts: float | None = None
    recent_trades: int = 0
    stale: bool = False


class MarketStatsOut(Out):
    markets: list[MarketSummary]


# --------------------------------------------------------------------------- anomalies


class MarketWindow(Query, MarketNames):
    """The filters the list routes share: one exchange and symbol, a time window."""

    exchange: str | None = Field(default=None, pattern=_NAME)
    symbol: str | None = Field(default=None, min_length=3, max_length=40, pattern=SYMBOL_PATTERN)
    since: float | None = Field(
        default=None, ge=0, le=MAX_EPOCH, description="epoch seconds (ts >= since)"
    )
    until: float | None = Field(
        default=None, ge=0, le=MAX_EPOCH, description="epoch seconds (ts <= until)"
    )

    @model_validator(mode="after")
    def _range(self) -> MarketWindow:
        if self.since is not None and self.until is not None and self.until < self.since:
            raise ValueError("until: must not be before since")
        return self


class PagedMarketWindow(MarketWindow):
    """A list route's filters with its page size and cursor."""

    limit: int = Field(default=50, ge=1, le=10_000, description="<= api.max_page_size")
    cursor: str | None = Field(
        default=None, max_length=256, description="next_cursor of the previous page"
    )


class AnomalyQuery(PagedMarketWindow):
    # the detectors' kinds: a misspelt one is an error, not an empty page
    kind: AnomalyKind | None = None
    min_severity: SeverityName | None = None
    until: float | None = Field(
        default=None, ge=0, le=MAX_EPOCH, description="epoch seconds (ts < until)"
    )


class AnomalyStatsQuery(Query):
    since: float | None = Field(default=None, ge=0, le=MAX_EPOCH, description="epoch seconds")
    until: float | None = Field(default=None, ge=0, le=MAX_EPOCH, description="epoch seconds")


class AnomalyOut(Out):
    id: str
    exchange: str
    symbol: str
    kind: str
    severity: str
    ts: float
    ts_detected: float | None = None
    value: float | None = None
    threshold: float | None = None
    confidence: float | None = None
    z_score: float | None = None
    price_change_pct: float | None = None
    reasons: list[str] = Field(default_factory=list)
    window_mean: float | None = None
    window_std: float | None = None
    samples: int | None = None


class AnomalyPage(Out):
    items: list[AnomalyOut]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null at end")


class AnomalyStatsOut(Out):
    model_config = ConfigDict(from_attributes=True, extra="allow")

    total: int = 0
    by_kind: dict[str, int] = Field(default_factory=dict)
    by_severity: dict[str, int] = Field(default_factory=dict)
    by_symbol: dict[str, int] = Field(default_factory=dict)
