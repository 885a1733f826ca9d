"""Candle-mode detection a chunk ahead of the trading path.

On candles the detectors read market data only (the candle trades; the runner's quotes are
not market data), so what they find never depends on what the trading path did. The runner
therefore hands them the trades of :data:`CHUNK` candle groups at a time and publishes each
finding on the trading hub at the close of its candle, right after the candle: where the
per-candle flush of the live path publishes it.

An anomaly carries the price change of its market after its candle and the time of its
candle's close (the ones a flush at that close gives it). The run's engine reads a whole
chunk in one pass, micro-batches that end at group ends, and its emitter's ``row_context``
hook gives each finding those two: the price detector keeps the change of each row's market
after the row (``PriceDetector.pct_rows``), and the finding takes the one of the last row of
its market in its group. Same detectors, same trades, same findings with the same fields in
the same order (within a group, detector by detector, as one flush per group publishes
them): the kernels read the trades the same in any batches, as the whole path's one batch per
candle shows.

The engine is not handed ``Trade`` events: the candle trades of a chunk are columns (the
ones the engine would build from them, in micro-batches of its ``batch_size`` as its hub
handler flushes them), and a ``Trade`` is built only for a row where a detector finds
something (:class:`CandleTrades`). The candle trades carry no venue notional, so the
columns' notionals are the NaN the engine reads from such trades.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from cryptomon.backtest.data import CandleSeries
from cryptomon.backtest.pipeline import Pipeline
from cryptomon.detect.base import TradeCols
from cryptomon.detect.price import NO_ROWS
from cryptomon.events import Anomaly, Side, Trade

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


class CandleTrades:
    """The candle trades of rows ``which``/``rows`` closing at ``at``, as detector columns;
    ``self[i]`` is the :class:`Trade` of row ``i`` (built on demand, for a finding)."""

    def __init__(
        self, series: list[CandleSeries], which: np.ndarray, rows: np.ndarray, at: np.ndarray
    ) -> None:
        self.series = series
        self.which = which
        self.rows = rows
        self.at = at
        n = which.shape[0]
        self.px = np.empty(n)
        self.amt = np.empty(n)
        self.buy = np.empty(n)
        for i, s in enumerate(series):
            mine = which == i
            r = rows[mine]
            close = s.close[r].astype(np.float64)
            self.px[mine] = close
            self.amt[mine] = s.volume[r]
            self.buy[mine] = np.where(close >= s.open[r], 1.0, 0.0)

    def __len__(self) -> int:
        return int(self.which.shape[0])

    def __getitem__(self, i: int) -> Trade:
        return candle_trade(self.series[int(self.which[i])], int(self.rows[i]), float(self.at[i]))


class _Slice:
    """Rows ``lo:hi`` of a :class:`CandleTrades`, indexed from 0 (a batch's events)."""

    def __init__(self, trades: CandleTrades, lo: int, hi: int) -> None:
        self.trades, self.lo, self.hi = trades, lo, hi

    def __len__(self) -> int:
        return self.hi - self.lo

    def __getitem__(self, i: int) -> Trade:
        if not 0 <= i < self.hi - self.lo:
            raise IndexError(i)
        return self.trades[self.lo + i]


def feed_trades(
    engine: Any,
    sids: np.ndarray,
    trades: CandleTrades,
    lo: int,
    hi: int,
    *,
    ends: list[int] | None = None,
) -> None:
    """Rows ``lo:hi`` of ``trades`` through ``engine`` (a ``DetectorEngine``) as its trade
    handler and flush would run them: micro-batches of at most ``batch_size`` rows, each
    through the trade detectors in registration order (``run_trade_columns``), counted as it
    counts them.
    ``sids``: the engine's market id per series; ``ends``: the ascending rows where candle
    groups end, where a micro-batch ends (one longer than ``batch_size`` is cut)."""
    cap = engine.config.batch_size
    a = lo
    while a < hi:
        b = min(hi, a + cap)
        if ends is not None:
            k = bisect.bisect_right(ends, b) - 1
            if k >= 0 and ends[k] > a:
                b = ends[k]
        cols = TradeCols(
            sid=sids[trades.which[a:b]],
            ts=trades.at[a:b],
            px=trades.px[a:b],
            amt=trades.amt[a:b],
            buy=trades.buy[a:b],
        )
        engine.run_trade_columns(cols, _Slice(trades, a, b))
        a = b


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
        *,
        each_chunk: Callable[[], None] | None = None,
    ) -> None:
        """``each_chunk``: called before the detectors read each chunk (the runner's
        :func:`gc.freeze`, see :meth:`BacktestRunner.run`)."""
        self.each_chunk = each_chunk
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
        self._engine_sids: np.ndarray | None = None
        engine = pipe.detectors
        self._price = None if engine is None else engine.detectors.get("price")
        self._pct_rows = np.empty(0)  # the price detector's change per row (see _reading)
        # the chunk being read: its market id per row, its groups' ends and closes
        self._row_sids = np.zeros(0, dtype=np.int64)
        self._ends: list[int] = []
        self._closes: list[float] = []

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

    def _row_context(self, events: Any, row: int) -> tuple[float, float]:
        """The emitter's ``row_context``: (detection time, price change) of the finding at
        ``row`` of the micro-batch ``events`` (a :class:`_Slice` of the chunk): the close of
        its candle group and the change of its market after its last row in the group."""
        at = events.lo + row
        g = bisect.bisect_right(self._ends, at)
        if self._price is None:
            return self._closes[g], math.nan
        sids = self._row_sids
        last = min(self._ends[g], events.hi) - 1
        while sids[last] != sids[at]:
            last -= 1
        return self._closes[g], float(self._pct_rows[last - events.lo])

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """The engine's emitter takes its findings' context from :meth:`_row_context`, the
        price detector keeps each row's change (only while a chunk is read: a flush of the
        same engine, :meth:`Pipeline.detect`, is the live one)."""
        engine = self.pipe.detectors
        engine.emitter.row_context = self._row_context
        if self._pct_rows.shape[0] < engine.config.batch_size:  # a slot per micro-batch row
            self._pct_rows = np.empty(engine.config.batch_size)
        if self._price is not None:
            self._price.pct_rows = self._pct_rows
        try:
            yield
        finally:
            engine.emitter.row_context = None
            if self._price is not None:
                self._price.pct_rows = NO_ROWS

    def _sids(self) -> np.ndarray:
        """The engine's market id per series, registered in the order the markets' first
        trades reach it (as its hub handler registers them)."""
        sids = self._engine_sids
        if sids is None:
            engine = self.pipe.detectors
            first = np.unique(self.which, return_index=True)[1]
            order = np.argsort(first, kind="stable")
            sids = np.zeros(len(self.series), dtype=np.int64)
            for i in np.unique(self.which)[order].tolist():
                sids[i] = engine.symbol_id(self.series[i].exchange, self.series[i].symbol)
            self._engine_sids = sids
        return sids

    def _detect(self, lo: int, hi: int) -> None:
        if self.each_chunk is not None:
            self.each_chunk()
        a, b = int(self.starts[lo]), int(self.starts[hi])
        per_group = np.diff(self.starts[lo : hi + 1])
        at = np.repeat(self.closes[lo:hi], per_group)
        trades = CandleTrades(self.series, self.which[a:b], self.rows[a:b], at)
        closes = self.closes[lo:hi].tolist()
        ends = np.cumsum(per_group).tolist()  # trades up to the end of each group
        sids = self._sids()
        self._row_sids, self._ends, self._closes = sids[trades.which], ends, closes
        with self._reading():
            feed_trades(self.pipe.detectors, sids, trades, 0, len(trades), ends=ends)
        self.pipe.detect_clock.set(closes[-1])
        for anomaly in self.pipe.take_found():
            self._due.setdefault(lo + self._group(closes, anomaly.ts), []).append(anomaly)
        self._groups.extend(k for k in sorted(self._due) if k >= lo)
        self._done = hi

    @staticmethod
    def _group(closes: list[float], ts: float) -> int:
        return min(bisect.bisect_left(closes, ts), len(closes) - 1)
