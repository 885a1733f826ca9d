"""``anomaly_detection.arbitrage``: fee-aware cross-exchange opportunities (the ``arbitrage``
detector)."""

from __future__ import annotations

from pydantic import Field, field_validator

from cryptomon.config.base import Section


class ArbitrageConfig(Section):
    """Buy on one venue's ask, sell on another's bid: net of both venues' taker fees."""

    enabled: bool = Field(default=True, description="run the arbitrage detector")
    min_edge_bps: float = Field(
        default=5.0, gt=0, description="net edge after both taker fees that fires, bps"
    )
    taker_fees: dict[str, float] = Field(
        default_factory=dict, description="taker fee per exchange, fraction (0.001 = 0.1%)"
    )
    default_taker_fee: float = Field(
        default=0.001, ge=0, lt=0.1, description="taker fee of exchanges not in taker_fees"
    )
    max_age_s: float = Field(
        default=2.0, gt=0, description="the other venue's quote older than this is ignored"
    )
    min_notional: float = Field(
        default=0.0, ge=0, description="smallest executable size worth reporting, quote"
    )
    tracking_quotes: list[str] = Field(
        default_factory=lambda: ["USDT", "USDC", "USD"],
        description="quote currencies compared as one (they track each other)",
    )

    @field_validator("taker_fees")
    @classmethod
    def _fees(cls, v: dict[str, float]) -> dict[str, float]:
        for name, fee in v.items():
            if not 0 <= fee < 0.1:
                raise ValueError(f"taker_fees.{name}: a fraction from 0 to 0.1, got {fee!r}")
        return {k.strip().lower(): float(f) for k, f in v.items()}

    @field_validator("tracking_quotes")
    @classmethod
    def _upper(cls, v: list[str]) -> list[str]:
        return [q.strip().upper() for q in v]

    def fee(self, exchange: str) -> float:
        """The taker fee of ``exchange`` (fraction)."""
        return self.taker_fees.get(exchange.lower(), self.default_taker_fee)
