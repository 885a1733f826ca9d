"""Funding detector: a jump of the funding rate between consecutive updates. Funding updates
are rare (seconds to hours apart), so this one is plain Python."""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import ClassVar

import numpy as np

from cryptomon.detect import detectors_nb as k
from cryptomon.detect.base import SymbolInfo

C_FUNDING = 100


class FundingDetector:
    """Kind ``funding``: |rate - previous rate| >= ``funding_jump``."""

    kinds: ClassVar[dict[int, str]] = {C_FUNDING: "funding"}

    def __init__(self, history: int = 64) -> None:
        self._history = history
        self._rates: dict[int, deque[float]] = {}

    def update(self, info: SymbolInfo, rate: float) -> np.ndarray | None:
        """Record ``rate``; the finding row (``F_*`` columns, row 0) when it jumped."""
        if not math.isfinite(rate):
            return None
        rates = self._rates.setdefault(info.sid, deque(maxlen=self._history))
        out = None
        if rates:
            jump = rate - rates[-1]
            thr = info.cfg.funding_jump
            if abs(jump) >= thr:
                mean = statistics.fmean(rates)
                std = statistics.pstdev(rates) if len(rates) > 1 else 0.0
                z = (rate - mean) / std if std > 0 else math.nan
                out = np.array(
                    [
                        0,
                        C_FUNDING,
                        jump,
                        thr if jump > 0 else -thr,
                        z,
                        mean,
                        std,
                        len(rates),
                        k.level_nb(abs(jump) / thr),
                        rate,
                    ],
                    dtype=np.float64,
                )
        rates.append(rate)
        return out
