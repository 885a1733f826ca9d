"""Every notification outcome becomes a NotificationRecord on the hub (the store persists it),
counted per channel and status for ``/metrics``."""

from __future__ import annotations

from collections import Counter
from typing import Any

import structlog

from cryptomon.clock import Clock
from cryptomon.events import NotificationRecord
from cryptomon.hub import Hub
from cryptomon.notify.alerts import Alert

log = structlog.get_logger()


class Recorder:
    """Publishes outcomes and counts them by (channel, status)."""

    def __init__(self, *, hub: Hub, clock: Clock) -> None:
        self.hub = hub
        self.clock = clock
        self.counts: Counter[tuple[str, str]] = Counter()

    def alert(
        self,
        channel: str,
        alert: Alert,
        status: str,
        title: str,
        body: str,
        *,
        error: str = "",
        attempts: int = 0,
        log_failure: bool = True,
    ) -> None:
        """``log_failure=False``: the caller logs the failure once for many alerts (a digest)."""
        self.publish(
            channel=channel,
            status=status,
            title=title,
            body=body,
            attempts=attempts,
            error=error,
            priority=alert.priority,
            event_type=alert.event_type,
            ref_id=alert.ref_id,
            exchange=alert.exchange,
            symbol=alert.symbol,
            ts=alert.ts,
            log_failure=log_failure,
        )

    def publish(
        self,
        *,
        channel: str,
        status: Any,
        title: str,
        body: str,
        attempts: int,
        error: str,
        priority: str,
        event_type: str,
        ref_id: str | None,
        exchange: str,
        symbol: str,
        ts: float,
        log_failure: bool = True,
    ) -> None:
        self.counts[(channel, status)] += 1
        if status == "failed" and log_failure:
            log.error("notify.failed", channel=channel, event_type=event_type, error=error)
        self.hub.publish(
            NotificationRecord(
                exchange=exchange,
                symbol=symbol,
                ts=ts,
                ts_recv=self.clock.time(),
                channel=channel,
                status=status,
                title=title,
                body=body,
                attempts=attempts,
                error=error,
                priority=priority,
                event_type=event_type,
                ref_id=ref_id,
            )
        )
