"""Request and response models of the signal endpoints: history, statistics, webhooks."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cryptomon.api.models import MarketWindow, Out, PagedMarketWindow, reject_nul
from cryptomon.api.models_trading import DecimalStr
from cryptomon.kinds import SignalGrade

_NAME = r"^[A-Za-z0-9_.:-]{1,64}$"
GradeName = Literal["strong", "medium", "weak", "ignore"]
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


class SignalQuery(PagedMarketWindow):
    source: str | None = Field(
        default=None, pattern=_NAME, description="indicators, rule:<name>, webhook:<name>"
    )
    side: Literal["buy", "sell"] | None = None
    grade: GradeName | None = None


class SignalStatsQuery(MarketWindow):
    pass


class SignalOut(Out):
    id: str
    exchange: str
    symbol: str
    ts: float
    side: str
    strength: float
    grade: GradeName | None = Field(description="null for signals stored before grading")
    source: str
    reason: str
    price: float | None
    anomaly_id: str | None


class SignalPage(Out):
    items: list[SignalOut]
    next_cursor: str | None = Field(description="pass back as cursor; null on the last page")


class SourceOutcome(Out):
    traded: int = Field(description="signals of this source that became an order")
    decided: int = Field(description="of those, positions closed since")
    wins: int
    win_rate: float | None = Field(description="wins / decided; null before any is decided")
    realized_pnl: DecimalStr = Field(description="quote currency, fees included")


class SignalStatsOut(Out):
    total: int
    by_source: dict[str, int]
    by_grade: dict[str, int]
    traded: int
    share_traded: float
    by_source_traded: dict[str, SourceOutcome]


class WebhookSignal(BaseModel):
    """A webhook call: TradingView's alert message (JSON, sent as text/plain) or any JSON.

    Unknown fields are errors naming the field (a typo of ``stop_loss`` must not pass
    silently); numbers may be written as JSON numbers or strings (TradingView placeholders)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, allow_inf_nan=False)

    secret: str | None = Field(
        default=None, max_length=256, description="the webhook's secret (or ?token=)"
    )
    symbol: str = Field(min_length=3, max_length=40, description="BTC-USDT, BTC/USDT or BTCUSDT")
    side: Literal["buy", "sell"] = Field(description="buy or sell (case-insensitive)")
    exchange: str | None = Field(default=None, pattern=_NAME, description="default: configured")
    strength: float | None = Field(default=None, ge=0, le=1, description="0..1")
    grade: SignalGrade | None = Field(default=None, description="when no strength is given")
    # below 1e18, as a manual order's prices: an order row holds no more (NUMERIC(36, 18))
    price: float | None = Field(default=None, gt=0, lt=1e18, description="the sender's price")
    stop_loss: float | None = Field(default=None, gt=0, lt=1e18, description="stop-loss price")
    take_profit: float | None = Field(default=None, gt=0, lt=1e18, description="take-profit price")
    alert_id: str | None = Field(
        default=None, min_length=1, max_length=128, description="idempotency key of the alert"
    )
    comment: str = Field(default="", max_length=500, description="shown as the signal reason")

    @field_validator("side", "exchange", "grade", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("strength", "price", "stop_loss", "take_profit", mode="before")
    @classmethod
    def _number(cls, v: Any) -> Any:
        """A JSON number or a decimal number as a string (TradingView's placeholders); lax
        float parsing took ``true`` as 1.0 (a strength of 1: a strong signal) and ``"1_0"``
        as 10."""
        if isinstance(v, bool) or (isinstance(v, str) and not _DECIMAL.fullmatch(v.strip())):
            raise ValueError(f'a number such as 0.7 or "0.7", not {v!r}')
        return v

    @model_validator(mode="after")
    def _no_nul(self) -> WebhookSignal:
        reject_nul(self.__dict__)
        return self


class WebhookOut(Out):
    status: Literal["accepted", "duplicate"] = Field(
        description="duplicate: this alert_id was accepted before (no second signal)"
    )
    signal_id: str
    exchange: str | None = None
    symbol: str | None = None
    side: str | None = None
    strength: float | None = None
    grade: GradeName | None = None
