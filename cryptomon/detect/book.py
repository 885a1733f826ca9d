"""Order book detector: depth imbalance beyond a threshold persisting for a minimum time,
and spread blow-out as a z-score of the spread against its time-decayed EWMA that is also
wide in ticks and bps. The tick is the instrument's (``SymbolInfo.tick_size``) when known;
until instrument specs reach the engine it is inferred from the book's observed price grid
(the smallest step between consecutive best prices or across the spread)."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect import book_nb
from cryptomon.detect.base import BookCols, SymbolInfo, Warmup, grow_records, grow_rows
from cryptomon.detect.detectors_nb import Finding
from cryptomon.detect.kernels_nb import E_COLS
from cryptomon.kinds import AnomalyKind


class BookDetector:
    """Kinds ``book_imbalance`` and ``spread``."""

    kinds: ClassVar[dict[int, AnomalyKind]] = {
        book_nb.CODE_IMBALANCE: AnomalyKind.BOOK_IMBALANCE,
        book_nb.CODE_SPREAD: AnomalyKind.SPREAD,
    }
    z_kinds: ClassVar[frozenset[AnomalyKind]] = frozenset({AnomalyKind.SPREAD})

    def __init__(self) -> None:
        self.state = np.zeros((0, book_nb.B_COLS))
        # EWMA states (columns E_*): the spread, the imbalance, the short-smoothed imbalance
        self.spread_ewma = np.zeros((0, E_COLS))
        self.imbalance_ewma = np.zeros((0, E_COLS))
        self.imbalance_smooth = np.zeros((0, E_COLS))
        self.params = np.zeros(0, dtype=book_nb.BOOK_PARAMS)

    def warmup(self, cfg: AnomalyDetectionConfig) -> Warmup:
        """``min_samples`` book updates over ``min_samples`` buckets of time (and at least the
        imbalance's persistence plus its smoothing)."""
        return Warmup(
            samples=cfg.min_samples,
            seconds=max(
                cfg.min_samples * cfg.bucket_seconds,
                cfg.book_imbalance_min_s + cfg.book_imbalance_smoothing_s,
            ),
        )

    def configure(self, info: SymbolInfo) -> None:
        s = info.sid
        cfg = info.cfg
        self.state = grow_rows(self.state, s + 1)
        self.state[s, :] = 0.0
        self.state[s, book_nb.B_START] = math.nan
        self.state[s, book_nb.B_TICK] = math.inf
        self.state[s, book_nb.B_BID] = math.nan
        self.state[s, book_nb.B_ASK] = math.nan
        for name in ("spread_ewma", "imbalance_ewma", "imbalance_smooth"):
            ewma = grow_rows(getattr(self, name), s + 1)
            ewma[s, :] = 0.0
            setattr(self, name, ewma)
        self.params = grow_records(self.params, s + 1)
        params = self.params[s]
        params["imbalance"] = cfg.book_imbalance_threshold
        params["imbalance_min_s"] = cfg.book_imbalance_min_s
        params["spread_z"] = cfg.spread_z_threshold
        params["spread_ratio"] = cfg.spread_min_ratio
        params["halflife_s"] = cfg.spread_halflife_s
        params["min_samples"] = cfg.min_samples
        params["smoothing_s"] = cfg.book_imbalance_smoothing_s
        params["tick"] = info.tick_size
        params["spread_min_ticks"] = cfg.spread_min_ticks
        params["spread_min_bps"] = cfg.spread_min_bps

    def process(self, cols: BookCols, fires: np.ndarray, m: int) -> int:
        bid, ask = cols.bid, cols.ask
        if bid is None or ask is None:  # no prices: the tick rule cannot pass
            bid = ask = np.full(cols.sid.shape[0], math.nan)
        return int(
            book_nb.book_batch_nb(
                cols.sid,
                cols.ts,
                cols.spread,
                cols.imb,
                bid,
                ask,
                self.state,
                self.spread_ewma,
                self.imbalance_ewma,
                self.imbalance_smooth,
                self.params,
                fires,
                m,
            )
        )

    def reasons(self, kind: AnomalyKind, finding: Finding, quote: str) -> list[str]:
        if kind == AnomalyKind.SPREAD:
            ratio = finding.value / finding.mean if finding.mean > 0 else math.inf
            return [
                f"Spread: {finding.value:.3g} bps ({finding.aux:.0f} ticks), {ratio:.1f}x its "
                f"mean of {finding.mean:.3g} bps"
            ]
        return [f"Book imbalance: {finding.value:+.2f} for {finding.aux:.1f}s"]
