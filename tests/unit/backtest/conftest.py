"""Backtest fixtures: generated candle series and settings for small, exact runs."""

from __future__ import annotations

from typing import Any

import numpy as np

from cryptomon.backtest.data import CandleSeries
from cryptomon.config import Settings

T0 = 1_700_000_000.0 - 1_700_000_000.0 % 86400  # a UTC midnight


def random_walk(n: int, *, seed: int = 7, symbol: str = "ALT-BTC") -> CandleSeries:
    """``n`` one-minute candles of a seeded random walk around 100 with volume spikes."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    wiggle = np.abs(rng.normal(0, 0.001, n)) * close
    volume = rng.gamma(2.0, 5.0, n) * np.where(rng.random(n) < 0.02, 12.0, 1.0)
    return CandleSeries(
        "binance",
        symbol,
        "1m",
        T0 + 60.0 * np.arange(n),
        np.round(open_, 4),
        np.round(np.maximum(open_, close) + wiggle, 4),
        np.round(np.minimum(open_, close) - wiggle, 4),
        np.round(close, 4),
        np.round(volume, 3),
    )


def candles(rows: list[tuple[float, float, float, float]], symbol: str = "ALT-BTC") -> CandleSeries:
    """Hand-written (open, high, low, close) minutes from T0, volume 1."""
    arr = np.asarray(rows, dtype=np.float64)
    n = arr.shape[0]
    return CandleSeries(
        "binance", symbol, "1m", T0 + 60.0 * np.arange(n), *arr.T.copy(), np.ones(n)
    )


def settings(**trading: Any) -> Settings:
    """Paper balance 10,000 USDT-like units, tick 0.01; detectors and rules as given."""
    base: dict[str, Any] = {
        "paper": {"quote_currency": "BTC", "starting_balance": 10_000.0, "min_notional": 1.0},
        "max_position_size": 5_000.0,
        "max_symbol_exposure": 5_000.0,
        "max_total_exposure": 10_000.0,
        "daily_loss_limit": 5_000.0,
    }
    base.update(trading)
    return Settings.model_validate(
        {"trading": base, "backtest": {"slippage_bps": 0.0}, "logging": {"level": "WARNING"}}
    )
