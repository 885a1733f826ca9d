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


def test_the_trade_list_shows_prices_and_pnl_at_a_readable_precision() -> None:
    """The trades table printed each Decimal string whole: a quote's float arithmetic
    (``0.0015974683349999999``) and a PnL of 30 digits. Prices show 12 significant digits,
    PnL and fees 6 (as the summary), and each row its amount and PnL %; the JSON and the
    stored run keep the exact strings."""
    import html
    import re

    from cryptomon.backtest.report import render
    from cryptomon.backtest.stats import result_document

    run = result()
    document = result_document(run)
    trade = document["trades"][0]
    trade.update(
        entry_price="0.0015974683349999999",
        exit_price="0.0015786508000000002",
        amount="257.72398791",
        pnl="-0.00422658857492308782101870880",
        fees="0.00099806030867120138115",
        pnl_pct=-1.1780346361,
    )
    page = render(run, document, "t")
    table = page.split("<h2>Trades</h2>", 1)[1]
    header = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", table)]
    first = re.search(r"</tr><tr>(.*?)</tr>", table)
    assert first is not None
    cells = dict(zip(header, re.findall(r"<td>(.*?)</td>", first.group(1)), strict=True))
    assert cells["entry_price"] == "0.001597468335"
    assert cells["exit_price"] == "0.0015786508"
    assert cells["amount"] == "257.72398791"
    assert cells["pnl"] == "-0.00422659"
    assert cells["fees"] == "0.00099806"
    assert cells["pnl %"] == "-1.18"
    assert trade["entry_price"] == "0.0015974683349999999"  # the document keeps them exact
