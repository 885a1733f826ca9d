"""Anomalies, signals, orders and fills published for other services (brain role).

Subjects ``<prefix>.anomaly|signal|order|fill.<exchange>.<symbol>`` in the stream
``<stream>_EVENTS``. Each message is one JSON object (UTF-8), schema version 1::

    {"schema": 1, "type": "anomaly", "exchange": "binance", "symbol": "BTC-USDT",
     "ts": 1700000000.1, "ts_recv": 1700000000.2, ...every field of the event...}

Field names and meanings are those of the dataclasses in :mod:`cryptomon.events`
(``Anomaly``, ``Signal``, ``OrderUpdate``, ``Fill``): times are epoch seconds (float);
market/detector numbers are JSON numbers; order and fill amounts, prices and fees are
*strings* holding exact decimals; enums are their string values; tuples are arrays.

The payload is standard JSON (no ``NaN``/``Infinity`` literals, which most parsers refuse): a
NaN or infinite number (a detector's z-score over a flat window) is spelled as the string
``"nan"``, ``"inf"`` or ``"-inf"`` and its field is named in the list ``"nf"`` (present only
then), as the market-data batches spell them (:mod:`cryptomon.bus.codec`)::

    {..., "z_score": "nan", "window_std": "inf", "nf": ["z_score", "window_std"]}

``Nats-Msg-Id`` is the event's identity (``anomaly:<id>``, ``signal:<id>``,
``order:<client_order_id>:<state>:<filled>``, ``fill:<exchange>:<trade_id>``): anomaly and
signal ids are deterministic (:mod:`cryptomon.ids`), so a brain that reprocesses the same
data after a crash publishes nothing twice within the stream's duplicate window. ``<filled>``
is the amount in one spelling (plain digits, no exponent, no trailing zeros, zero as ``0``):
``1.0``, ``1.00`` and ``1E+0`` are one state of the order, one message.
Nothing here is dropped: the hub queue is ``never_drop`` and a failed publish is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
from decimal import Decimal
from enum import Enum
from typing import Any

import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext

from cryptomon.bus import subjects
from cryptomon.bus.connect import connect, ensure_streams, redeclare_streams
from cryptomon.clock import Clock
from cryptomon.config import BusConfig
from cryptomon.decimals import plain_decimal
from cryptomon.events import Anomaly, Event, Fill, OrderUpdate, Signal
from cryptomon.hub import Hub, QueuedSubscription

log = structlog.get_logger()

SCHEMA_VERSION = 1
KINDS: dict[type[Event], str] = {
    Anomaly: "anomaly",
    Signal: "signal",
    OrderUpdate: "order",
    Fill: "fill",
}
_RETRY_S = 0.5


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # 'nan', 'inf', '-inf'
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, tuple | list):
        return any(_non_finite(item) for item in value)
    return False


def amount_key(value: Decimal) -> str:
    """One spelling of an amount for message ids: plain digits without exponent or trailing
    zeros, zero (``-0``, ``0E-8``) as ``0``; exact (no rounding to a context precision):
    :func:`cryptomon.decimals.plain_decimal`."""
    return plain_decimal(value)


def to_message(event: Event) -> tuple[str, str, bytes]:
    """``(kind, Nats-Msg-Id, JSON payload)`` of one outbound event."""
    kind = KINDS[type(event)]
    body: dict[str, Any] = {"schema": SCHEMA_VERSION, "type": kind}
    spelled: list[str] = []
    for fld in dataclasses.fields(event):
        value = getattr(event, fld.name)
        if _non_finite(value):
            spelled.append(fld.name)
        body[fld.name] = _plain(value)
    if spelled:
        body["nf"] = spelled
    if isinstance(event, Anomaly | Signal):
        msg_id = f"{kind}:{event.id}"
    elif isinstance(event, OrderUpdate):
        msg_id = f"order:{event.client_order_id}:{event.state.value}:{amount_key(event.filled)}"
    else:
        assert isinstance(event, Fill)
        msg_id = f"fill:{event.exchange}:{event.trade_id}"
    return kind, msg_id, json.dumps(body, separators=(",", ":"), allow_nan=False).encode()


class EventPublisher:
    """See the module docstring."""

    name = "bus-events"

    def __init__(self, *, config: BusConfig, hub: Hub, clock: Clock) -> None:
        self.config = config
        self.hub = hub
        self.clock = clock
        self.published = 0
        self.errors = 0
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self._sub: QueuedSubscription | None = None

    async def start(self) -> None:
        self.nc = await connect(self.config, name="cryptomon-brain-events")
        self.js = self.nc.jetstream()
        await ensure_streams(self.js, self.config)
        self._sub = self.hub.subscribe_queued(
            tuple(KINDS), self._send, name="bus-events", policy="never_drop"
        )

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._sub.join(), timeout=5.0)
            self.hub.unsubscribe(self._sub)
            self._sub = None
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()

    async def _send(self, batch: list[Event]) -> None:
        js = self.js
        assert js is not None
        prefix = self.config.subject_prefix
        for event in batch:
            kind, msg_id, payload = to_message(event)
            subject = subjects.event(prefix, kind, event.exchange, event.symbol)
            while True:
                try:
                    await js.publish(subject, payload, headers={"Nats-Msg-Id": msg_id})
                    self.published += 1
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # NATS away: never dropped, tried again
                    self.errors += 1
                    log.warning("bus.event_publish_failed", kind=kind, error=repr(exc))
                    if not await redeclare_streams(js, self.config, exc):
                        await self.clock.sleep(_RETRY_S)

    def stats(self) -> dict[str, Any]:
        return {"published": self.published, "errors": self.errors}
