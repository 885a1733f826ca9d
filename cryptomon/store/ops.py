"""Idempotent writes of the operational kinds: notifications, audit entries, feed events and
risk events. They have no natural key, so each row carries ``event_key``, a digest of the
event, with a unique constraint. Re-exported by :mod:`cryptomon.store.repos`."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cryptomon.events import AuditEntry, Event, FeedStatus, NotificationRecord, RiskEvent
from cryptomon.store.bulk import insert_ignore
from cryptomon.store.models import AuditRow, FeedEventRow, NotificationRow, RiskEventRow
from cryptomon.store.types import utc


def event_key(event: Event) -> str:
    """A stable 40-hex digest of an event's fields (for kinds without an id)."""
    return hashlib.blake2b(repr(event).encode(), digest_size=20).hexdigest()


def _row(ev: Event, **columns: Any) -> dict[str, Any]:
    """The columns every operational row has (key, time, market), then ``columns``."""
    return {
        "event_key": event_key(ev),
        "ts": utc(ev.ts),
        "exchange": ev.exchange,
        "symbol": ev.symbol,
        **columns,
    }


async def insert_risk_events(session: AsyncSession, events: Sequence[RiskEvent]) -> int:
    rows = [
        _row(
            ev,
            kind=ev.kind,
            state=ev.state,
            reason=ev.reason,
            client_order_id=ev.client_order_id,
            check=ev.check,
        )
        for ev in events
    ]
    return await insert_ignore(session, RiskEventRow, rows, ["event_key"])


async def insert_notifications(session: AsyncSession, events: Sequence[NotificationRecord]) -> int:
    rows = [
        _row(
            ev,
            channel=ev.channel,
            status=ev.status,
            title=ev.title,
            body=ev.body,
            attempts=ev.attempts,
            error=ev.error,
            priority=ev.priority,
            event_type=ev.event_type,
            ref_id=ev.ref_id,
        )
        for ev in events
    ]
    return await insert_ignore(session, NotificationRow, rows, ["event_key"])


def _finite_or_text(text: str) -> float | str:
    value = float(text)
    return value if math.isfinite(value) else text


def _payload(text: str) -> Any:
    """The payload as JSON the database accepts: ``Infinity``/``NaN`` (and numbers too large
    for a float, like ``1e999``) become strings, so no audit row is lost to serialization."""
    try:
        return json.loads(text, parse_constant=str, parse_float=_finite_or_text)
    except (ValueError, TypeError, RecursionError):
        return {"raw": text}


async def insert_audit(session: AsyncSession, events: Sequence[AuditEntry]) -> int:
    rows = [
        _row(
            ev,
            actor=ev.actor,
            action=ev.action,
            payload=_payload(ev.payload),
            client=ev.client[:64] or None,
            request_id=ev.request_id[:64] or None,
        )
        for ev in events
    ]
    return await insert_ignore(session, AuditRow, rows, ["event_key"])


async def insert_feed_events(session: AsyncSession, events: Sequence[FeedStatus]) -> int:
    rows = [
        _row(
            ev,
            channel=ev.channel,
            status=ev.status,
            detail=ev.detail,
        )
        for ev in events
    ]
    return await insert_ignore(session, FeedEventRow, rows, ["event_key"])
