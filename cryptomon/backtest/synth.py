"""The events a backtest makes up for what history does not record: the quote around a
candle's or trade's price (a one-level book of unbounded size) and the closed candle of a
series row."""

from __future__ import annotations

from cryptomon.backtest.data import CandleSeries
from cryptomon.events import BookTop, Candle


def quote_top(
    exchange: str, symbol: str, now: float, *, bid: float, ask: float, ref: float
) -> BookTop:
    """A one-level top ``bid``/``ask`` with unbounded sizes; ``spread_bps`` relative to ``ref``."""
    return BookTop(
        exchange=exchange,
        symbol=symbol,
        ts=now,
        ts_recv=now,
        bid=bid,
        bid_size=1e12,
        ask=ask,
        ask_size=1e12,
        spread=ask - bid,
        spread_bps=(ask - bid) / ref * 10_000.0,
        bid_depth=1e12,
        ask_depth=1e12,
        imbalance=0.0,
        levels=1,
    )


def series_candle(
    series: CandleSeries, row: int, *, start: float, now: float, close: float, volume: float
) -> Candle:
    """Row ``row`` of ``series`` as the candle that closed at ``now`` (opened at ``start``)."""
    return Candle(
        exchange=series.exchange,
        symbol=series.symbol,
        ts=now,
        ts_recv=now,
        interval=series.timeframe,
        start=start,
        end=now,
        open=float(series.open[row]),
        high=float(series.high[row]),
        low=float(series.low[row]),
        close=close,
        volume=volume,
    )
