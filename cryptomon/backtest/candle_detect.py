"""Candle-mode detection a chunk ahead of the trading path.

On candles the detectors read market data only (the candle trades; the runner's quotes are
not market data), so what they find never depends on what the trading path did. The runner
therefore hands them the trades of :data:`CHUNK` candle groups at a time and publishes each
finding on the trading hub at the close of its candle, right after the candle: where the
per-candle flush of the live path publishes it.

An anomaly carries the price change of its market at the end of the batch it was found in,
so a batch must end where a finding is. A scout engine (the same detectors) runs over the
whole chunk first to find those candles; the run's engine then reads the chunk in batches
that end at each of them. Same detectors, same trades, same findings with the same fields
in the same order, for two kernel passes over arrays instead of one call per candle.
"""

from __future__ import annotations

import bisect

import numpy as np

from cryptomon.backtest.data import CandleSeries
from cryptomon.backtest.pipeline import Pipeline
from cryptomon.clock import ManualClock
from cryptomon.events import Anomaly, Side, Trade
from cryptomon.hub import Hub

CHUNK = 4096  # candle groups per detector batch


def candle_trade(series: CandleSeries, row: int, now: float) -> Trade:
    """The public trade a candle closes with: its volume at its close, the side of its move."""
    close, open_ = float(series.close[row]), float(series.open[row])
    side: Side = "buy" if close >= open_ else "sell"
    return Trade(
        exchange=series.exchange,
        symbol=series.symbol,
        ts=now,
        ts_recv=now,
        price=close,
        amount=float(series.volume[row]),
        side=side,
    )


class CandleAnomalies:
    """The anomalies due at each candle group's close, computed a chunk at a time.

    Group ``g`` is ``timeline[starts[g]:starts[g + 1]]`` (the candles opening at one time,
    :meth:`~cryptomon.backtest.runner.BacktestRunner.groups`); it closes at
    ``max(previous close, open time + interval)``, as the runner's clock does.
    """

    def __init__(
        self,
        pipe: Pipeline,
        series: list[CandleSeries],
        timeline: tuple[np.ndarray, np.ndarray, np.ndarray],
        starts: np.ndarray,
    ) -> None:
        self.pipe = pipe
        self.series = series
        self.times, self.which, self.rows = timeline
        self.starts = starts
        seconds = np.array([s.seconds for s in series], dtype=np.float64)
        ends = self.times[starts[:-1]] + seconds[self.which[starts[:-1]]]
        self.closes = np.maximum.accumulate(np.maximum(ends, pipe.clock.time()))
        self._done = 0  # groups whose trades the detectors have read
        self._due: dict[int, list[Anomaly]] = {}
        self._groups: list[int] = []  # groups with findings, ascending
        self._scout = Hub()
        self._scouted: list[Anomaly] = []
        self._scout.subscribe(Anomaly, self._scouted.append, name="backtest.scout")
        self.scout = pipe.detector_engine(self._scout, ManualClock(0.0))

    def due(self, g: int) -> list[Anomaly]:
        """What the detectors found on the trades of group ``g`` (in their order)."""
        if self.pipe.detectors is None:  # anomaly_detection.enabled: false
            return []
        while g >= self._done:  # chunks in order: the detectors read every candle's trade
            self._detect(self._done, min(len(self.closes), self._done + CHUNK))
        return self._due.pop(g, [])

    def next_due(self, g: int) -> int:
        """The first group from ``g`` on with a finding (the number of groups if none)."""
        total = len(self.closes)
        if self.pipe.detectors is None:
            return total
        while True:
            i = bisect.bisect_left(self._groups, g)
            if i < len(self._groups):
                return self._groups[i]
            if self._done >= total:
                return total
            self._detect(self._done, min(total, self._done + CHUNK))

    def _detect(self, lo: int, hi: int) -> None:
        a, b = int(self.starts[lo]), int(self.starts[hi])
        per_group = np.diff(self.starts[lo : hi + 1])
        at = np.repeat(self.closes[lo:hi], per_group).tolist()
        trades = [
            candle_trade(self.series[i], r, now)
            for i, r, now in zip(self.which[a:b].tolist(), self.rows[a:b].tolist(), at, strict=True)
        ]
        closes = self.closes[lo:hi].tolist()
        ends = np.cumsum(per_group).tolist()  # trades up to the end of each group
        for trade in trades:
            self._scout.publish(trade)
        self.scout.flush()
        firing = sorted({self._group(closes, f.ts) for f in self._scouted})
        self._scouted.clear()
        first = 0
        for g in [*firing, hi - lo - 1]:
            if ends[g] <= first:
                continue
            for anomaly in self.pipe.detect(trades[first : ends[g]], closes[g]):
                self._due.setdefault(lo + self._group(closes, anomaly.ts), []).append(anomaly)
            first = ends[g]
        self._groups.extend(k for k in sorted(self._due) if k >= lo)
        self._done = hi

    @staticmethod
    def _group(closes: list[float], ts: float) -> int:
        return min(bisect.bisect_left(closes, ts), len(closes) - 1)
