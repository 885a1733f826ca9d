"""Whale detector: single trades above an absolute notional per quote currency or k standard
deviations above recent log notionals; bursts of same-side large trades."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from cryptomon.config import DEFAULT_USD_QUOTES
from cryptomon.detect import whale_nb
from cryptomon.detect.base import Rolling, SymbolInfo, TradeCols, grow_records, grow_rows
from cryptomon.detect.detectors_nb import Finding
from cryptomon.kinds import AnomalyKind


class WhaleDetector:
    """Kinds ``whale`` and ``whale_burst``."""

    kinds: ClassVar[dict[int, AnomalyKind]] = {
        whale_nb.CODE_WHALE: AnomalyKind.WHALE,
        whale_nb.CODE_BURST: AnomalyKind.WHALE_BURST,
    }
    z_kinds: ClassVar[frozenset[AnomalyKind]] = frozenset()

    def __init__(self) -> None:
        self.roll = Rolling()
        self.state = np.zeros((0, whale_nb.W_COLS))
        # times of the last large orders: buys in the first MAX_BURST columns, then sells
        self.burst_times = np.zeros((0, 2 * whale_nb.MAX_BURST))
        self.params = np.zeros(0, dtype=whale_nb.WHALE_PARAMS)

    def configure(self, info: SymbolInfo) -> None:
        s = info.sid
        cfg = info.cfg
        self.roll.configure(s, cfg.whale_window_trades, cfg.min_samples)
        self.state = grow_rows(self.state, s + 1)
        self.state[s, :] = 0.0
        self.burst_times = grow_rows(self.burst_times, s + 1)
        self.params = grow_records(self.params, s + 1)
        params = self.params[s]
        # a USD-like quote without its own threshold: the USD default (notional = notional_usd)
        usd_default = cfg.whale_notional_usd if info.quote in DEFAULT_USD_QUOTES else 0.0
        params["notional"] = cfg.whale_notional.get(info.quote, usd_default)
        params["k_std"] = cfg.whale_k_std
        params["burst_count"] = cfg.whale_burst_count
        params["burst_window_s"] = cfg.whale_burst_window_s
        params["burst_k_std"] = cfg.whale_burst_k_std
        params["burst_fraction"] = cfg.whale_burst_fraction

    def process(self, cols: TradeCols, fires: np.ndarray, m: int) -> int:
        return int(
            whale_nb.whale_batch_nb(
                cols.sid,
                cols.ts,
                cols.px,
                cols.amt,
                cols.buy,
                self.state,
                self.burst_times,
                self.roll.buf,
                self.roll.state,
                self.params,
                fires,
                m,
            )
        )

    def reasons(self, kind: AnomalyKind, finding: Finding, quote: str) -> list[str]:
        side = "buy" if finding.aux > 0 else "sell"
        if kind == AnomalyKind.WHALE_BURST:
            return [f"Burst: {finding.value:.0f} large {side} trades"]
        return [
            f"Taker order notional: {finding.value:,.0f} {quote} ({side})".replace("  ", " "),
            f"Threshold: {finding.threshold:,.0f} {quote}".rstrip(),
        ]
