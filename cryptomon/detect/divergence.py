"""Cross-exchange divergence: the mid price of one exchange against the mean of the other
exchanges' fresh mids for the same symbol, beyond a threshold (bps) for a minimum time."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from cryptomon.detect import divergence_nb as k
from cryptomon.detect.base import BookCols, SymbolInfo, grow_rows
from cryptomon.detect.kernels_nb import grow


class DivergenceDetector:
    """Kind ``divergence``. Symbols group by name; exchanges get a column each."""

    kinds: ClassVar[dict[int, str]] = {k.C_DIVERGENCE: "divergence"}

    def __init__(self) -> None:
        self._groups: dict[str, int] = {}
        self._exchanges: dict[str, int] = {}
        self.grp = np.zeros(0, dtype=np.int64)
        self.exi = np.zeros(0, dtype=np.int64)
        self.mids = np.zeros((0, 1))
        self.mts = np.zeros((0, 1))
        self.dst = np.zeros((0, k.D_COLS))
        self.prm = np.zeros((0, k.PD_COLS))

    def configure(self, info: SymbolInfo) -> None:
        s = info.sid
        cfg = info.cfg
        g = self._groups.setdefault(info.symbol, len(self._groups))
        e = self._exchanges.setdefault(info.exchange, len(self._exchanges))
        if self.grp.shape[0] <= s:
            self.grp = np.concatenate([self.grp, np.zeros(s + 1 - self.grp.shape[0], np.int64)])
            self.exi = np.concatenate([self.exi, np.zeros(s + 1 - self.exi.shape[0], np.int64)])
        self.grp[s] = g
        self.exi[s] = e
        self.mids = grow(self.mids, g + 1, e + 1)
        self.mts = grow(self.mts, g + 1, e + 1)
        self.dst = grow_rows(self.dst, s + 1)
        self.dst[s, :] = 0.0
        self.dst[s, k.D_START] = math.nan
        self.prm = grow_rows(self.prm, s + 1)
        self.prm[s] = (
            cfg.divergence_bps,
            cfg.divergence_min_s,
            cfg.divergence_max_age_s,
            cfg.spread_halflife_s,
        )

    def process(self, c: BookCols, fires: np.ndarray, m: int) -> int:
        return int(
            k.divergence_batch_nb(
                c.sid,
                c.ts,
                c.mid,
                self.grp,
                self.exi,
                self.mids,
                self.mts,
                self.dst,
                self.prm,
                fires,
                m,
            )
        )
