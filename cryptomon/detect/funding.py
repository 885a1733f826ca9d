"""Funding detector: a jump of the funding rate between consecutive updates. Funding updates
are rare (seconds to hours apart), so this one is plain Python."""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import ClassVar

import numpy as np

from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect.base import FundingCols, SymbolInfo, Warmup
from cryptomon.detect.detectors_nb import Finding, level_nb
from cryptomon.kinds import AnomalyKind

CODE_FUNDING = 0


class FundingDetector:
    """Kind ``funding``: |rate - previous rate| >= ``funding_jump``."""

    kinds: ClassVar[dict[int, AnomalyKind]] = {CODE_FUNDING: AnomalyKind.FUNDING}
    z_kinds: ClassVar[frozenset[AnomalyKind]] = frozenset()

    def __init__(self, history: int = 64) -> None:
        self._history = history
        self._rates: dict[int, deque[float]] = {}
        self._jump: dict[int, float] = {}

    def warmup(self, cfg: AnomalyDetectionConfig) -> Warmup:
        """Two updates: a jump needs a previous rate (updates are hours apart: no time)."""
        return Warmup(samples=2, seconds=0.0)

    def configure(self, info: SymbolInfo) -> None:
        self._jump[info.sid] = info.cfg.funding_jump
        self._rates.pop(info.sid, None)

    def process(self, cols: FundingCols, fires: np.ndarray, m: int) -> int:
        """Record each rate; a finding for every jump."""
        for row, (sid, rate) in enumerate(zip(cols.sid.tolist(), cols.rate.tolist(), strict=True)):
            finding = self._update(sid, rate, row)
            if finding is not None and m < fires.shape[0]:
                fires[m] = finding
                m += 1
        return m

    def _update(self, sid: int, rate: float, row: int) -> Finding | None:
        if not math.isfinite(rate):
            return None
        rates = self._rates.setdefault(sid, deque(maxlen=self._history))
        out = None
        if rates:
            jump = rate - rates[-1]
            thr = self._jump[sid]
            if abs(jump) >= thr:
                mean = statistics.fmean(rates)
                std = statistics.pstdev(rates) if len(rates) > 1 else 0.0
                out = Finding(
                    row=row,
                    code=CODE_FUNDING,
                    value=jump,
                    threshold=thr if jump > 0 else -thr,
                    z=(rate - mean) / std if std > 0 else math.nan,
                    mean=mean,
                    std=std,
                    samples=len(rates),
                    level=level_nb(abs(jump) / thr),
                    aux=rate,
                )
        rates.append(rate)
        return out

    def reasons(self, kind: AnomalyKind, finding: Finding, quote: str) -> list[str]:
        return [f"Funding rate jump: {finding.value:+.6f} to {finding.aux:.6f}"]
