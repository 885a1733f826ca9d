"""What a backtest run produced (:class:`BacktestResult`) and the settings it runs with."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cryptomon.backtest.data import CandleSeries, infer_instrument
from cryptomon.backtest.ledger import RoundTrip
from cryptomon.backtest.pipeline import Pipeline
from cryptomon.config import Settings
from cryptomon.events import Anomaly, Fill


@dataclass(slots=True, repr=False)
class BacktestResult:
    """What one run produced; :mod:`cryptomon.backtest.stats` summarizes it."""

    series: list[CandleSeries]
    trades: list[RoundTrip]
    fills: list[Fill]
    anomalies: list[Anomaly]
    signals: int
    equity_ts: np.ndarray
    equity: np.ndarray
    exposure: np.ndarray  # 1.0 where a position was open at the candle's end
    starting_balance: float
    quote: str
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    candles: int = 0
    # the settings the run used (backtest_settings: auto trading on, paper, the data's
    # indicator interval, inferred tick and lot): what its params record
    settings: Settings | None = None
    orders: int = 0  # order intents placed (they passed the risk checks)
    signal_orders: int = 0  # of them, the signals' entries and closes
    refused: dict[str, int] = field(default_factory=dict)  # refused orders by risk check
    signals_refused: int = 0  # signals whose order the risk checks refused
    rejected: dict[str, int] = field(default_factory=dict)  # by the broker, by reason
    # signals that came to neither an order nor a refusal, by the engine's reason
    # (cryptomon.trading.entries.NOT_ACTED)
    not_acted: dict[str, int] = field(default_factory=dict)

    def __repr__(self) -> str:
        """Counts only: ``asyncio.run`` formats the finished task (its result) twice while
        restoring the SIGINT handler, and a year's fills, trades and anomalies print as
        megabytes (tenths of a second)."""
        return (
            f"BacktestResult(candles={self.candles}, trades={len(self.trades)}, "
            f"fills={len(self.fills)}, anomalies={len(self.anomalies)}, "
            f"signals={self.signals}, seconds={self.seconds:.2f})"
        )

    def digest(self) -> str:
        """sha256 of the orders and fills (ids aside, those are random): equal runs, equal hash."""
        rows = [
            [f.ts, f.exchange, f.symbol, f.side, str(f.amount), str(f.price), str(f.fee)]
            for f in self.fills
        ]
        rows += [[t.symbol, t.side, t.source, str(t.pnl), t.exit_reason] for t in self.trades]
        return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def make_result(
    pipe: Pipeline,
    *,
    series: list[CandleSeries],
    equity: tuple[np.ndarray, np.ndarray, np.ndarray],
    seconds: float,
) -> BacktestResult:
    """The result of a finished run of ``pipe``."""
    paper = pipe.settings.trading.paper
    ledger = pipe.ledger
    ledger.settle(pipe.engine.portfolio.trades)  # contracts: funding, quote PnL
    return BacktestResult(
        series=series,
        trades=list(ledger.closed),
        fills=list(ledger.fills),
        anomalies=list(ledger.anomalies.values()),
        signals=ledger.signal_count,
        equity_ts=equity[0],
        equity=equity[1],
        exposure=equity[2],
        starting_balance=paper.starting_balance,
        quote=paper.quote_currency,
        seconds=seconds,
        candles=sum(len(s) for s in series),
        settings=pipe.settings,
        orders=len(ledger.intents),
        signal_orders=ledger.signal_orders,
        refused=dict(sorted(ledger.refused.items())),
        signals_refused=ledger.signals_refused,
        rejected=dict(sorted(ledger.rejected.items())),
        not_acted=pipe.engine.entries.not_acted_unrefused(),
    )


def backtest_settings(settings: Settings, series: list[CandleSeries]) -> Settings:
    """``settings`` as the backtest runs them: paper mode, auto trading on, the indicator
    interval of the data, and (``backtest.infer_instrument``) tick and lot from the data."""
    trading = settings.trading
    paper = trading.paper
    if settings.backtest.infer_instrument and series:
        specs = [infer_instrument(s) for s in series]
        tick = min(t for t, _ in specs)
        lot = min(lot for _, lot in specs)
        paper = paper.model_copy(update={"tick_size": float(tick), "lot_size": float(lot)})
    indicators = trading.indicators
    if series:
        indicators = indicators.model_copy(update={"interval": series[0].timeframe})
    trading = trading.model_copy(
        update={
            "auto_trading_enabled": True,
            "mode": "paper",
            "paper": paper,
            "indicators": indicators,
        }
    )
    return settings.model_copy(update={"trading": trading})
