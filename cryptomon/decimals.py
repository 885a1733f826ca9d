"""One spelling of an exact decimal for people and identities.

:func:`plain_decimal` writes a ``Decimal`` as plain digits: no exponent (``1E+2`` is
``100``), no trailing zeros (``65000.10000000`` is ``65000.1``), zero as ``0`` whatever its
sign or exponent (``-0``, ``-0.00``, ``0E-8``: a short's PnL at its entry price is the Decimal
``-0.00``), and every digit the value has: it is normalized at its own precision, never
rounded to the Decimal context's 28 digits (a NUMERIC(36, 18) value has up to 36).
"""

from __future__ import annotations

from decimal import Context, Decimal


def plain_decimal(value: Decimal) -> str:
    """``value`` in its one plain spelling (see the module docstring); ``NaN``/``Infinity``
    as Python spells them."""
    if not value.is_finite():
        return str(value)
    if value.is_zero():
        return "0"
    digits = len(value.as_tuple().digits)
    return f"{value.normalize(Context(prec=digits)):f}"
