"""``download --from-file``: candles or trades from JSON/CSV files into the database.

Candle files become ``candles`` rows (``source = import``); trade files become ``trades`` rows
(``source = import``, written once per trade id) plus their candles, one-minute unless
``--timeframe`` says otherwise (``source = trades``, the same aggregation the live store uses:
an exchange candle wins). The
instrument (spot) is inferred from the data: the tick from the price decimals, the lot from
the amount decimals.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cryptomon.backtest.data import (
    candles_from_trades,
    decimals_step,
    infer_instrument,
    timeframe_seconds,
)
from cryptomon.backtest.inputs import load_file
from cryptomon.config import normalize_symbol, split_symbol
from cryptomon.market.datafiles import DataError, TradeRows
from cryptomon.store.db import Database
from cryptomon.store.history import candle_rows, save_candles, save_trades
from cryptomon.store.types import utc


def market_symbol(symbol: str, quote: str | None) -> str:
    """``ALT`` + ``BTC`` or ``ALT/BTC`` -> ``ALT-BTC``; a conflicting ``--quote`` is an error."""
    raw = symbol.strip().upper()
    has_quote = "/" in raw or "-" in raw
    if not has_quote:
        if not quote:
            raise DataError(f"--symbol {symbol!r}: give BASE/QUOTE or --quote QUOTE")
        raw = f"{raw}-{quote.strip().upper()}"
    try:
        sym = normalize_symbol(raw)
    except ValueError as exc:
        raise DataError(f"--symbol: {exc}") from None
    if quote and has_quote and split_symbol(sym)[1] != quote.strip().upper():
        raise DataError(f"--symbol {symbol} is quoted in {split_symbol(sym)[1]}, not {quote}")
    return sym


async def import_file(
    db: Database, path: str, *, exchange: str, symbol: str | None, timeframe: str | None = None
) -> dict[str, Any]:
    """Store the file's candles (or trades and their candles); what was imported.
    ``symbol`` None: read from the file name (``ALT_BTC-1m.json.gz``), as ``backtest`` does.
    ``timeframe``: trades are aggregated to it (default 1m); a candle file must be of it, as
    candles are not resampled."""
    data = load_file(path, exchange=exchange, symbol=symbol, timeframe=timeframe or "1m")
    series = data.series
    symbol = series.symbol
    if timeframe is not None and data.trades is None and series.timeframe != timeframe:
        raise DataError(
            f"--timeframe {timeframe}: {path} holds {series.timeframe} candles (not "
            f"resampled); leave --timeframe out or give --timeframe {series.timeframe}"
        )
    step = timeframe_seconds(series.timeframe)
    tick, lot = infer_instrument(series)
    rows = np.stack([series.ts, series.open, series.high, series.low, series.close, series.volume])
    out: dict[str, Any] = {
        "file": path,
        "exchange": exchange,
        "symbol": symbol,
        "timeframe": series.timeframe,
        "first": float(series.ts[0]),
        "last": float(series.ts[-1]),
        "tick": f"{tick:f}",
        "lot": f"{lot:f}",
        "trades": 0,
    }
    trades = data.trades
    source = "import"
    if isinstance(trades, TradeRows):
        out["kind"] = "trades"
        out["lot"] = f"{decimals_step(trades.amount, cap=8):f}"
        out["trades"] = await save_trades(db, _trade_rows(trades, exchange, symbol))
        series = candles_from_trades(
            trades, exchange=exchange, symbol=symbol, timeframe=series.timeframe
        )
        rows = np.stack(
            [series.ts, series.open, series.high, series.low, series.close, series.volume]
        )
        source = "trades"
    else:
        out["kind"] = "candles"
    out["candles"] = await save_candles(
        db,
        candle_rows(
            exchange=exchange,
            symbol=symbol,
            interval=series.timeframe,
            step_s=step,
            rows=rows.T.tolist(),
            source=source,
        ),
    )
    return out


def _trade_rows(trades: TradeRows, exchange: str, symbol: str) -> list[dict[str, Any]]:
    return [
        {
            "exchange": exchange,
            "symbol": symbol,
            "ts": utc(float(trades.ts[i])),
            "price": float(trades.price[i]),
            "amount": float(trades.amount[i]),
            "side": trades.side[i],
            "trade_id": trades.ids[i],
            "source": "import",
        }
        for i in range(len(trades))
    ]
