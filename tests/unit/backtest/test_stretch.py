"""A safe stretch's equity from exact integers (:func:`~cryptomon.backtest.stretch.exact_floats`)
is the float of the Decimal sum the engine marks, row for row, or refused."""

from __future__ import annotations

from decimal import Decimal, localcontext

import numpy as np
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from cryptomon.backtest.stretch import exact_floats, scaled_mids
from cryptomon.trading.context import to_decimal

DECIMALS = st.decimals(
    min_value=Decimal("-1e9"), max_value=Decimal("1e9"), allow_nan=False, places=None
).filter(lambda d: d.is_finite())


def _marked(cash: Decimal, amount: Decimal, mids: list[float]) -> list[float]:
    """What the engine's marks give, one Decimal sum per mid."""
    return [float(cash + amount * to_decimal(mid)) for mid in mids]


@hyp_settings(max_examples=300, deadline=None)
@given(
    cash=DECIMALS,
    amount=DECIMALS,
    places=st.integers(0, 9),
    mids=st.lists(st.floats(0.0, 2e6, allow_nan=False), min_size=1, max_size=30),
)
def test_exact_floats_are_the_decimal_marks(
    cash: Decimal, amount: Decimal, places: int, mids: list[float]
) -> None:
    """Mids rounded to ``places`` decimals (or raw floats beyond 8): every row exact at
    the scale found is the decimal its repr gives, and the floats, when given (not
    refused), are the Decimal sums' floats."""
    values = np.asarray(mids) if places > 8 else np.round(np.asarray(mids), places)
    scaled = scaled_mids(values)
    for row, mid in enumerate(values.tolist()):
        if scaled.inexact[row + 1] == scaled.inexact[row]:
            assert Decimal(scaled.ints[row]).scaleb(-scaled.places) == to_decimal(mid)
    got = exact_floats(cash, amount, scaled, 0, len(mids))
    if got is not None:
        assert got == _marked(cash, amount, values.tolist())


def test_a_stretch_beyond_the_precision_or_with_an_inexact_mid_is_refused() -> None:
    """A sum with more digits than the context's precision would round: refused; so is a
    stretch with a mid that is not exact at the series' scale; the rows around it are not."""
    cash, amount = Decimal("8998.5121990263400"), Decimal("0.03320")
    values = np.array([30124.71, 30124.72, 0.1 + 0.2, 30124.74])
    scaled = scaled_mids(values)
    assert scaled.places == 2
    assert exact_floats(cash, amount, scaled, 0, 2) == _marked(cash, amount, [30124.71, 30124.72])
    assert exact_floats(cash, amount, scaled, 1, 3) is None
    assert exact_floats(cash, amount, scaled, 3, 4) == _marked(cash, amount, [30124.74])
    with localcontext() as ctx:
        ctx.prec = 20  # cash has 17 digits, the sum's 19 at most: fits
        assert exact_floats(cash, amount, scaled, 0, 1) is not None
        ctx.prec = 12
        assert exact_floats(cash, amount, scaled, 0, 1) is None
