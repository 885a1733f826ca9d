"""Volume detector: traded volume per bucket z-scored against the lookback, and buy/sell
imbalance of a busy bucket. Also serves liquidations (liquidated volume per bucket)."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect import volume_nb
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
from cryptomon.kinds import AnomalyKind


class VolumeDetector:
    """Kinds ``volume`` and ``volume_imbalance``."""

    kinds: ClassVar[dict[int, AnomalyKind]] = {
        volume_nb.CODE_VOLUME: AnomalyKind.VOLUME,
        volume_nb.CODE_IMBALANCE: AnomalyKind.VOLUME_IMBALANCE,
    }
    z_kinds: ClassVar[frozenset[AnomalyKind]] = frozenset({AnomalyKind.VOLUME})
    # 1-minute candles reproduce its completed buckets (cryptomon.detect.stored)
    warms_from_candles: ClassVar[bool] = True

    def __init__(self) -> None:
        self.roll = Rolling()
        self.state = np.zeros((0, volume_nb.V_COLS))
        self.params = np.zeros(0, dtype=volume_nb.VOLUME_PARAMS)

    def warmup(self, cfg: AnomalyDetectionConfig) -> Warmup:
        """``min_samples`` trades and ``min_samples`` buckets."""
        return bucket_warmup(cfg)

    def _thresholds(self, info: SymbolInfo, params: np.void) -> None:
        cfg = info.cfg
        params["z"] = cfg.volume_threshold_multiplier
        params["min_ratio"] = cfg.volume_min_ratio
        params["imbalance"] = cfg.volume_imbalance_threshold
        params["imbalance_trades"] = cfg.volume_imbalance_min_trades

    def configure(self, info: SymbolInfo) -> None:
        s = info.sid
        cfg = info.cfg
        self.roll.configure(s, buckets(cfg), cfg.min_samples)
        self.state = grow_rows(self.state, s + 1)
        self.state[s, :] = 0.0
        self.state[s, volume_nb.V_IDX] = math.nan
        self.params = grow_records(self.params, s + 1)
        params = self.params[s]
        params["bucket_s"] = cfg.bucket_seconds
        self._thresholds(info, params)

    def process(self, cols: TradeCols, fires: np.ndarray, m: int) -> int:
        return int(
            volume_nb.volume_batch_nb(
                cols.sid,
                cols.ts,
                cols.px,
                cols.amt,
                cols.buy,
                self.state,
                self.roll.buf,
                self.roll.state,
                self.params,
                fires,
                m,
            )
        )

    def reasons(self, kind: AnomalyKind, finding: Finding, quote: str) -> list[str]:
        if kind == AnomalyKind.VOLUME_IMBALANCE:
            return [f"Buy/sell imbalance: {finding.value:+.2f} over {finding.aux:.0f} trades"]
        return [
            f"Volume: {finding.value:.6g} in the bucket (mean {finding.mean:.6g})",
            f"Notional: {finding.aux:,.0f} {quote}".rstrip(),
        ]


class LiquidationDetector(VolumeDetector):
    """Kind ``liquidations``: liquidated volume per bucket z-scored like trade volume."""

    kinds: ClassVar[dict[int, AnomalyKind]] = {volume_nb.CODE_VOLUME: AnomalyKind.LIQUIDATIONS}
    z_kinds: ClassVar[frozenset[AnomalyKind]] = frozenset({AnomalyKind.LIQUIDATIONS})
    warms_from_candles: ClassVar[bool] = False  # a candle's volume is no liquidated volume

    def warmup(self, cfg: AnomalyDetectionConfig) -> Warmup:
        """``min_samples`` buckets of time (liquidations are rare: one event is enough)."""
        return Warmup(samples=1, seconds=cfg.min_samples * cfg.bucket_seconds)

    def _thresholds(self, info: SymbolInfo, params: np.void) -> None:
        params["z"] = info.cfg.liquidation_z_threshold
        params["min_ratio"] = 0.0
        # imbalance above 1 never happens: liquidations report volume only
        params["imbalance"] = 2.0
        params["imbalance_trades"] = 1.0

    def reasons(self, kind: AnomalyKind, finding: Finding, quote: str) -> list[str]:
        return [f"Liquidated volume: {finding.value:.6g} in the bucket (mean {finding.mean:.6g})"]
