"""Price detector: % change over the lookback, volatility spike (z-score of the running
bucket's log return) and deviation from the moving average of bucket closes."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect import price_nb
from cryptomon.detect.base import (
    Rolling,
    SymbolInfo,
    TradeCols,
    Warmup,
    bucket_warmup,
    buckets,
    grow_records,
    grow_rows,
)
from cryptomon.detect.detectors_nb import Finding
from cryptomon.detect.kernels_nb import grow
from cryptomon.kinds import AnomalyKind

NO_ROWS = np.empty(0)  # pct_rows that keeps nothing (the live engine's)


class PriceDetector:
    """Kinds ``price_change``, ``volatility`` and ``ma_deviation``. Also the context of every
    anomaly: :meth:`change_pct`."""

    kinds: ClassVar[dict[int, AnomalyKind]] = {
        price_nb.CODE_PRICE: AnomalyKind.PRICE_CHANGE,
        price_nb.CODE_VOLATILITY: AnomalyKind.VOLATILITY,
        price_nb.CODE_MA: AnomalyKind.MA_DEVIATION,
    }
    z_kinds: ClassVar[frozenset[AnomalyKind]] = frozenset({AnomalyKind.VOLATILITY})
    # 1-minute candles reproduce its completed buckets (cryptomon.detect.stored)
    warms_from_candles: ClassVar[bool] = True

    def __init__(self) -> None:
        self.closes = Rolling()
        self.returns = Rolling()
        self.state = np.zeros((0, price_nb.P_COLS))
        # bucket highs and lows of the lookback (rings of the same length as the closes)
        self.high_ring = np.zeros((0, 1))
        self.low_ring = np.zeros((0, 1))
        self.params = np.zeros(0, dtype=price_nb.PRICE_PARAMS)
        # with a slot per row of a batch: each row's price change after it (see
        # price_batch_nb; a backtest's candle chunk), else nothing kept
        self.pct_rows = NO_ROWS

    def warmup(self, cfg: AnomalyDetectionConfig) -> Warmup:
        """``min_samples`` trades and ``min_samples`` buckets (the closes of the moving
        average); volatility one bucket more: its z needs ``min_samples`` bucket returns, and
        the first completed bucket has none (no close before it)."""
        warm = bucket_warmup(cfg)
        volatility = Warmup(samples=warm.samples, seconds=warm.seconds + cfg.bucket_seconds)
        return Warmup(warm.samples, warm.seconds, kinds=((price_nb.CODE_VOLATILITY, volatility),))

    def configure(self, info: SymbolInfo) -> None:
        s = info.sid
        cfg = info.cfg
        window = buckets(cfg)
        self.closes.configure(s, window, cfg.min_samples)
        self.returns.configure(s, window, cfg.min_samples)
        self.high_ring = grow(self.high_ring, s + 1, window)
        self.low_ring = grow(self.low_ring, s + 1, window)
        self.state = grow_rows(self.state, s + 1)
        self.state[s, :] = 0.0
        self.state[s, price_nb.P_IDX] = math.nan
        self.state[s, price_nb.P_PCT] = math.nan
        self.params = grow_records(self.params, s + 1)
        params = self.params[s]
        params["bucket_s"] = cfg.bucket_seconds
        params["change_pct"] = cfg.price_change_percentage
        params["volatility_z"] = cfg.volatility_z_threshold
        params["ma_pct"] = cfg.ma_deviation_percentage
        params["ma_z"] = cfg.ma_deviation_z_threshold

    def change_pct(self, sid: int) -> float:
        """Latest price change over the lookback, % (NaN before the first trade)."""
        if sid >= self.state.shape[0]:
            return math.nan
        return float(self.state[sid, price_nb.P_PCT])

    def process(self, cols: TradeCols, fires: np.ndarray, m: int) -> int:
        return int(
            price_nb.price_batch_nb(
                cols.sid,
                cols.ts,
                cols.px,
                self.state,
                self.high_ring,
                self.low_ring,
                self.closes.buf,
                self.closes.state,
                self.returns.buf,
                self.returns.state,
                self.params,
                fires,
                m,
                self.pct_rows,
            )
        )

    def reasons(self, kind: AnomalyKind, finding: Finding, quote: str) -> list[str]:
        if kind == AnomalyKind.PRICE_CHANGE:
            return [f"Price change: {finding.value:.2f}%", f"From: {finding.aux:.8g}"]
        if kind == AnomalyKind.VOLATILITY:
            return [f"Bucket return: {finding.value:.3f}% (std {finding.std:.3f}%)"]
        return [f"Deviation from moving average: {finding.value:+.2f}% (MA {finding.mean:.8g})"]
