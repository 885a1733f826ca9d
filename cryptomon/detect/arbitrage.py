"""Fee-aware cross-exchange arbitrage: the same asset on several venues, across quote
currencies that track each other (``anomaly_detection.arbitrage.tracking_quotes``: USDT,
USDC, USD by default), compared on every book top net of both venues' taker fees.

Markets group by base asset, quote family and any further symbol part (``BTC-USDT`` on one
venue with ``BTC-USDC`` and ``BTC-USD`` on others; a perpetual ``BTC-USDT-PERP`` only with
perpetuals). An ``arbitrage`` anomaly carries the net edge in bps as its value, the edge
before fees as its window mean, and names both legs, their prices and the size executable at
that edge (the smaller top-of-book size of the two legs) in its reasons.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect import arbitrage_nb
from cryptomon.detect.base import QuoteCols, SymbolInfo, Warmup, grow_records, grow_rows
from cryptomon.detect.detectors_nb import Finding
from cryptomon.detect.kernels_nb import grow
from cryptomon.kinds import AnomalyKind


def group_key(symbol: str, tracking: list[str]) -> tuple[str, ...]:
    """``BTC-USDT`` and ``BTC-USDC`` -> ``("BTC", "USD*")``; ``BTC-EUR`` -> ``("BTC", "EUR")``."""
    parts = symbol.split("-")
    quote = parts[1] if len(parts) > 1 else ""
    family = "USD*" if quote in tracking else quote
    return (parts[0], family, *parts[2:])


class ArbitrageDetector:
    """Kind ``arbitrage``. Every market has a quote row; groups list their markets."""

    kinds: ClassVar[dict[int, AnomalyKind]] = {arbitrage_nb.CODE_ARBITRAGE: AnomalyKind.ARBITRAGE}
    z_kinds: ClassVar[frozenset[AnomalyKind]] = frozenset()

    def __init__(self) -> None:
        self._groups: dict[tuple[str, ...], int] = {}
        self._venues: dict[str, int] = {}
        self._names: list[tuple[str, str, float]] = []  # per symbol id: exchange, symbol, fee
        self.group_of = np.zeros(0, dtype=np.int64)
        self.venue_of = np.zeros(0, dtype=np.int64)
        self.members = np.full((0, 1), -1, dtype=np.int64)
        self.quotes = np.zeros((0, arbitrage_nb.Q_COLS))
        self.groups = np.zeros((0, arbitrage_nb.G_COLS))
        self.params = np.zeros(0, dtype=arbitrage_nb.ARBITRAGE_PARAMS)
        self._legs = np.zeros((0, arbitrage_nb.L_COLS))

    def warmup(self, cfg: AnomalyDetectionConfig) -> Warmup:
        """No window to fill: it compares live quotes (each no older than ``max_age_s``), so
        one quote of the market is enough."""
        return Warmup(samples=1, seconds=0.0)

    def configure(self, info: SymbolInfo) -> None:
        s, cfg = info.sid, info.cfg.arbitrage
        key = group_key(info.symbol, cfg.tracking_quotes)
        g = self._groups.setdefault(key, len(self._groups))
        venue = self._venues.setdefault(info.exchange, len(self._venues))
        if self.group_of.shape[0] <= s:
            more = np.zeros(s + 1 - self.group_of.shape[0], np.int64)
            self.group_of = np.concatenate([self.group_of, more])
            self.venue_of = np.concatenate([self.venue_of, more])
        self.group_of[s], self.venue_of[s] = g, venue
        self.members = grow(self.members, g + 1, fill=-1)
        row = self.members[g]
        if s not in row:
            free = np.flatnonzero(row < 0)
            if free.size == 0:
                self.members = grow(self.members, self.members.shape[0], row.size + 1, fill=-1)
                free = np.array([row.size])
            self.members[g, free[0]] = s
        self.quotes = grow_rows(self.quotes, s + 1)
        self.quotes[s, :] = 0.0
        self.groups = grow_rows(self.groups, g + 1)
        self.params = grow_records(self.params, s + 1)
        params = self.params[s]
        fee = cfg.fee(info.exchange)
        params["fee"] = fee
        params["edge_bps"] = cfg.min_edge_bps if cfg.enabled else np.inf
        params["max_age_s"] = cfg.max_age_s
        params["min_notional"] = cfg.min_notional
        params["samples"] = 2 * info.cfg.min_samples
        while len(self._names) <= s:
            self._names.append(("", "", 0.0))
        self._names[s] = (info.exchange, info.symbol, fee)

    def process(self, cols: QuoteCols, fires: np.ndarray, m: int) -> int:
        self._legs = np.zeros((cols.sid.shape[0], arbitrage_nb.L_COLS))
        return int(
            arbitrage_nb.arbitrage_batch_nb(
                cols.sid,
                cols.ts,
                cols.bid,
                cols.ask,
                cols.bid_size,
                cols.ask_size,
                self.group_of,
                self.venue_of,
                self.members,
                self.quotes,
                self.groups,
                self.params,
                self._legs,
                fires,
                m,
            )
        )

    def reasons(self, kind: AnomalyKind, finding: Finding, quote: str) -> list[str]:
        legs = self._legs[finding.row]
        buy_ex, buy_sym, buy_fee = self._names[int(legs[arbitrage_nb.L_BUY])]
        sell_ex, sell_sym, sell_fee = self._names[int(legs[arbitrage_nb.L_SELL])]
        buy_px, sell_px = legs[arbitrage_nb.L_BUY_PX], legs[arbitrage_nb.L_SELL_PX]
        base = buy_sym.split("-")[0]
        size = finding.aux
        return [
            f"Buy {buy_ex} {buy_sym} at {buy_px:g}, sell {sell_ex} {sell_sym} at {sell_px:g}",
            f"Net edge {finding.value:+.1f} bps after taker fees "
            f"({buy_fee * 1e4:.1f} + {sell_fee * 1e4:.1f} bps); gross {finding.mean:+.1f} bps",
            f"Executable size: {size:g} {base} ({size * buy_px:,.2f} {buy_sym.split('-')[1]})",
        ]
