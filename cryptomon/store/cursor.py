"""Keyset-pagination cursors of the read side: an opaque, URL-safe ``(time, key)`` pair."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode_cursor(ts: datetime, key: str) -> str:
    micros = (ts - _EPOCH) // timedelta(microseconds=1)
    raw = json.dumps([micros, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of :func:`encode_cursor`; ValueError for anything it did not produce."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        micros, key = json.loads(raw)
        if not isinstance(micros, int) or not isinstance(key, str):
            raise TypeError
        return _EPOCH + timedelta(microseconds=micros), key
    except (ValueError, TypeError, binascii.Error, OverflowError):
        raise ValueError(
            f"invalid cursor {cursor[:40]!r}: pass the next_cursor value of a previous page"
        ) from None
