"""Signal settings of the ``trading`` section: grade thresholds and webhook senders."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from cryptomon.config.base import Section, normalize_symbol


class GradeThresholds(Section):
    """Strength -> grade: ``strong`` >= strong, ``medium`` >= medium, ``weak`` >= weak, else
    ``ignore``."""

    strong: float = Field(default=0.8, gt=0, le=1, description="lowest strength graded strong")
    medium: float = Field(default=0.65, gt=0, le=1, description="lowest strength graded medium")
    weak: float = Field(default=0.5, gt=0, le=1, description="lowest strength graded weak")

    @model_validator(mode="after")
    def _ordered(self) -> GradeThresholds:
        if not self.weak <= self.medium <= self.strong:
            raise ValueError(
                f"weak ({self.weak}) <= medium ({self.medium}) <= strong ({self.strong})"
            )
        return self


class WebhookConfig(Section):
    """One external signal sender (a TradingView alert, a script): its secret and markets."""

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="the {name} of POST /api/v1/signals/webhook/{name}",
    )
    secret: SecretStr = Field(
        description="shared secret: body field 'secret', ?token=, or X-Signature HMAC key"
    )
    symbols: list[str] = Field(
        default_factory=list, description="symbols this sender may signal; [] = any"
    )
    exchange: str | None = Field(
        default=None, description="exchange of its signals; None = trading.exchange"
    )
    max_per_minute: int = Field(default=10, ge=1, le=6000, description="accepted calls per minute")
    signature_window_s: float = Field(
        default=300.0,
        ge=10,
        le=3600,
        description="X-Signature calls: X-Signature-Timestamp at most this far from the "
        "daemon's clock; a signature is accepted once within it",
    )
    strength: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="strength of a call without strength or grade",
    )

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        return [normalize_symbol(s) for s in v]

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, v: SecretStr) -> SecretStr:
        if len(v.get_secret_value()) < 16:
            raise ValueError("a secret of at least 16 characters")
        return v

    @field_validator("exchange")
    @classmethod
    def _exchange(cls, v: str | None) -> str | None:
        return None if v is None else v.strip().lower()
