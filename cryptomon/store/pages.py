"""Page helpers of the read side (:mod:`cryptomon.store.queries`): the limit and time
arguments checked with a message naming them, rows as plain data (epoch-second floats), and
the opaque keyset cursors of paged lists."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, TypeVar

import orjson
from sqlalchemy import Select, and_, or_

from cryptomon.store.types import utc

MAX_LIMIT = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HIDDEN = frozenset({"event_key", "severity_rank"})
_S = TypeVar("_S", bound=Select)


def check_limit(limit: int, name: str = "limit") -> int:
    """``limit`` if an integer from 1 to :data:`MAX_LIMIT`; else ValueError naming ``name``."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"{name} must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    return limit


def as_time(value: float | datetime | None, name: str) -> datetime | None:
    """Epoch seconds or a datetime (naive: UTC) as an aware datetime; else ValueError."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return utc(float(value))
    raise ValueError(f"{name} must be epoch seconds or a datetime, got {value!r}")


def plain(mapping: Any) -> dict[str, Any]:
    """A row mapping as plain data: datetimes as epoch seconds, internal columns dropped."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if key in _HIDDEN:
            continue
        out[key] = value.timestamp() if isinstance(value, datetime) else value
    return out


def _holds_datetimes(rows: list[Any], i: int) -> bool:
    """Whether column ``i`` holds datetimes: its first non-NULL value says (one type per
    column), so this usually looks at one row."""
    for row in rows:
        value = row[i]
        if value is not None:
            return isinstance(value, datetime)
    return False


def plain_rows(result: Any, rows: list[Any] | None = None) -> list[dict[str, Any]]:
    """``plain`` of every row of ``result`` (or of ``rows`` taken from it), planned once per
    result: the kept columns are zipped with each row's values and only the columns that hold
    datetimes are converted."""
    if rows is None:
        rows = result.all()
    if not rows:
        return []
    keys = list(result.keys())
    keep = [i for i, k in enumerate(keys) if k not in _HIDDEN]
    names = [keys[i] for i in keep]
    times = [keys[i] for i in keep if _holds_datetimes(rows, i)]
    pick = itemgetter(*keep) if len(keep) > 1 else (lambda r: (r[keep[0]],))
    out = [dict(zip(names, pick(r), strict=True)) for r in rows]
    for key in times:
        for d in out:
            value = d[key]
            if value is not None:
                d[key] = value.timestamp()
    return out


_BIGINT = 2**63  # an integer id is a BIGINT: a cursor's id outside it is not one we issued


def encode_cursor(ts: datetime, key: str | int) -> str:
    """The opaque page cursor of the last row (its time and id: text, or an integer) of a
    page."""
    micros = (ts - _EPOCH) // timedelta(microseconds=1)
    if isinstance(key, int) or (key.isascii() and key.isprintable()):  # (orjson's bytes are
        # json's: a cheaper call)
        raw = orjson.dumps([micros, key])
    else:  # json escapes non-ASCII and DEL, orjson does not: the cursor's bytes stay json's
        raw = json.dumps([micros, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Inverse of :func:`encode_cursor` for a text id; ValueError for anything it did not
    produce."""
    ts, key = _decode(cursor)
    # a row id never holds NUL (PostgreSQL text refuses it: a forged cursor was a 503
    # "store unavailable" there)
    if not isinstance(key, str) or "\x00" in key:
        raise _invalid(cursor)
    return ts, key


def decode_int_cursor(cursor: str) -> tuple[datetime, int]:
    """Inverse of :func:`encode_cursor` for an integer id (a BIGINT: one outside its range
    would be a database error, not an empty page); ValueError for anything it did not
    produce, such as another list's cursor."""
    ts, key = _decode(cursor)
    if type(key) is not int or not -_BIGINT <= key < _BIGINT:
        raise _invalid(cursor)
    return ts, key


def _invalid(cursor: str) -> ValueError:
    return ValueError(
        f"invalid cursor {cursor[:40]!r}: pass the next_cursor value of a previous page"
    )


def _decode(cursor: str) -> tuple[datetime, object]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        micros, key = orjson.loads(raw)
        if type(micros) is not int:  # a time is no boolean
            raise TypeError
        return _EPOCH + timedelta(microseconds=micros), key
    except (ValueError, TypeError, binascii.Error, OverflowError):
        raise _invalid(cursor) from None


def after_key(stmt: _S, ts: Any, key: Any, cursor: tuple[datetime, Any] | None) -> _S:
    """``stmt`` limited to the rows after ``cursor`` in the newest-first (``ts``, ``key``)
    order (unchanged when it is None)."""
    if cursor is None:
        return stmt
    c_ts, c_key = cursor
    # the redundant ``<=`` bounds the index range (the OR alone is only a filter)
    return stmt.where(ts <= c_ts, or_(ts < c_ts, and_(ts == c_ts, key < c_key)))


def time_range(stmt: _S, col: Any, since: Any, until: Any) -> _S:
    """``stmt`` limited to ``col`` in [since, until] (either may be None); ValueError when
    ``since`` is after ``until`` or either is not a time."""
    lo, hi = as_time(since, "since"), as_time(until, "until")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"since ({since}) must not be after until ({until})")
    if lo is not None:
        stmt = stmt.where(col >= lo)
    if hi is not None:
        stmt = stmt.where(col <= hi)
    return stmt
