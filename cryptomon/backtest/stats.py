"""The summary of a backtest: trade statistics, risk-adjusted returns and buy and hold.

Definitions (PnL is net of fees and, on contracts, of funding, in the quote currency of the
paper balance: :attr:`~cryptomon.backtest.ledger.RoundTrip.net`):

- win rate: trades with PnL > 0 / trades; profit factor: gross profit / gross loss
  (None without a losing trade); expectancy: mean PnL per trade;
- daily returns: the equity at the end of each UTC day (the starting balance before the first)
  as simple returns; Sharpe = mean / std (ddof 1) * sqrt(365), Sortino = mean / downside
  deviation (root mean square of the negative returns, over all days) * sqrt(365), zero
  risk-free rate (None with fewer than two days or no dispersion);
- max drawdown: the largest fall of equity from a running peak, as a fraction of the peak;
  its duration runs from that peak to the recovery of it (or the end of the data);
- Calmar: annualized return ((final / start) ** (365 / days) - 1, None under a day of
  data) / max drawdown;
- exposure: the fraction of candles that ended with a position open;
- buy and hold: the last close over the first open of each market, averaged over markets;
- open at end: markets with a position still open when the data ends; their open PnL is the
  final equity - the starting balance - PnL (in the return, not in PnL or the trades).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import numpy as np

from cryptomon.backtest.ledger import RoundTrip
from cryptomon.backtest.result import BacktestResult
from cryptomon.events import Fill

ZERO = Decimal(0)
DAY = 86400.0


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 or not math.isfinite(num / den) else num / den


def trade_stats(trades: list[RoundTrip], starting_balance: float) -> dict[str, Any]:
    """Counts, PnL, fees, profit factor, expectancy, durations, best and worst trade."""
    pnls = [t.net for t in trades]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    total = sum(pnls, ZERO)
    gross_profit = sum(wins, ZERO)
    gross_loss = -sum(losses, ZERO)
    durations = [(t.exit_ts or t.entry_ts) - t.entry_ts for t in trades]
    return {
        "trades": len(trades),
        "wins": len(wins),
        "losses": len(losses),
        "win_rate": len(wins) / len(trades) if trades else 0.0,
        "pnl": float(total),
        "pnl_pct": float(total) / starting_balance * 100 if starting_balance else 0.0,
        "fees": float(sum((t.quote_fees for t in trades), ZERO)),
        "profit_factor": _ratio(float(gross_profit), float(gross_loss)),
        "expectancy": float(total) / len(trades) if trades else 0.0,
        "avg_trade_s": sum(durations) / len(durations) if durations else 0.0,
        "longest_trade_s": max(durations, default=0.0),
        "best_trade": float(max(pnls)) if pnls else None,
        "worst_trade": float(min(pnls)) if pnls else None,
    }


def open_markets(fills: Iterable[Fill]) -> int:
    """Markets whose fills do not net to zero: a position still open at the end."""
    net: dict[tuple[str, str], Decimal] = {}
    for f in fills:
        key = (f.exchange, f.symbol)
        net[key] = net.get(key, ZERO) + (f.amount if f.side == "buy" else -f.amount)
    return sum(1 for amount in net.values() if amount != 0)


def close_day(ts: np.ndarray) -> np.ndarray:
    """The UTC day number (epoch days) each equity time ends: a candle closing at midnight
    ends the day before it (``floor((ts - 1e-9) / DAY)`` meant that, but 1e-9 is below the
    resolution of an epoch float, so such a candle counted in the next day)."""
    return np.ceil(ts / DAY) - 1


def daily_returns(ts: np.ndarray, equity: np.ndarray, starting_balance: float) -> np.ndarray:
    """Simple returns of the equity at the end of each UTC day with data."""
    if ts.shape[0] == 0:
        return np.empty(0)
    day = close_day(ts)
    last = np.append(np.nonzero(np.diff(day))[0], ts.shape[0] - 1)
    closes = np.concatenate([[starting_balance], equity[last]])
    return np.diff(closes) / closes[:-1]


def sharpe_sortino(returns: np.ndarray) -> tuple[float | None, float | None]:
    """Annualized (sqrt(365)) Sharpe and Sortino of daily returns, zero risk-free rate."""
    if returns.shape[0] < 2:
        return None, None
    mean = float(np.mean(returns))
    std = float(np.std(returns, ddof=1))
    downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)))
    scale = math.sqrt(365.0)
    sharpe = mean / std * scale if std > 0 else None
    sortino = mean / downside * scale if downside > 0 else None
    return sharpe, sortino


def max_drawdown(ts: np.ndarray, equity: np.ndarray, start: float) -> tuple[float, float]:
    """(max drawdown fraction, its duration in seconds from the peak to the recovery)."""
    if equity.shape[0] == 0:
        return 0.0, 0.0
    values = np.concatenate([[start], equity])
    times = np.concatenate([[ts[0]], ts])
    peaks = np.maximum.accumulate(values)
    dd = (peaks - values) / peaks
    worst = int(np.argmax(dd))
    if dd[worst] <= 0:
        return 0.0, 0.0
    peak_at = int(np.nonzero(values[: worst + 1] == peaks[worst])[0][-1])
    after = np.nonzero(values[worst:] >= peaks[worst])[0]
    end_at = worst + int(after[0]) if after.shape[0] else values.shape[0] - 1
    return float(dd[worst]), float(times[end_at] - times[peak_at])


def buy_and_hold(result: BacktestResult) -> float:
    """Mean over markets of last close / first open - 1, in %."""
    moves = [float(s.close[-1] / s.open[0] - 1) for s in result.series if len(s)]
    return sum(moves) / len(moves) * 100 if moves else 0.0


def annualized(growth: float, days: float) -> float | None:
    """``growth ** (365 / days) - 1``; None under a day of data or when it overflows."""
    if days < 1.0:
        return None
    if growth <= 0:
        return -1.0
    try:
        value = growth ** (365.0 / days) - 1
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def summarize(result: BacktestResult) -> dict[str, Any]:
    """The summary block of a run (see the module docstring for the definitions)."""
    start_ts = min((float(s.ts[0]) for s in result.series if len(s)), default=0.0)
    end_ts = float(result.equity_ts[-1]) if result.equity_ts.shape[0] else start_ts
    days = max((end_ts - start_ts) / DAY, 1e-9)
    start = result.starting_balance
    final = float(result.equity[-1]) if result.equity.shape[0] else start
    sharpe, sortino = sharpe_sortino(daily_returns(result.equity_ts, result.equity, start))
    mdd, mdd_s = max_drawdown(result.equity_ts, result.equity, start)
    annual = annualized(final / start if start > 0 else 0.0, days)
    out = {
        "start": start_ts,
        "end": end_ts,
        "days": round(days, 6),
        "quote": result.quote,
        "starting_balance": start,
        "final_equity": final,
        "candles": result.candles,
        "signals": result.signals,
        "anomalies": len(result.anomalies),
        # why signals made no trade: the orders placed, those the risk checks refused (by
        # check) and those the broker rejected (by reason), and what the signals came to (an
        # order, a refused order, or nothing)
        "orders": result.orders,
        "refused": sum(result.refused.values()),
        "refused_by_check": dict(result.refused),
        "rejected": sum(result.rejected.values()),
        "rejected_by_reason": dict(result.rejected),
        "signals_ordered": result.signal_orders,
        "signals_refused": result.signals_refused,
        "signals_not_acted": max(0, result.signals - result.signal_orders - result.signals_refused),
        # why the engine made no order of them (keys: cryptomon.trading.entries.NOT_ACTED),
        # most first: they add up to signals_not_acted
        "not_acted_by_reason": dict(
            sorted(result.not_acted.items(), key=lambda kv: (-kv[1], kv[0]))
        ),
    }
    closed = trade_stats(result.trades, start)
    out.update(closed)
    # PnL counts closed trades; the equity (return) marks what is still open at the end
    open_at_end = open_markets(result.fills)
    out["open_at_end"] = open_at_end
    out["open_pnl"] = final - start - float(closed["pnl"]) if open_at_end else 0.0
    out.update(
        {
            "return_pct": (final / start - 1) * 100 if start else 0.0,
            "annualized_return_pct": None if annual is None else annual * 100,
            "sharpe": sharpe,
            "sortino": sortino,
            "max_drawdown_pct": mdd * 100,
            "max_drawdown_s": mdd_s,
            "calmar": _ratio(annual, mdd) if mdd > 0 and annual is not None else None,
            "exposure_pct": float(np.mean(result.exposure)) * 100 if result.candles else 0.0,
            "buy_and_hold_pct": buy_and_hold(result),
        }
    )
    return out


def breakdown(trades: Iterable[RoundTrip], key: str) -> dict[str, dict[str, Any]]:
    """Trades, win rate, PnL and fees grouped by market (``symbol``: exchange and symbol,
    named ``binance BTC-USDT``, the row with its ``exchange`` and ``symbol``; one symbol on two
    exchanges is two rows) or by ``source`` (with the anomaly kind that caused it, e.g.
    ``rule:momentum/volume``)."""
    groups: dict[str, list[RoundTrip]] = {}
    for t in trades:
        name = f"{t.exchange} {t.symbol}" if key == "symbol" else _source_name(t)
        groups.setdefault(name, []).append(t)
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(groups):
        items = groups[name]
        pnl = sum((t.net for t in items), ZERO)
        market = {"exchange": items[0].exchange, "symbol": items[0].symbol}
        out[name] = {
            **(market if key == "symbol" else {}),
            "trades": len(items),
            "win_rate": sum(1 for t in items if t.net > 0) / len(items),
            "pnl": float(pnl),
            "fees": float(sum((t.quote_fees for t in items), ZERO)),
        }
    return out


def _source_name(trip: RoundTrip) -> str:
    return f"{trip.source}/{trip.anomaly_kind}" if trip.anomaly_kind else trip.source


def result_document(result: BacktestResult) -> dict[str, Any]:
    """Everything ``--json`` prints and the store keeps: summary, breakdowns, trades."""
    return {
        "summary": summarize(result),
        "by_symbol": breakdown(result.trades, "symbol"),
        "by_source": breakdown(result.trades, "source"),
        "trades": [t.as_dict() for t in result.trades],
        "digest": result.digest(),
        "params": result.params,
    }
