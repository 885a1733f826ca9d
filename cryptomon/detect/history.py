"""Past market data into the trade detectors' windows, their findings dropped: venue history
and a restart's stored trades or candles (the detector engine routes them here).

Venue history (trades the quality layer publishes as a ``historical``
:class:`~cryptomon.events.FlaggedTrade`, sent by the venue on subscribe) runs through the
trade detectors before the live trades of the same flush and counts towards their warm-up,
but never makes an anomaly. A past trade older than the newest trade the detectors already
saw of its market is skipped (a window cannot take the past after the present).

At start the daemon warms the windows from the store before the feeds run
(``cryptomon.app.warmstart``): stored trades take the path of venue history
(:meth:`HistoryWarmer.from_trades`), or else stored 1-minute candles warm the detectors
whose bucket statistics candles reproduce (:meth:`HistoryWarmer.from_candles`,
:mod:`cryptomon.detect.stored`); neither is published on the hub nor alerted on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cryptomon.detect.base import TradeCols
from cryptomon.detect.gate import WarmupGate
from cryptomon.detect.registry import Detector, Source
from cryptomon.detect.stored import after_candles, candle_plan, chunks, warms_from_candles
from cryptomon.events import Candle, Trade


class HistoryWarmer:
    """The trade detectors (``detectors``, in the engine's order) warmed with past data; the
    engine's warm-up gate counts it, the engine's findings array takes (and forgets) what
    the kernels find."""

    def __init__(
        self,
        *,
        detectors: list[Detector],
        gate: WarmupGate,
        fires: np.ndarray,
        trade_cols: Callable[[list[Any]], TradeCols],
        cap: int,
    ) -> None:
        self._detectors = detectors
        self._gate = gate
        self._fires = fires
        self._trade_cols = trade_cols  # events -> columns, new markets registered
        self._cap = cap
        self.warmed = 0  # venue history fed to the windows
        self.skipped = 0  # past trades older than what the windows already hold
        # stored rows that warmed the windows at start, by source (trades, candles), and the
        # markets they warmed
        self.store_warmed: Counter[str] = Counter()
        self.store_markets: set[int] = set()
        # market id -> end of the last bucket its candle-warmed detectors hold: history of
        # that market older than it would land in their running bucket (it is in the candles)
        self._candles_until: dict[int, float] = {}

    def venue(self, evs: list[Any]) -> int:
        """A batch of venue history (one flush's); returns the trades taken."""
        n = self._warm(evs)
        self.warmed += n
        return n

    def _warm(self, evs: list[Any]) -> int:
        """Past trades through the trade detectors, their findings dropped; those older than
        their market's newest trade seen are skipped (and counted). Returns the trades
        taken."""
        cols = self._trade_cols(evs)
        seen = self._gate.seen[Source.TRADES]
        keep = seen.not_before_last(cols.sid, cols.ts)
        if keep is not None:
            self.skipped += len(evs) - len(keep)
            if not keep:
                return 0
            evs = [evs[i] for i in keep]
            cols = self._trade_cols(evs)
        after = after_candles(cols, self._candles_until)
        for det in self._detectors:
            if after is not None and warms_from_candles(det):
                if after.sid.shape[0]:  # the candles hold the rest
                    det.process(after, self._fires, 0)
                continue
            det.process(cols, self._fires, 0)  # findings discarded
        seen.add(cols.sid, cols.ts)
        return len(evs)

    def from_trades(self, trades: Sequence[Trade], sid_of: Callable[[str, str], int]) -> int:
        """Stored trades (oldest first) through the path of venue history, in batches of
        the engine's size. Returns the trades taken (older ones than a market's newest
        trade seen are skipped, as history is)."""
        taken = 0
        for i in range(0, len(trades), self._cap):
            taken += self._warm(list(trades[i : i + self._cap]))
        self.store_warmed["trades"] += taken
        self.store_markets.update(sid_of(t.exchange, t.symbol) for t in trades)
        return taken

    def from_candles(
        self,
        candles: Sequence[Candle],
        now: float,
        *,
        sid_of: Callable[[str, str], int],
        bucket_of: Callable[[int], float],
    ) -> tuple[int, list[str]]:
        """Stored 1-minute candles into the windows of the trade detectors they reproduce
        (price and volume), for the buckets completed before ``now``. Only those detectors
        count the candles towards their warm-up (:meth:`WarmupGate.credit`): the whale
        detector of the same market stays cold. Returns (the markets warmed, those left out
        as "exchange:symbol": their bucket is no whole number of minutes)."""
        dets = [d for d in self._detectors if warms_from_candles(d)]
        if not dets:
            return 0, []
        plan = candle_plan(candles, now, sid_of=sid_of, bucket_of=bucket_of)
        for batch in chunks(plan.cols, self._cap):
            for det in dets:
                det.process(batch, self._fires, 0)  # findings discarded
        for sid, market in plan.markets.items():
            for det in dets:
                self._gate.credit(det, sid, market.samples, market.first)
            self._candles_until[sid] = market.until
            self.store_warmed["candles"] += market.candles
            self.store_markets.add(sid)
        return len(plan.markets), plan.skipped
