"""The backtest report: one self-contained HTML file with plotly figures (DESIGN.md section 9).

plotly.js is inlined from the installed ``plotly`` package (``get_plotlyjs``), so the file opens
offline. Figures: price candles per market with entry and exit markers (the hover text names
the signal source and the anomaly that caused the entry), equity with its drawdown, PnL per
trade, monthly returns; then the summary and breakdown tables and the trade list.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np

from cryptomon.backtest.data import CandleSeries
from cryptomon.backtest.result import BacktestResult
from cryptomon.backtest.stats import DAY, close_day

MAX_BARS = 4000  # candles per chart; longer series are merged into coarser bars


def _dt(ts: np.ndarray | list[float]) -> list[str]:
    return [datetime.fromtimestamp(float(t), UTC).strftime("%Y-%m-%d %H:%M") for t in ts]


def _coarse(series: CandleSeries) -> tuple[np.ndarray, ...]:
    """(ts, open, high, low, close) with at most MAX_BARS bars."""
    n = len(series)
    k = max(1, math.ceil(n / MAX_BARS))
    if k == 1:
        return series.ts, series.open, series.high, series.low, series.close
    idx = np.arange(0, n, k)
    last = np.append(idx[1:], n) - 1
    return (
        series.ts[idx],
        series.open[idx],
        np.maximum.reduceat(series.high, idx),
        np.minimum.reduceat(series.low, idx),
        series.close[last],
    )


def candles_figure(result: BacktestResult, series: CandleSeries) -> Any:
    import plotly.graph_objects as go

    ts, op, hi, lo, cl = _coarse(series)
    fig = go.Figure(
        go.Candlestick(x=_dt(ts), open=op, high=hi, low=lo, close=cl, name=series.symbol)
    )
    trips = [t for t in result.trades if (t.exchange, t.symbol) == (series.exchange, series.symbol)]
    for label, color, symbol, pick in (
        ("entry", "#1f77b4", "triangle-up", lambda t: (t.entry_ts, t.entry_price)),
        ("exit", "#d62728", "x", lambda t: (t.exit_ts or t.entry_ts, t.exit_price)),
    ):
        points = [pick(t) for t in trips]
        text = [
            f"{t.side} {label}: {t.source}"
            + (f" ({t.anomaly_kind} anomaly)" if t.anomaly_kind else "")
            + (f", {t.exit_reason}, PnL {float(t.net):.6g}" if label == "exit" else "")
            for t in trips
        ]
        fig.add_trace(
            go.Scatter(
                x=_dt([p[0] for p in points]),
                y=[float(p[1]) for p in points],
                mode="markers",
                name=label,
                text=text,
                marker={"color": color, "symbol": symbol, "size": 9},
            )
        )
    fig.update_layout(
        title=f"{series.exchange} {series.symbol} {series.timeframe}",
        xaxis_rangeslider_visible=False,
        height=460,
    )
    return fig


def equity_figure(result: BacktestResult) -> Any:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    eq = result.equity
    dd = drawdown_pct(eq, result.starting_balance)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3])
    x = _dt(result.equity_ts)
    fig.add_trace(go.Scatter(x=x, y=eq, name=f"equity ({result.quote})"), row=1, col=1)
    fig.add_trace(
        go.Scatter(x=x, y=dd, name="drawdown (%)", fill="tozeroy", line={"color": "#d62728"}),
        row=2,
        col=1,
    )
    fig.update_yaxes(title_text=f"equity ({result.quote})", row=1, col=1)
    # below zero, as the dashboard's trading view draws it: 0 at the top, the worst fall at
    # the bottom (with no fall, autorange would centre a flat 0 and show a positive half)
    worst = float(dd.min()) if dd.shape[0] else 0.0
    fig.update_yaxes(
        title_text="drawdown (%)",
        range=[worst * 1.1 if worst < 0 else -1.0, 0.0],
        row=2,
        col=1,
    )
    fig.update_layout(title="Equity and drawdown", height=460)
    return fig


def drawdown_pct(equity: np.ndarray, start: float) -> np.ndarray:
    """The fall of ``equity`` below its running peak (``start`` the first peak), in % of the
    peak: 0 at a peak, negative below it (-10.0 is 10 % under the peak)."""
    if equity.shape[0] == 0:
        return equity
    peaks = np.maximum.accumulate(np.concatenate([[start], equity]))[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peaks > 0, (equity - peaks) / peaks * 100, 0.0)
    return dd + 0.0  # -0.0 (a peak equal to the equity) as 0.0


def pnl_figure(result: BacktestResult) -> Any:
    import plotly.graph_objects as go

    pnl = [float(t.net) for t in result.trades]
    colors = ["#2ca02c" if p > 0 else "#d62728" for p in pnl]
    fig = go.Figure(go.Bar(x=list(range(1, len(pnl) + 1)), y=pnl, marker_color=colors, name="PnL"))
    fig.update_layout(title=f"PnL per trade ({result.quote})", xaxis_title="trade", height=360)
    return fig


def monthly_returns(result: BacktestResult) -> tuple[list[str], list[float]]:
    """(YYYY-MM, return %) of the equity from month end to month end."""
    months: list[str] = []
    values: list[float] = []
    prev = result.starting_balance
    labels = [  # the month of the day each equity time ends (stats.close_day)
        datetime.fromtimestamp(float(d) * DAY, UTC).strftime("%Y-%m")
        for d in close_day(result.equity_ts)
    ]
    for i, label in enumerate(labels):
        if i + 1 == len(labels) or labels[i + 1] != label:
            value = float(result.equity[i])
            months.append(label)
            values.append((value / prev - 1) * 100 if prev else 0.0)
            prev = value
    return months, values


def monthly_figure(result: BacktestResult) -> Any:
    import plotly.graph_objects as go

    months, values = monthly_returns(result)
    colors = ["#2ca02c" if v > 0 else "#d62728" for v in values]
    fig = go.Figure(go.Bar(x=months, y=values, marker_color=colors, name="return %"))
    # the labels are months, not instants: on a date axis one bar stood at sub-millisecond
    # ticks of the month's first instant and its month was named nowhere
    fig.update_layout(title="Monthly returns (%)", height=320, xaxis_type="category")
    return fig


def _table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, dict):  # counts by name (refused_by_check)
        return ", ".join(f"{k} {n}" for k, n in v.items()) or "-"
    if isinstance(v, list):  # texts (warnings)
        return "; ".join(str(x) for x in v) or "-"
    return "-" if v is None else str(v)


def _digits(value: Any, digits: int) -> str:
    """A Decimal string to ``digits`` significant digits (``-`` for none)."""
    if value is None:
        return "-"
    return format(float(value), f".{digits}g")


def _grid(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


STYLE = """body{font-family:system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0 24px}th,td{border:1px solid #ddd;padding:3px 8px;
text-align:left;font-size:13px}th{background:#f4f4f4}h1{font-size:22px}h2{font-size:18px}"""


def render(result: BacktestResult, document: dict[str, Any], title: str) -> str:
    """The whole report as one HTML string (plotly.js inlined)."""
    from plotly.offline import get_plotlyjs

    figures = [candles_figure(result, s) for s in result.series]
    figures += [equity_figure(result), pnl_figure(result), monthly_figure(result)]
    charts = "\n".join(
        f.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart{i}")
        for i, f in enumerate(figures)
    )
    summary = document["summary"]
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Summary</h2>",
        _table(
            [(k, _dt([v])[0] + " UTC" if k in ("start", "end") else v) for k, v in summary.items()]
        ),
        charts,
    ]
    for name, what in (("by_symbol", "market"), ("by_source", "source")):
        data = document[name]
        parts.append(f"<h2>Breakdown by {what}</h2>")
        parts.append(
            _grid(
                [what, "trades", "win rate", "PnL", "fees"],
                [[k, v["trades"], v["win_rate"], v["pnl"], v["fees"]] for k, v in data.items()],
            )
        )
    # the document's Decimal strings are exact (a quote's float arithmetic shows as
    # 0.0015974683349999999): prices to 12 significant digits, PnL and fees to 6 as the
    # summary; the amount as it is (a lot multiple)
    fields = ["exchange", "symbol", "side", "source", "amount", "entry_price", "exit_price"]
    fields += ["fees", "pnl", "pnl %", "exit_reason"]
    parts.append("<h2>Trades</h2>")
    parts.append(
        _grid(
            ["entry", "exit", *fields],
            [
                [
                    *_dt([t["entry_ts"], t["exit_ts"] or t["entry_ts"]]),
                    *(t[f] for f in fields[:5]),
                    _digits(t["entry_price"], 12),
                    _digits(t["exit_price"], 12),
                    _digits(t["fees"], 6),
                    _digits(t["pnl"], 6),
                    f"{t['pnl_pct']:.2f}",
                    t["exit_reason"],
                ]
                for t in document["trades"]
            ],
        )
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>" + "\n".join(parts) + "</body></html>"
    )
