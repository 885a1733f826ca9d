"""The ``bus`` section: scale-out over NATS JetStream (DESIGN.md section 8).

``role: all`` (the default) is the single process and uses none of the other keys.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator

from cryptomon.config.base import Section

ACK_MARGIN_S = 10.0
"""What ``bus.ack_wait_s`` must exceed ``storage.batch_max_age_s`` by: the brain acknowledges a
message once the store committed its rows, up to ``batch_max_age_s`` after it was processed,
plus a fetch turn (1 s) and a write."""

Role = Literal["all", "collector", "brain"]
ROLES: tuple[Role, ...] = ("all", "collector", "brain")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def _token(value: str, what: str) -> str:
    if not _TOKEN_RE.match(value):
        raise ValueError(f"{what} of letters, digits, '_' and '-' only, not {value!r}")
    return value


def _server(url: str, n: int) -> None:
    """One server of ``nats_url``: a host, and a port of 1-65535 when one is given (the
    message names the server by its place, never its text: it may carry a password)."""
    where = f"server {n + 1} of the list"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"{where}: a host and a port of 1-65535 (nats://host:4222)") from None
    if not parts.hostname or " " in url:
        raise ValueError(f"{where}: a host (nats://host:4222)")
    if port is not None and port == 0:
        raise ValueError(f"{where}: a host and a port of 1-65535 (nats://host:4222)")


class BusConfig(Section):
    """Where the bus is and which part of the pipeline this process runs."""

    role: Role = Field(default="all", description="all | collector | brain")
    nats_url: str = Field(default="nats://127.0.0.1:4222", min_length=1)
    credentials_file: Path | None = Field(default=None, description="NATS .creds file")
    stream: str = Field(default="CRYPTOMON", description="JetStream stream of market data")
    subject_prefix: str = Field(default="cryptomon", description="first token of every subject")
    max_age_s: float = Field(default=3600.0, gt=0, description="market data kept this long")
    max_bytes: int = Field(default=1 << 30, gt=0, description="market data stream size cap")
    events_max_age_s: float = Field(
        default=7 * 86400.0, gt=0, description="anomalies/signals/orders/fills kept this long"
    )
    duplicate_window_s: float = Field(
        default=120.0, gt=0, description="Nats-Msg-Id dedupe window of the streams"
    )
    collector_id: str = Field(default="collector-1", description="unique per collector")
    buffer_max_batches: int = Field(
        default=10_000, ge=1, description="market-data batches kept while NATS is away"
    )
    batch_linger_s: float = Field(
        default=0.0,
        ge=0,
        le=1.0,
        description="collector: 0 = one batch per symbol per event-loop turn; > 0 = gather a "
        "symbol's events this long into one batch (bigger batches, more lag)",
    )
    publish_concurrency: int = Field(default=64, ge=1, le=4096)
    health_interval_s: float = Field(default=5.0, gt=0)
    durable: str = Field(default="cryptomon-brain", description="the brain's durable consumer")
    fetch_batch: int = Field(default=256, ge=1, le=10_000)
    ack_wait_s: float = Field(default=30.0, ge=1.0, le=3600.0)
    publish_events: bool = Field(
        default=True, description="brain: publish anomalies, signals, orders and fills"
    )
    account: str = Field(default="default", description="trading lease key (one per account)")
    lease_bucket: str = Field(default="cryptomon_lease")
    lease_ttl_s: float = Field(default=10.0, ge=1.0, le=3600.0)

    @field_validator("stream", "collector_id", "durable", "account", "lease_bucket")
    @classmethod
    def _tokens(cls, v: str) -> str:
        return _token(v, "a name")

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        return ".".join(_token(part, "a subject token") for part in v.split("."))

    @field_validator("nats_url")
    @classmethod
    def _url(cls, v: str) -> str:
        schemes = ("nats://", "tls://", "ws://", "wss://")
        if not all(url.strip().startswith(schemes) for url in v.split(",")):
            raise ValueError(f"nats://host:port (comma-separated for a cluster), not {v!r}")
        for n, url in enumerate(v.split(",")):
            _server(url.strip(), n)
        return v

    @field_validator("duplicate_window_s")
    @classmethod
    def _window(cls, v: float, info: ValidationInfo) -> float:
        # NATS refuses a stream whose duplicate window is longer than it keeps messages
        for key in ("max_age_s", "events_max_age_s"):
            limit = info.data.get(key)
            if limit is not None and v > limit:
                raise ValueError(f"at most bus.{key} ({limit:g}): NATS refuses a longer window")
        return v

    @field_validator("credentials_file")
    @classmethod
    def _creds(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError(f"a readable NATS .creds file; {str(v)!r} is not a file")
        return v


def ack_wait_problem(bus: BusConfig, batch_max_age_s: float) -> str | None:
    """What is wrong with ``bus.ack_wait_s`` beside ``storage.batch_max_age_s`` for a brain
    (None: nothing): JetStream would deliver again what the brain still holds for the store."""
    needed = batch_max_age_s + ACK_MARGIN_S
    if bus.role != "brain" or bus.ack_wait_s >= needed:
        return None
    return (
        f"at least storage.batch_max_age_s + {ACK_MARGIN_S:g} s = {needed:g} s "
        f"(storage.batch_max_age_s is {batch_max_age_s:g}): the brain acknowledges a message "
        "only once the store committed its rows, up to storage.batch_max_age_s later plus the "
        "write; raise bus.ack_wait_s or lower storage.batch_max_age_s"
    )
