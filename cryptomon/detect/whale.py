"""Whale detector: single trades above an absolute notional per quote currency or k standard
deviations above recent log notionals; bursts of same-side large trades."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from cryptomon.detect import whale_nb as k
from cryptomon.detect.base import Rolling, SymbolInfo, TradeCols, grow_rows


class WhaleDetector:
    """Kinds ``whale`` and ``whale_burst``."""

    kinds: ClassVar[dict[int, str]] = {k.C_WHALE: "whale", k.C_BURST: "whale_burst"}

    def __init__(self) -> None:
        self.roll = Rolling()
        self.wst = np.zeros((0, k.W_COLS))
        self.bring = np.zeros((0, 2 * k.MAX_BURST))
        self.prm = np.zeros((0, k.PW_COLS))

    def configure(self, info: SymbolInfo) -> None:
        s = info.sid
        cfg = info.cfg
        self.roll.configure(s, cfg.whale_window_trades, cfg.min_samples)
        self.wst = grow_rows(self.wst, s + 1)
        self.wst[s, :] = 0.0
        self.bring = grow_rows(self.bring, s + 1)
        self.prm = grow_rows(self.prm, s + 1)
        self.prm[s] = (
            cfg.whale_notional.get(info.quote, 0.0),
            cfg.whale_k_std,
            cfg.whale_burst_count,
            cfg.whale_burst_window_s,
            cfg.whale_burst_k_std,
            cfg.whale_burst_fraction,
        )

    def process(self, c: TradeCols, fires: np.ndarray, m: int) -> int:
        return int(
            k.whale_batch_nb(
                c.sid,
                c.ts,
                c.px,
                c.amt,
                c.buy,
                self.wst,
                self.bring,
                self.roll.buf,
                self.roll.st,
                self.prm,
                fires,
                m,
            )
        )
