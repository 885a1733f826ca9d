"""The fast path's columns (:func:`~cryptomon.backtest.data.columns`): the values of an array
as ``tolist`` gives them, a snapshot, read-only, without a Python object per row."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from cryptomon.backtest.data import columns

ROWS = 525_600  # a year of one-minute candles


def _arrays() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    values = rng.normal(30_000.0, 500.0, size=(3, 1_000))
    return [
        values[0],  # float64
        np.cumsum(values[1] > 30_000.0),  # int64 (prefix counts)
        values[2] > 30_000.0,  # bool
        np.flatnonzero(values[0] > 30_000.0),  # int64 rows
        values[:, 7],  # a strided view: a column of a 2-D array
        values[1] - values[2],  # a temporary
        np.array([0.1, -0.0, np.inf, -np.inf, 5e-324]),  # edge floats
        np.empty(0),
    ]


@pytest.mark.parametrize("values", _arrays(), ids=lambda a: f"{a.dtype}[{a.shape[0]}]")
def test_a_column_reads_as_the_arrays_python_values(values: np.ndarray) -> None:
    col = columns(values)
    want = values.tolist()
    assert len(col) == len(want)
    got = [col[i] for i in range(len(col))]
    assert got == want
    assert [type(v) for v in got] == [type(v) for v in want]
    assert [repr(v) for v in col] == [repr(v) for v in want]  # iteration; -0.0 kept
    assert list(col[1:-1]) == want[1:-1]  # slices too
    if want:
        assert col[-1] == want[-1]


def test_a_column_is_a_read_only_snapshot() -> None:
    values = np.arange(10.0)
    col = columns(values)
    values[3] = -1.0  # the array changes after the column was made: the column does not
    assert col[3] == 3.0
    with pytest.raises(TypeError):
        col[0] = 1.0  # type: ignore[index]


def test_a_year_long_column_holds_no_object_per_row() -> None:
    """A tuple of a year's floats held ~525k Python floats (~4 MB of pointers alone, ~10-100
    ms to make): a column is one buffer."""
    col = columns(np.linspace(1.0, 2.0, ROWS))
    assert sys.getsizeof(col) < 1_024
    assert col[ROWS - 1] == 2.0
