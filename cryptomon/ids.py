"""Deterministic identifiers derived from their inputs (scale-out, DESIGN.md section 8).

A brain that reprocesses the same market data after a crash must produce the same anomaly and
signal ids, so the store, the bus (``Nats-Msg-Id``) and other services see one event, not two.
Ids have the shape of ``uuid.uuid4().hex`` (32 lowercase hex characters).
"""

from __future__ import annotations

import struct
from hashlib import blake2b

_PACK_3D = struct.Struct("<3d").pack  # IEEE 754 little-endian: exact on every platform


def stable_id(*parts: object) -> str:
    """32 hex characters digesting ``parts`` (floats by ``repr``: exact, platform-independent)."""
    text = "\x1f".join(repr(part) if isinstance(part, float) else str(part) for part in parts)
    return blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def anomaly_id(
    exchange: str, symbol: str, *, kind: str, ts: float, ts_recv: float, value: float
) -> str:
    """The id of the anomaly of ``kind`` triggered by the event at (``ts``, ``ts_recv``).

    On the detector engine's firing path: the three floats are hashed as their 8-byte IEEE
    values (exact, like ``repr``, at a third of the cost of formatting them)."""
    head = f"anomaly\x1f{exchange}\x1f{symbol}\x1f{kind}\x1f".encode()
    packed = _PACK_3D(float(ts), float(ts_recv), float(value))
    return blake2b(head + packed, digest_size=16).hexdigest()


def signal_id(
    exchange: str, symbol: str, *, source: str, side: str, ts: float, anomaly: str | None
) -> str:
    """The id of the signal ``source`` gave for ``side`` at ``ts`` (caused by ``anomaly``):
    ``stable_id("signal", exchange, symbol, source, side, float(ts), anomaly or "")``, its
    text joined here without the per-part type test (one per generated signal)."""
    text = "\x1f".join(
        (
            "signal",
            str(exchange),
            str(symbol),
            str(source),
            str(side),
            repr(float(ts)),
            str(anomaly or ""),
        )
    )
    return blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
