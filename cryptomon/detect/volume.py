"""Volume detector: traded volume per bucket z-scored against the lookback, and buy/sell
imbalance of a busy bucket. Also serves liquidations (liquidated volume per bucket)."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from cryptomon.detect import volume_nb as k
from cryptomon.detect.base import Rolling, SymbolInfo, TradeCols, buckets, grow_rows


class VolumeDetector:
    """Kinds ``volume`` and ``volume_imbalance``."""

    kinds: ClassVar[dict[int, str]] = {k.C_VOLUME: "volume", k.C_IMBALANCE: "volume_imbalance"}

    def __init__(self) -> None:
        self.roll = Rolling()
        self.vst = np.zeros((0, k.V_COLS))
        self.prm = np.zeros((0, k.PV_COLS))

    def _thresholds(self, info: SymbolInfo) -> tuple[float, float, float]:
        cfg = info.cfg
        return (
            cfg.volume_threshold_multiplier,
            cfg.volume_imbalance_threshold,
            float(cfg.volume_imbalance_min_trades),
        )

    def configure(self, info: SymbolInfo) -> None:
        s = info.sid
        cfg = info.cfg
        self.roll.configure(s, buckets(cfg), cfg.min_samples)
        self.vst = grow_rows(self.vst, s + 1)
        self.vst[s, :] = 0.0
        self.vst[s, k.V_IDX] = math.nan
        self.prm = grow_rows(self.prm, s + 1)
        z, imb, trades = self._thresholds(info)
        self.prm[s] = (cfg.bucket_seconds, z, imb, trades)

    def process(self, c: TradeCols, fires: np.ndarray, m: int) -> int:
        return int(
            k.volume_batch_nb(
                c.sid,
                c.ts,
                c.px,
                c.amt,
                c.buy,
                self.vst,
                self.roll.buf,
                self.roll.st,
                self.prm,
                fires,
                m,
            )
        )


class LiquidationDetector(VolumeDetector):
    """Kind ``liquidations``: liquidated volume per bucket z-scored like trade volume."""

    kinds: ClassVar[dict[int, str]] = {k.C_VOLUME: "liquidations"}

    def _thresholds(self, info: SymbolInfo) -> tuple[float, float, float]:
        # imbalance above 1 never happens: liquidations report volume only
        return (info.cfg.liquidation_z_threshold, 2.0, 1.0)
