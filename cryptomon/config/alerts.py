"""The ``alerts`` section: notification channels, spam control, retries, templates."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from cryptomon.config.base import Section, SeverityName, normalize_symbol
from cryptomon.config.templates import FIELDS, check_override
from cryptomon.kinds import AnomalyKind, NotifyEventType

NotifyCategory = Literal["anomaly", "trading", "system"]
_ALL_CATEGORIES: tuple[NotifyCategory, ...] = ("anomaly", "trading", "system")
_HHMM = r"([01]\d|2[0-3]):[0-5]\d"


class ChannelConfig(Section):
    """One apprise destination and what reaches it (routing, rate limit, quiet hours)."""

    name: str = Field(min_length=1, description="channel name used in records and the API")
    url: SecretStr = Field(description="any apprise URL: tgram://, mailto://, json://, ...")
    min_severity: SeverityName = Field(default="medium", description="lowest severity sent")
    kinds: list[AnomalyKind] | None = Field(default=None, description="anomaly kinds; None = all")
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
    digest_max_items: int = Field(
        default=20,
        ge=1,
        le=500,
        description="alerts one digest lists (the most severe, then the latest); the others "
        "are counted by kind in its last line",
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

    @field_validator("templates", mode="wrap")
    @classmethod
    def _check_templates(
        cls, v: Any, handler: ValidatorFunctionWrapHandler
    ) -> dict[NotifyEventType, TemplateOverride]:
        """Every bad override is its own problem at ``alerts.templates.TYPE.PART``, reported
        together with the shape errors (an unknown event type) of the others."""
        errors: list[InitErrorDetails] = []
        for event_type, ov in v.items() if isinstance(v, dict) else ():
            if event_type not in FIELDS or not isinstance(ov, dict):
                continue  # the type check below names it
            for part in ("title", "body"):
                text = ov.get(part)
                if not isinstance(text, str) or not text:
                    continue
                try:
                    check_override(event_type, text)
                except ValueError as exc:
                    error = PydanticCustomError("template", "{why}", {"why": str(exc)})
                    errors.append(InitErrorDetails(type=error, loc=(event_type, part), input=text))
        try:
            checked: dict[NotifyEventType, TemplateOverride] = handler(v)
        except ValidationError as exc:
            if not errors:
                raise
            errors = [*_details(exc), *errors]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return checked


def _details(exc: ValidationError) -> list[InitErrorDetails]:
    """``exc``'s errors, to be raised again beside others."""
    out: list[InitErrorDetails] = []
    for e in exc.errors():
        why = str(e.get("msg", ""))
        error = PydanticCustomError(e["type"], "{why}", {"why": why})
        out.append(InitErrorDetails(type=error, loc=tuple(e["loc"]), input=e.get("input")))
    return out
