"""One spelling of an exact decimal for people and identities.

:func:`plain_decimal` writes a ``Decimal`` as plain digits: no exponent (``1E+2`` is
``100``), no trailing zeros (``65000.10000000`` is ``65000.1``), zero as ``0`` whatever its
sign or exponent (``-0``, ``-0.00``, ``0E-8``: a short's PnL at its entry price is the Decimal
``-0.00``), and every digit the value has: it is normalized at its own precision, never
rounded to the Decimal context's 28 digits (a NUMERIC(36, 18) value has up to 36).

:func:`float_decimal` turns a float (a market price, a float setting) into the Decimal it
prints as; :func:`decimal_mid` is the exact mid of two quoted prices.
"""

from __future__ import annotations

from decimal import Context, Decimal

FLOAT_CACHE_SIZE = 4096
"""How many floats :func:`float_decimal` remembers (all are forgotten when it is full)."""
_floats: dict[float, Decimal] = {}
_TWO = Decimal(2)


def plain_decimal(value: Decimal) -> str:
    """``value`` in its one plain spelling (see the module docstring); ``NaN``/``Infinity``
    as Python spells them."""
    if not value.is_finite():
        return str(value)
    if value.is_zero():
        return "0"
    digits = len(value.as_tuple().digits)
    return f"{value.normalize(Context(prec=digits)):f}"


def float_decimal(value: float) -> Decimal:
    """``value`` as the Decimal it prints as (``Decimal(str(value))``: ``0.1`` is
    ``Decimal('0.1')``, not the binary fraction).

    One order converts the same few floats several times (the mid for its size, its risk
    check and its fill; the quote the paper venue fills at, for the funds check and the fill;
    the fee rate; the configured percentages), and the string round trip is most of what a
    conversion costs: the last :data:`FLOAT_CACHE_SIZE` floats are remembered (a Decimal is
    immutable, one instance serves every caller). Only nonzero floats are: ``0.0`` and
    ``-0.0`` are equal keys that print differently, and so are ``1`` and ``1.0``."""
    if value.__class__ is not float or not value:
        return Decimal(str(value))
    dec = _floats.get(value)
    if dec is None:
        if len(_floats) >= FLOAT_CACHE_SIZE:
            _floats.clear()
        dec = _floats[value] = Decimal(repr(value))
    return dec


def decimal_mid(bid: float, ask: float) -> Decimal:
    """The mid of two quoted prices, exact: half the sum of the Decimals they print as
    (:func:`float_decimal`: each float's shortest repr is the price the venue quoted), so
    a bid of 59976.48 and an ask of 59976.50 have the mid ``Decimal('59976.49')``, where
    the float average ``(bid + ask) / 2`` is 59976.490000000005. The sum and its half are
    exact while they fit the Decimal context's precision (28 digits: any two prices of up
    to 17 digits within ten orders of magnitude of each other), and the half keeps the
    sum's exponent when it can (``119952.98 / 2`` is ``59976.49``, not ``59976.490``).
    The two conversions are remembered, so a caller that converts the bid and the ask
    too finds them."""
    return half_sum(float_decimal(bid), float_decimal(ask))


def half_sum(bid: Decimal, ask: Decimal) -> Decimal:
    """:func:`decimal_mid` of prices already converted (``float_decimal``)."""
    return (bid + ask) / _TWO
