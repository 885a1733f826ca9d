"""Column types that behave the same on SQLite and PostgreSQL.

- :class:`UTCDateTime`: timezone-aware UTC datetimes in, timezone-aware UTC datetimes out.
  PostgreSQL stores ``TIMESTAMP WITH TIME ZONE``; SQLite stores naive UTC text (which sorts
  correctly) and gets its ``tzinfo`` back on read.
- :class:`Money`: exact ``Decimal``. PostgreSQL ``NUMERIC(36, 18)``; SQLite has no exact
  decimal type (its NUMERIC affinity would store a float), so the decimal's text is stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any

from sqlalchemy import DateTime, Dialect, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine

MONEY_PRECISION = 36
MONEY_SCALE = 18
_WIDE = Context(prec=MONEY_PRECISION + 4)  # exact for every NUMERIC(36, 18) value


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every dialect. Naive input is taken as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Money(TypeDecorator[Decimal]):
    """An exact decimal amount: NUMERIC(36, 18) on PostgreSQL, decimal text on SQLite."""

    impl = Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        dec = value if isinstance(value, Decimal) else Decimal(str(value))
        if dialect.name == "sqlite":
            return format(dec, "f")
        return dec

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return canonical(value if isinstance(value, Decimal) else Decimal(str(value)))


def canonical(value: Decimal) -> Decimal:
    """Drop trailing zeros (NUMERIC(36, 18) pads them) without exponent notation:
    ``65000.100000`` -> ``65000.1``, ``100.000`` -> ``100``."""
    if not value.is_finite():
        return value
    if value == value.to_integral_value():
        return value.quantize(Decimal(1), context=_WIDE)
    return value.normalize(context=_WIDE)


def utc(ts: float) -> datetime:
    """Epoch seconds -> aware UTC datetime."""
    return datetime.fromtimestamp(ts, UTC)


def epoch(dt: datetime | None) -> float | None:
    """Aware (or naive-UTC) datetime -> epoch seconds."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
