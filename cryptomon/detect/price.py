"""Price detector: % change over the lookback, volatility spike (z-score of the running
bucket's log return) and deviation from the moving average of bucket closes."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from cryptomon.detect import price_nb as k
from cryptomon.detect.base import Rolling, SymbolInfo, TradeCols, buckets, grow_rows
from cryptomon.detect.kernels_nb import grow


class PriceDetector:
    """Kinds ``price_change``, ``volatility`` and ``ma_deviation``."""

    kinds: ClassVar[dict[int, str]] = {
        k.C_PRICE: "price_change",
        k.C_VOLATILITY: "volatility",
        k.C_MA: "ma_deviation",
    }

    def __init__(self) -> None:
        self.closes = Rolling()
        self.returns = Rolling()
        self.pst = np.zeros((0, k.P_COLS))
        self.hring = np.zeros((0, 1))
        self.lring = np.zeros((0, 1))
        self.prm = np.zeros((0, k.PP_COLS))

    def configure(self, info: SymbolInfo) -> None:
        s = info.sid
        cfg = info.cfg
        w = buckets(cfg)
        self.closes.configure(s, w, cfg.min_samples)
        self.returns.configure(s, w, cfg.min_samples)
        self.hring = grow(self.hring, s + 1, w)
        self.lring = grow(self.lring, s + 1, w)
        self.pst = grow_rows(self.pst, s + 1)
        self.pst[s, :] = 0.0
        self.pst[s, k.P_IDX] = math.nan
        self.pst[s, k.P_PCT] = math.nan
        self.prm = grow_rows(self.prm, s + 1)
        self.prm[s] = (
            cfg.bucket_seconds,
            cfg.price_change_percentage,
            cfg.volatility_z_threshold,
            cfg.ma_deviation_percentage,
            cfg.ma_deviation_z_threshold,
        )

    def change_pct(self, sid: int) -> float:
        """Latest price change over the lookback, % (NaN before the first trade)."""
        if sid >= self.pst.shape[0]:
            return math.nan
        return float(self.pst[sid, k.P_PCT])

    def process(self, c: TradeCols, fires: np.ndarray, m: int) -> int:
        return int(
            k.price_batch_nb(
                c.sid,
                c.ts,
                c.px,
                self.pst,
                self.hring,
                self.lring,
                self.closes.buf,
                self.closes.st,
                self.returns.buf,
                self.returns.st,
                self.prm,
                fires,
                m,
            )
        )
