"""Cross-exchange divergence: the mid price of one exchange against the mean of the other
exchanges' fresh mids for the same symbol, beyond a threshold (bps) for a minimum time."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect import divergence_nb
from cryptomon.detect.base import (
    BookCols,
    SymbolInfo,
    Warmup,
    bucket_warmup,
    grow_records,
    grow_rows,
)
from cryptomon.detect.detectors_nb import Finding
from cryptomon.detect.kernels_nb import grow
from cryptomon.kinds import AnomalyKind


class DivergenceDetector:
    """Kind ``divergence``. Symbols group by name; exchanges get a column each."""

    kinds: ClassVar[dict[int, AnomalyKind]] = {
        divergence_nb.CODE_DIVERGENCE: AnomalyKind.DIVERGENCE
    }
    z_kinds: ClassVar[frozenset[AnomalyKind]] = frozenset()

    def __init__(self) -> None:
        self._groups: dict[str, int] = {}
        self._exchanges: dict[str, int] = {}
        self.group_of = np.zeros(0, dtype=np.int64)  # per symbol id: its symbol's group
        self.exchange_of = np.zeros(0, dtype=np.int64)  # per symbol id: its exchange column
        self.mids = np.zeros((0, 1))  # latest mid per (group, exchange)
        self.mid_times = np.zeros((0, 1))  # ... and its time
        self.state = np.zeros((0, divergence_nb.D_COLS))
        self.params = np.zeros(0, dtype=divergence_nb.DIVERGENCE_PARAMS)

    def warmup(self, cfg: AnomalyDetectionConfig) -> Warmup:
        """``min_samples`` mids and ``min_samples`` buckets of time."""
        return bucket_warmup(cfg)

    def configure(self, info: SymbolInfo) -> None:
        s = info.sid
        cfg = info.cfg
        group = self._groups.setdefault(info.symbol, len(self._groups))
        column = self._exchanges.setdefault(info.exchange, len(self._exchanges))
        if self.group_of.shape[0] <= s:
            more = np.zeros(s + 1 - self.group_of.shape[0], np.int64)
            self.group_of = np.concatenate([self.group_of, more])
            self.exchange_of = np.concatenate([self.exchange_of, more])
        self.group_of[s] = group
        self.exchange_of[s] = column
        self.mids = grow(self.mids, group + 1, column + 1)
        self.mid_times = grow(self.mid_times, group + 1, column + 1)
        self.state = grow_rows(self.state, s + 1)
        self.state[s, :] = 0.0
        self.state[s, divergence_nb.D_START] = math.nan
        self.params = grow_records(self.params, s + 1)
        params = self.params[s]
        params["bps"] = cfg.divergence_bps
        params["min_s"] = cfg.divergence_min_s
        params["max_age_s"] = cfg.divergence_max_age_s
        params["halflife_s"] = cfg.spread_halflife_s

    def process(self, cols: BookCols, fires: np.ndarray, m: int) -> int:
        return int(
            divergence_nb.divergence_batch_nb(
                cols.sid,
                cols.ts,
                cols.mid,
                self.group_of,
                self.exchange_of,
                self.mids,
                self.mid_times,
                self.state,
                self.params,
                fires,
                m,
            )
        )

    def reasons(self, kind: AnomalyKind, finding: Finding, quote: str) -> list[str]:
        return [f"Gap to other exchanges: {finding.value:+.1f} bps for {finding.aux:.1f}s"]
