"""The ``exchanges`` section: one entry per market data source."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from cryptomon.config.base import Section, check_http_url, check_proxy, normalize_symbol

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


# a replay speed other than ``max``: a multiple of real time (``replay --speed`` takes the same)
REPLAY_MULTIPLE = r"\d+(\.\d+)?x"


class ExchangeConfig(Section):
    """One market data source: a cryptofeed exchange, the built-in simulator, or a replay."""

    name: str = Field(min_length=1, description="cryptofeed exchange name, or 'simulator'")
    enabled: bool = True
    source: Literal["live", "replay"] = "live"
    files: list[str] = Field(default_factory=list, description="recordings for source: replay")
    replay_speed: str = Field(default="max", pattern=rf"^(max|{REPLAY_MULTIPLE})$")
    symbols: list[str] = Field(default_factory=list)
    subscriptions: list[Subscription] = Field(default_factory=lambda: list(_DEFAULT_SUBS))
    depth: int = Field(default=20, ge=1, le=1000, description="order book depth kept")
    book_levels: int = Field(default=10, ge=1, le=1000, description="levels summed in BookTop")
    book_snapshot_interval_s: float = Field(default=1.0, gt=0)
    stale_after_s: float | None = Field(
        default=None, gt=0, description="stall watchdog; None = sized per channel"
    )
    url: str | None = Field(default=None, description="endpoint override (simulator address)")
    plugin: str | None = Field(
        default=None,
        description="feed plugin by name (an entry point of 'cryptomon.feeds', e.g. "
        "simulator_futures); default: the plugin named like the exchange, else cryptofeed",
    )
    proxy: SecretStr | None = Field(
        default=None, description="HTTP or SOCKS proxy for this feed's websocket and REST traffic"
    )
    candle_interval: str = "1m"
    loop_yield_every: int = Field(
        default=16,
        ge=0,
        description="give the event loop back every N market messages within a burst, so the "
        "detectors' flush and API requests run during it (latency); 0 = never",
    )

    _proxy = field_validator("proxy")(check_proxy)
    _url = field_validator("url")(check_http_url)

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
