"""Builders of events, configs and a running router for notification tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from cryptomon.clock import ManualClock
from cryptomon.config import AlertsConfig
from cryptomon.events import Anomaly, NotificationRecord, Severity
from cryptomon.hub import Hub
from cryptomon.notify.router import NotificationRouter

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def anomaly(
    *,
    exchange: str = "binance",
    symbol: str = "BTC-USDT",
    kind: str = "volume",
    severity: Severity = Severity.HIGH,
    value: float = 7.5,
    threshold: float = 3.0,
    ts: float = T0,
    reasons: tuple[str, ...] = ("Z-score: 7.50",),
) -> Anomaly:
    return Anomaly(
        exchange=exchange,
        symbol=symbol,
        ts=ts,
        ts_recv=ts,
        kind=kind,
        severity=severity,
        value=value,
        threshold=threshold,
        confidence=0.9,
        reasons=reasons,
    )


def alerts_config(channels: list[dict[str, Any]], **kw: Any) -> AlertsConfig:
    # a long attempt timeout: advancing the ManualClock must not abandon a real delivery
    base: dict[str, Any] = {"attempt_timeout_s": 300.0, "retries": 0, "retry_backoff_s": 1.0}
    base.update(kw)
    return AlertsConfig.model_validate({"channels": channels, **base})


@dataclass
class Running:
    hub: Hub
    clock: ManualClock
    router: NotificationRouter
    records: list[NotificationRecord] = field(default_factory=list)

    def by(self, channel: str, status: str | None = None) -> list[NotificationRecord]:
        return [
            r
            for r in self.records
            if r.channel == channel and (status is None or r.status == status)
        ]


@asynccontextmanager
async def running_router(
    channels: list[dict[str, Any]], *, clock: ManualClock | None = None, **kw: Any
) -> AsyncIterator[Running]:
    """A started hub + router on a ManualClock; records collected inline."""
    hub = Hub()
    clock = clock or ManualClock(T0)
    router = NotificationRouter(hub=hub, clock=clock, config=alerts_config(channels, **kw))
    run = Running(hub=hub, clock=clock, router=router)
    hub.subscribe(NotificationRecord, run.records.append, name="records")
    await hub.start()
    await router.start()
    try:
        yield run
    finally:
        await router.stop()
        await hub.stop(1.0)
