"""The ``market_data`` section: instrument refresh, USD conversion and the quality layer
(history, duplicates, bad prints, per-symbol staleness) in front of the hub."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from cryptomon.config.base import Section

DEFAULT_USD_QUOTES = ("USD", "USDT", "USDC", "BUSD", "DAI", "TUSD", "FDUSD")


class MarketDataConfig(Section):
    """How market data is checked and given units before anyone acts on it."""

    usd_quotes: list[str] = Field(
        default_factory=lambda: list(DEFAULT_USD_QUOTES),
        description="quote currencies counted as 1 USD (notional_usd = notional)",
    )
    usd_rate_max_age_s: float = Field(
        default=60.0, gt=0, description="oldest QUOTE-USDT/QUOTE-USD mid used for notional_usd"
    )
    instrument_refresh_s: float = Field(
        default=3600.0, gt=0, description="re-read every venue's instrument list this often"
    )
    history_tolerance_s: float = Field(
        default=5.0, ge=0, description="a trade older than subscribe time minus this is history"
    )
    duplicate_memory: int = Field(
        default=4096, ge=16, description="trade ids remembered per market to drop repeats"
    )
    bad_print_band_pct: float = Field(
        default=10.0, gt=0, description="a print this far (%) from the recent median is suspect"
    )
    bad_print_book_pct: float = Field(
        default=2.0, ge=0, description="... or this far (%) beyond the opposite side of the book"
    )
    bad_print_confirm_prints: int = Field(
        default=3, ge=1, description="consistent suspect prints that make a real move"
    )
    bad_print_confirm_s: float = Field(
        default=2.0, gt=0, description="window (s) for those confirming prints"
    )
    bad_print_confirm_hold_s: float = Field(
        default=1.0,
        ge=0,
        description="prints alone confirm a move only this long (s) after the first of them",
    )
    bad_print_mid_follow_s: float = Field(
        default=1.0, gt=0, description="a book mid following a suspect print within this confirms"
    )
    bad_print_venue_band_pct: float = Field(
        default=20.0,
        gt=0,
        description="with no fresh book or ticker: a print this far (%) from other venues' "
        "fresh prices of the same pair is refuted",
    )
    bad_print_venue_max_age_s: float = Field(
        default=5.0, gt=0, description="other venues' prices no older than this (s) count"
    )
    stale_factor: float = Field(
        default=10.0, gt=1, description="a symbol is stale after this many normal gaps of silence"
    )
    stale_min_s: float = Field(default=30.0, gt=0, description="never stale before this silence")
    stale_max_s: float = Field(default=600.0, gt=0, description="always stale after this silence")

    @field_validator("usd_quotes")
    @classmethod
    def _upper(cls, v: list[str]) -> list[str]:
        return [quote.strip().upper() for quote in v]

    @model_validator(mode="after")
    def _hold_within_window(self) -> MarketDataConfig:
        if self.bad_print_confirm_hold_s > self.bad_print_confirm_s:
            msg = (
                "bad_print_confirm_hold_s must not exceed bad_print_confirm_s "
                "(prints alone could never confirm a move)"
            )
            raise ValueError(msg)
        return self
