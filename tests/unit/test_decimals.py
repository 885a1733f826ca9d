"""float_decimal: the Decimal a float prints as, remembered for the floats an order converts
again and again, never mixing equal keys that print differently; decimal_mid: the exact mid
of two quoted prices."""

from __future__ import annotations

import random
from decimal import Decimal

from cryptomon import decimals
from cryptomon.decimals import FLOAT_CACHE_SIZE, decimal_mid, float_decimal


def test_the_decimal_a_float_prints_as() -> None:
    rng = random.Random(5)
    values = [0.1, 1.0, 1e-05, 30123.45, 1e12, -2.5, 1e-300, 7.0e22, float("inf"), float("-inf")]
    values += [rng.uniform(-1e6, 1e6) for _ in range(500)]
    for value in values + values:  # the second time from memory
        assert str(float_decimal(value)) == str(Decimal(str(value))), value


def test_a_float_converted_again_is_remembered() -> None:
    first = float_decimal(31337.17)
    assert float_decimal(31337.17) is first
    assert float_decimal(31337.0 + 0.17) is first  # an equal float, however it was made


def test_zeros_ints_and_other_types_are_not_mixed_up() -> None:
    """0.0 and -0.0, 1 and 1.0 are equal dict keys but print differently: each keeps its own
    spelling whichever was converted first; NaN and non-floats convert as before."""
    assert str(float_decimal(0.0)) == "0.0"
    assert str(float_decimal(-0.0)) == "-0.0"
    assert str(float_decimal(0.0)) == "0.0"
    assert str(float_decimal(1.0)) == "1.0"
    assert str(float_decimal(1)) == "1"
    assert str(float_decimal(5)) == "5"
    assert str(float_decimal(5.0)) == "5.0"
    assert float_decimal(float("nan")).is_nan()
    assert float_decimal(Decimal("2.50")) == Decimal("2.50")
    assert str(float_decimal(Decimal("2.50"))) == "2.50"


def test_the_memory_stays_bounded() -> None:
    for i in range(FLOAT_CACHE_SIZE * 2 + 7):
        float_decimal(1000.0 + i / 64)
        assert len(decimals._floats) <= FLOAT_CACHE_SIZE
    assert str(float_decimal(1000.5)) == "1000.5"


def test_the_mid_of_two_quoted_prices_is_exact() -> None:
    """Half the sum of the Decimals the prices print as, at the prices' own decimals where
    it can (no trailing zero), one more where the half needs it; the float average's noise
    never shows."""
    assert (59976.48 + 59976.50) / 2 == 59976.490000000005
    assert str(decimal_mid(59976.48, 59976.50)) == "59976.49"
    assert str(decimal_mid(59976.47, 59976.50)) == "59976.485"
    assert str(decimal_mid(0.1, 0.2)) == "0.15"
    assert str(decimal_mid(100.0, 100.2)) == "100.1"
    assert str(decimal_mid(1e-08, 3e-08)) == "2E-8"
    rng = random.Random(7)
    for _ in range(500):
        bid = round(rng.uniform(0.01, 1e5), rng.randint(0, 8))
        ask = round(bid + rng.uniform(0, 10), rng.randint(0, 8))
        mid = decimal_mid(bid, ask)
        assert mid * 2 == Decimal(repr(bid)) + Decimal(repr(ask))  # exact, not rounded
