"""The backtest pipeline: the live detectors, signal generator, order engine (risk checks,
protection) and paper broker on one hub and a :class:`~cryptomon.clock.ManualClock`.

The candle driver turns each candle into market data the live components read:

- quotes (``BookTop``) along a path through the candle, in four slots at ``start``,
  ``+1/4``, ``+1/2`` and ``+3/4`` of the interval: open, first extreme, second extreme, close.
  The half spread is ``backtest.slippage_bps`` of the price or
  ``backtest.slippage_range_fraction`` of the candle range, whichever is larger, so a market
  order pays it (the paper broker fills at the quote); the bid is rounded down and the ask
  up to the paper venue's tick (``trading.paper.tick_size``, inferred from the data by
  default), so every quote, fill and mark is a price the venue could print;
- **SL/TP inside a candle** (documented, conservative): with a long position the low is
  visited before the high, with a short the high before the low, so when one candle touches
  both the stop and the take-profit the stop fills first (the worse outcome). Every protection
  level crossed between two path points is quoted on the way: a stop fills at the level minus
  (long) / plus (short) the half spread (on the tick), a take-profit at its level (the first
  tick at or beyond it when the level is between ticks); a candle opening beyond
  a level (a gap) exits at the open's quote;
- at the candle's end one public ``Trade`` carrying its volume (the trade detectors see candle
  buckets) and the closed ``Candle`` (the indicator strategy); signals from it fill at the
  close's quote.

The quotes are an execution device, not market data: the book detectors (spread, imbalance,
arbitrage, divergence) do not run on candles (they run on recordings and books). A market
with no position, protection or open order (idle) is quoted only at its close: nobody else
reads its path.

After each step the loop runs until the engine is idle (no new trading event, no extra task),
so the same input gives the same orders, fills and trades every run.

With ``backtest.fast_path`` (the default) only the candles where something can happen take
that path; the others are skipped or get their close quote (:mod:`cryptomon.backtest.fastlanes`,
:mod:`cryptomon.backtest.fastpath`), with the same orders, fills, equity and statistics.
The parts: :mod:`~cryptomon.backtest.result` (the result, the run's settings),
:mod:`~cryptomon.backtest.candlepath` (the whole path of a candle group: quotes, levels,
close, mark) and :mod:`~cryptomon.backtest.fastlanes` (the fast driver).
"""

from __future__ import annotations

import gc
import time

import numpy as np

from cryptomon.backtest.candle_detect import CandleAnomalies
from cryptomon.backtest.candlepath import SLOTS, CandlePath
from cryptomon.backtest.data import CandleSeries
from cryptomon.backtest.fastlanes import FastLanes
from cryptomon.backtest.pipeline import Pipeline
from cryptomon.backtest.result import BacktestResult, backtest_settings, make_result
from cryptomon.config import Settings

# the young generation's collection threshold while a run that froze the process's objects
# runs (see BacktestRunner.run)
YOUNG_THRESHOLD = 50_000

__all__ = [
    "SLOTS",
    "BacktestResult",
    "BacktestRunner",
    "backtest_settings",
    "make_result",
]


class BacktestRunner:
    """Builds the pipeline for ``settings`` and drives ``series`` through it (see module doc)."""

    def __init__(
        self, settings: Settings, series: list[CandleSeries], *, fast: bool | None = None
    ) -> None:
        """``fast``: the fast candle path (default ``backtest.fast_path``); False drives
        every candle through the whole path (the reference the fast path is tested against)."""
        self.settings = backtest_settings(settings, series)
        self.fast = self.settings.backtest.fast_path if fast is None else fast
        self.series = [s for s in series if len(s)]
        start = min((float(s.ts[0]) for s in self.series), default=0.0)
        self.pipe = Pipeline(self.settings, start=start, candles=True)
        self.clock = self.pipe.clock
        self.hub = self.pipe.hub
        self.engine = self.pipe.engine
        self.path = CandlePath(self.pipe, self.settings)
        self.fast_lanes = FastLanes(self.path, self.series)
        self._freezing = False  # run() froze the process's objects: it refreezes per chunk

    @property
    def lanes(self) -> dict[str, int]:
        """Fast path: candle groups not driven, given close quotes only, given close quotes
        with signals the engine drops, and driven through the whole path."""
        return self.fast_lanes.lanes

    async def run(self) -> BacktestResult:
        """Start the components, drive every candle, stop; the result of the run."""
        t0 = time.perf_counter()
        # the process's objects before the run (modules, compiled kernels, ...) are left out
        # of the garbage collector's passes while it runs (unless the process froze some
        # itself), and so are the run's own survivors, frozen again before each chunk of
        # candles is detected (the signals, fills and columns it keeps for its result): the
        # old generation's passes walk only what the current chunk made
        # the same run also collects its young generation every YOUNG_THRESHOLD net
        # allocations instead of every 700 (CPython's default): its young objects are mostly
        # the events of a candle, soon freed by their count; fewer, larger passes over the
        # rest (the benchmark's year: 191 -> 22 young passes); a threshold the
        # process set higher, or 0 (automatic collection off), is kept
        frozen = self._freezing = gc.get_freeze_count() == 0
        threshold = gc.get_threshold()
        if frozen:
            gc.freeze()
            if 0 < threshold[0] < YOUNG_THRESHOLD:
                gc.set_threshold(YOUNG_THRESHOLD, *threshold[1:])
        try:
            await self.pipe.start()
            try:
                equity_ts, equity, exposure = await self._drive()
            finally:
                await self.pipe.stop()
        finally:
            if frozen:
                gc.unfreeze()
                gc.set_threshold(*threshold)
        return make_result(
            self.pipe,
            series=self.series,
            equity=(equity_ts, equity, exposure),
            seconds=time.perf_counter() - t0,
        )

    def _timeline(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(open time, series index, row) in time order (stable: series order at equal times)."""
        ts = np.concatenate([s.ts for s in self.series])
        which = np.concatenate([np.full(len(s), i) for i, s in enumerate(self.series)])
        rows = np.concatenate([np.arange(len(s)) for s in self.series])
        order = np.argsort(ts, kind="stable")
        return ts[order], which[order], rows[order]

    async def _drive(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        times, which, rows = timeline = self._timeline()
        n = len(times)
        equity_ts = np.empty(n)
        equity = np.empty(n)
        exposure = np.zeros(n)
        # every market's candle opening at the same time moves through its slots together
        starts = np.append(np.flatnonzero(np.diff(times, prepend=-np.inf)), n)
        found = CandleAnomalies(
            self.pipe,
            self.series,
            timeline,
            starts,
            each_chunk=gc.freeze if self._freezing else None,
        )
        if self.fast:
            await self.fast_lanes.drive(timeline, starts, found, (equity_ts, equity, exposure))
            return equity_ts, equity, exposure
        for g in range(len(starts) - 1):
            lo, hi = int(starts[g]), int(starts[g + 1])
            t = float(times[lo])
            group = [
                (self.series[i], r)
                for i, r in zip(which[lo:hi].tolist(), rows[lo:hi].tolist(), strict=True)
            ]
            await self.path.candles(t, group, found.due(g))
            equity_ts[lo:hi] = t + group[0][0].seconds
            equity[lo:hi], exposure[lo:hi] = self.path.mark()
        return equity_ts, equity, exposure
