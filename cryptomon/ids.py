"""Deterministic identifiers derived from their inputs (scale-out, DESIGN.md section 8).

A brain that reprocesses the same market data after a crash must produce the same anomaly and
signal ids, so the store, the bus (``Nats-Msg-Id``) and other services see one event, not two.
Ids have the shape of ``uuid.uuid4().hex`` (32 lowercase hex characters).
"""

from __future__ import annotations

from hashlib import blake2b


def stable_id(*parts: object) -> str:
    """32 hex characters digesting ``parts`` (floats by ``repr``: exact, platform-independent)."""
    text = "\x1f".join(repr(part) if isinstance(part, float) else str(part) for part in parts)
    return blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def anomaly_id(
    exchange: str, symbol: str, *, kind: str, ts: float, ts_recv: float, value: float
) -> str:
    """The id of the anomaly of ``kind`` triggered by the event at (``ts``, ``ts_recv``)."""
    return stable_id("anomaly", exchange, symbol, kind, float(ts), float(ts_recv), float(value))


def signal_id(
    exchange: str, symbol: str, *, source: str, side: str, ts: float, anomaly: str | None
) -> str:
    """The id of the signal ``source`` gave for ``side`` at ``ts`` (caused by ``anomaly``)."""
    return stable_id("signal", exchange, symbol, source, side, float(ts), anomaly or "")
