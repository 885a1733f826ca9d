"""Builders of events, configs and a running router for notification tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from cryptomon.clock import ManualClock
from cryptomon.config import AlertsConfig
from cryptomon.events import Anomaly, NotificationRecord
from cryptomon.hub import Hub
from cryptomon.notify.router import NotificationRouter
from cryptomon.notify.transport import Transport
from tests import stubs

T0 = stubs.T0  # 2023-11-14T22:13:20Z


def anomaly(**kw: Any) -> Anomaly:
    """The kit's anomaly with the defaults these tests render (value 7.5, no z-score)."""
    preset: dict[str, Any] = {
        "value": 7.5,
        "confidence": 0.9,
        "z_score": None,
        "reasons": ("Z-score: 7.50",),
        "ts_detected": 0.0,
    }
    if "ts" in kw:
        kw.setdefault("ts_recv", kw["ts"])
    return stubs.anomaly(**{**preset, **kw})


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
    channels: list[dict[str, Any]],
    *,
    clock: ManualClock | None = None,
    transport: Transport | None = None,
    event_time: bool = False,
    **kw: Any,
) -> AsyncIterator[Running]:
    """A started hub + router on a ManualClock; records collected inline. Without
    ``transport`` the channels deliver for real (apprise's own I/O). ``event_time``: route as
    a replay's router does (windows on the anomalies' own times)."""
    hub = Hub()
    clock = clock or ManualClock(T0)
    router = NotificationRouter(
        hub=hub,
        clock=clock,
        config=alerts_config(channels, **kw),
        transport=transport,
        event_time=event_time,
    )
    run = Running(hub=hub, clock=clock, router=router)
    hub.subscribe(NotificationRecord, run.records.append, name="records")
    await hub.start()
    await router.start()
    try:
        yield run
    finally:
        await router.stop()
        await hub.stop(1.0)
