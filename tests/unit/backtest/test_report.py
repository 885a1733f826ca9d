"""The backtest report's figures: the equity chart's drawdown reads as a negative percentage
below zero, on an axis titled with its unit."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from cryptomon.backtest.report import equity_figure
from tests.unit.backtest.test_stats import result


def _drawdown(fig: Any) -> Any:
    return next(t for t in fig.data if t.name.startswith("drawdown"))


def test_the_drawdown_is_a_negative_percentage_below_zero_on_a_titled_axis() -> None:
    """Equity 1100, 1045, 1149.5, 1034.55 from 1000: drawdown 0, -5, 0, -10 %; its axis is
    titled with the unit, ends at 0 at the top (never above zero) and shows the worst fall;
    the equity axis names the account currency."""
    fig = equity_figure(result())
    dd = _drawdown(fig)
    assert np.allclose(dd.y, [0.0, -5.0, 0.0, -10.0])
    axis = fig.layout[dd.yaxis.replace("y", "yaxis")]
    assert axis.title.text == "drawdown (%)"
    assert axis.range[1] == 0
    assert axis.range[0] < -10
    assert fig.layout.yaxis.title.text == "equity (BTC)"


def test_no_drawdown_keeps_the_axis_below_zero() -> None:
    """An equity that only rises: every drawdown point is 0 and the axis still runs from a
    negative value to 0 (autorange would centre it on 0 and show a positive half)."""
    rising = replace(result(), equity=np.array([1000.0, 1010.0, 1020.0, 1030.0]))
    fig = equity_figure(rising)
    dd = _drawdown(fig)
    assert list(dd.y) == [0.0, 0.0, 0.0, 0.0]
    axis = fig.layout[dd.yaxis.replace("y", "yaxis")]
    assert axis.range[1] == 0
    assert axis.range[0] < 0
