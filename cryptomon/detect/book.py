"""Order book detector: depth imbalance beyond a threshold persisting for a minimum time,
and spread blow-out as a z-score of the spread against its time-decayed EWMA."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from cryptomon.detect import book_nb as k
from cryptomon.detect.base import BookCols, SymbolInfo, grow_rows
from cryptomon.detect.kernels_nb import E_COLS


class BookDetector:
    """Kinds ``book_imbalance`` and ``spread``."""

    kinds: ClassVar[dict[int, str]] = {k.C_BOOK_IMB: "book_imbalance", k.C_SPREAD: "spread"}

    def __init__(self) -> None:
        self.bst = np.zeros((0, k.B_COLS))
        self.sest = np.zeros((0, E_COLS))
        self.iest = np.zeros((0, E_COLS))
        self.mest = np.zeros((0, E_COLS))
        self.prm = np.zeros((0, k.PB_COLS))

    def configure(self, info: SymbolInfo) -> None:
        s = info.sid
        cfg = info.cfg
        self.bst = grow_rows(self.bst, s + 1)
        self.bst[s, :] = 0.0
        self.bst[s, k.B_START] = math.nan
        self.sest = grow_rows(self.sest, s + 1)
        self.iest = grow_rows(self.iest, s + 1)
        self.mest = grow_rows(self.mest, s + 1)
        self.mest[s, :] = 0.0
        self.sest[s, :] = 0.0
        self.iest[s, :] = 0.0
        self.prm = grow_rows(self.prm, s + 1)
        self.prm[s] = (
            cfg.book_imbalance_threshold,
            cfg.book_imbalance_min_s,
            cfg.spread_z_threshold,
            cfg.spread_min_ratio,
            cfg.spread_halflife_s,
            cfg.min_samples,
            cfg.book_imbalance_smoothing_s,
        )

    def process(self, c: BookCols, fires: np.ndarray, m: int) -> int:
        return int(
            k.book_batch_nb(
                c.sid,
                c.ts,
                c.spread,
                c.imb,
                self.bst,
                self.sest,
                self.iest,
                self.mest,
                self.prm,
                fires,
                m,
            )
        )
