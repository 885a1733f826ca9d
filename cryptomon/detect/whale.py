"""Whale detector: single taker orders above an absolute notional per quote currency (or in USD)
read from the trades' own notionals (never on a market whose instrument spec is unknown), or large
relative to the market's own recent orders (a multiple of the median and of a high quantile,
and at least a minimum notional per quote); bursts of same-side large orders."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect import whale_nb
from cryptomon.detect.base import (
    Rolling,
    SymbolInfo,
    TradeCols,
    Warmup,
    bucket_warmup,
    grow_records,
    grow_rows,
)
from cryptomon.detect.detectors_nb import Finding
from cryptomon.kinds import AnomalyKind


def _amount(x: float) -> str:
    """Thousands separated when large, six significant digits when small (BTC quotes)."""
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.6g}"


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

    def warmup(self, cfg: AnomalyDetectionConfig) -> Warmup:
        """``min_samples`` trades and ``min_samples`` buckets of time."""
        return bucket_warmup(cfg)

    def configure(self, info: SymbolInfo) -> None:
        s = info.sid
        cfg = info.cfg
        self.roll.configure(s, cfg.whale_window_trades, cfg.min_samples)
        self.state = grow_rows(self.state, s + 1)
        self.state[s, :] = 0.0
        self.burst_times = grow_rows(self.burst_times, s + 1)
        self.params = grow_records(self.params, s + 1)
        params = self.params[s]
        # the quote's own threshold (on Trade.notional), else the USD one (on notional_usd,
        # known for USD-like quotes and those with a fresh conversion rate)
        own = cfg.whale_notional.get(info.quote)
        params["notional"] = 0.0 if own is None else own
        params["notional_usd"] = cfg.whale_notional_usd if own is None else 0.0
        params["min_notional"] = cfg.whale_min_notional.get(
            info.quote, cfg.whale_min_notional.get("*", 0.0)
        )
        params["median_multiple"] = cfg.whale_median_multiple
        params["quantile"] = cfg.whale_quantile
        params["quantile_multiple"] = cfg.whale_quantile_multiple
        params["burst_count"] = cfg.whale_burst_count
        params["burst_window_s"] = cfg.whale_burst_window_s
        params["burst_fraction"] = cfg.whale_burst_fraction

    def process(self, cols: TradeCols, fires: np.ndarray, m: int) -> int:
        return int(
            whale_nb.whale_batch_nb(
                cols.sid,
                cols.ts,
                cols.px,
                cols.amt,
                cols.buy,
                cols.notional(),
                cols.notional_usd(),
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
        side = "buy" if int(finding.aux) % 2 else "sell"
        if kind == AnomalyKind.WHALE_BURST:
            return [f"Burst: {finding.value:.0f} large {side} trades"]
        if finding.aux >= whale_nb.USD_RULE:
            quote = "USD"
        lines = [
            f"Taker order notional: {_amount(finding.value)} {quote} ({side})".replace("  ", " "),
            f"Threshold: {_amount(finding.threshold)} {quote}".rstrip(),
        ]
        if finding.mean > 0:
            lines.append(f"{finding.value / finding.mean:,.0f}x the median order")
        return lines
