"""A safe stretch's equity from exact integers (:func:`~cryptomon.backtest.stretch.exact_floats`)
is the float of the Decimal sum the engine marks (the exact mid of the quote's bid and ask,
:func:`~cryptomon.decimals.decimal_mid`), row for row, or refused."""

from __future__ import annotations

from decimal import Decimal, localcontext

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from cryptomon.backtest.stretch import close_mids, exact_floats, scaled_mids
from cryptomon.backtest.synth import grid_quote, grid_unit
from cryptomon.config import Settings
from cryptomon.decimals import decimal_mid
from tests.unit.backtest.conftest import random_walk

DECIMALS = st.decimals(
    min_value=Decimal("-1e9"), max_value=Decimal("1e9"), allow_nan=False, places=None
).filter(lambda d: d.is_finite())


def _marked(cash: Decimal, amount: Decimal, quotes: list[tuple[float, float]]) -> list[float]:
    """What the engine's marks give, one Decimal sum per quote's mid."""
    return [float(cash + amount * decimal_mid(bid, ask)) for bid, ask in quotes]


@hyp_settings(max_examples=300, deadline=None)
@given(
    cash=DECIMALS,
    amount=DECIMALS,
    places=st.integers(0, 9),
    quotes=st.lists(
        st.tuples(st.floats(0.0, 2e6, allow_nan=False), st.floats(0.0, 1e3, allow_nan=False)),
        min_size=1,
        max_size=30,
    ),
)
def test_exact_floats_are_the_decimal_marks(
    cash: Decimal, amount: Decimal, places: int, quotes: list[tuple[float, float]]
) -> None:
    """Bids and spreads rounded to ``places`` decimals (or raw floats beyond 8), the asks
    their float sums: every row exact at the scale found is the exact mid of the decimals
    the bid and ask print as (decimal_mid), and the floats, when given (not refused), are
    the Decimal sums' floats; partial gives them for the exact rows and None for the
    others."""
    raw = np.asarray(quotes)
    if places <= 8:
        raw = np.round(raw, places)
    bids, asks = raw[:, 0], raw[:, 0] + raw[:, 1]
    scaled = scaled_mids(bids, asks)
    pairs = list(zip(bids.tolist(), asks.tolist(), strict=True))
    exact = [scaled.inexact[r + 1] == scaled.inexact[r] for r in range(len(pairs))]
    for row, (bid, ask) in enumerate(pairs):
        if exact[row]:
            assert Decimal(scaled.ints[row]).scaleb(-scaled.places) == decimal_mid(bid, ask)
    want = _marked(cash, amount, pairs)
    got = exact_floats(cash, amount, scaled, 0, len(pairs))
    if got is not None:
        assert all(exact)
        assert got == want
    some = exact_floats(cash, amount, scaled, 0, len(pairs), partial=True)
    if some is not None:
        assert some == [w if e else None for w, e in zip(want, exact, strict=True)]


def test_a_noisy_quote_is_marked_at_its_exact_mid() -> None:
    """59976.48 / 59976.50 is marked 59976.49 (the float average is 59976.490000000005), at
    the scale of the quotes' decimals and one more (a half cent)."""
    bids, asks = np.array([59976.48, 59976.47]), np.array([59976.50, 59976.50])
    assert (bids[0] + asks[0]) / 2 == 59976.490000000005
    scaled = scaled_mids(bids, asks)
    assert scaled.places == 3
    assert [Decimal(m).scaleb(-3) for m in scaled.ints] == [
        Decimal("59976.49"),
        Decimal("59976.485"),
    ]
    cash, amount = Decimal(1000), Decimal(2)
    assert exact_floats(cash, amount, scaled, 0, 2) == [120952.98, 120952.97]


def test_a_stretch_beyond_the_precision_or_with_an_inexact_mid_is_refused() -> None:
    """A sum with more digits than the context's precision would round: refused; so is a
    stretch with a quote that is not exact at the series' scale (partial: that row only);
    the rows around it are not."""
    cash, amount = Decimal("8998.5121990263400"), Decimal("0.03320")
    bids = np.array([30124.70, 30124.71, 0.1 + 0.2, 30124.73])
    asks = np.array([30124.72, 30124.73, 0.4, 30124.75])
    pairs = list(zip(bids.tolist(), asks.tolist(), strict=True))
    scaled = scaled_mids(bids, asks)
    assert scaled.places == 3
    assert exact_floats(cash, amount, scaled, 0, 2) == _marked(cash, amount, pairs[:2])
    assert exact_floats(cash, amount, scaled, 1, 3) is None
    assert exact_floats(cash, amount, scaled, 1, 3, partial=True) == [
        *_marked(cash, amount, pairs[1:2]),
        None,
    ]
    assert exact_floats(cash, amount, scaled, 3, 4) == _marked(cash, amount, pairs[3:])
    with localcontext() as ctx:
        ctx.prec = 20  # cash has 17 digits, the sum's 19 at most: fits
        assert exact_floats(cash, amount, scaled, 0, 1) is not None
        ctx.prec = 12
        assert exact_floats(cash, amount, scaled, 0, 1) is None


@pytest.mark.parametrize(("tick", "all_exact"), [(0.01, True), (0.3, False)])
def test_the_close_marks_are_the_engines_exact_mids(tick: float, all_exact: bool) -> None:
    """CloseMids.mark of every row is the Decimal the engine marks the row's close quote
    with (decimal_mid of the bid and ask the candle path publishes, float by float). On a
    tick that is a whole fraction of 1 the quotes are on its grid and every row comes from
    the scaled integers; on another (0.3: no grid) the quotes carry float noise and those
    rows come from the quote's decimals (both kinds occur)."""
    series = random_walk(3000)
    cfg = Settings.model_validate(
        {"backtest": {"slippage_bps": 5.0, "slippage_range_fraction": 0.1}}
    ).backtest
    mids = close_mids(series, cfg, tick)
    inexact = mids.scaled.inexact
    if all_exact:
        assert inexact[-1] == 0
    else:
        assert 0 < inexact[-1] < len(series.close)
    unit = grid_unit(tick)
    for row in range(len(series.close)):
        price = float(series.close[row])
        span = float(series.high[row] - series.low[row])
        half = max(price * cfg.slippage_bps / 10_000.0, cfg.slippage_range_fraction * span)
        bid, ask = grid_quote(price, half, unit)
        if all_exact:  # on the grid: the float prints as a multiple of the tick
            assert Decimal(repr(bid)) % Decimal("0.01") == 0
            assert Decimal(repr(ask)) % Decimal("0.01") == 0
        assert mids.values[row] == (bid + ask) / 2
        assert mids.mark(row) == decimal_mid(bid, ask), row
