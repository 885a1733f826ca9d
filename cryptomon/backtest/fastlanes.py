"""The backtest's fast candle path (``backtest.fast_path``): only the candle groups where
something can happen take the whole path (:class:`~cryptomon.backtest.candlepath.CandlePath`);
the others are skipped, or get their close quotes, walked in stretches for a single market.
The fast-vs-slow tests (``tests/unit/backtest/test_fastpath.py``) hold both to the same
orders, fills, equity curve and statistics."""

from __future__ import annotations

from bisect import bisect_left
from decimal import Decimal
from typing import Any

import numpy as np

from cryptomon.backtest.candle_detect import CandleAnomalies
from cryptomon.backtest.candlepath import CandlePath
from cryptomon.backtest.data import CandleSeries, Column, columns
from cryptomon.backtest.dropped import DroppedSignals
from cryptomon.backtest.fastpath import SeriesIndicators, indicator_signals, spec_totals
from cryptomon.backtest.stretch import (
    CloseMids,
    close_mids,
    plain_equity,
    reach_bounds,
    safe_until,
    stretch_equity,
)
from cryptomon.trading.protection import Protection

ZERO = Decimal(0)


class FastLanes:
    """The fast driver of ``series`` over ``path`` (its :meth:`drive`); ``lanes`` counts the
    groups skipped, given close quotes, given close quotes with dropped signals, and driven."""

    def __init__(self, path: CandlePath, series: list[CandleSeries]) -> None:
        """``series``: the runner's non-empty series, in timeline order."""
        self.path = path
        self.pipe = path.pipe
        self.settings = path.settings
        self.clock = path.clock
        self.engine = path.engine
        self.series = series
        self._safe: dict[tuple[str, str], tuple[Any, int]] = {}  # market -> (levels, until)
        self._reach: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self._mids: dict[tuple[str, str], CloseMids] = {}
        # per market: (fires, side, strength, grade rank) of the indicator signal of each row
        self._fires: dict[tuple[str, str], tuple[np.ndarray, ...]] = {}
        self._fire_rows: dict[tuple[str, str], Column] = {}  # the rows of fires[0]
        self._starts: tuple[np.ndarray, Column] | None = None  # see _times
        # the signals the engine would drop go to the ledger only (see drive)
        self.dropped = DroppedSignals(path, self._fires, self._reach, self._safe_candle)
        self.lanes = {"skipped": 0, "close": 0, "dropped": 0, "whole": 0}

    async def drive(
        self,
        timeline: tuple[np.ndarray, np.ndarray, np.ndarray],
        starts: np.ndarray,
        found: CandleAnomalies,
        out: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> None:
        """The candles through the same path, entering it only where something can happen:

        - a group (the candles opening at one time) with a signal (an indicator signal, known
          from :func:`~cryptomon.backtest.fastpath.indicator_signals`, or an anomaly, known a
          chunk ahead) or with a market whose stop or take-profit its range could reach runs
          the whole path (:meth:`CandlePath.candles`);
        - while every market is idle (flat, no protection, no open order) the groups up to the
          next signal are not driven at all: nothing reads them (the equity is the cash);
        - a group whose positions are safe (their levels out of reach of the candle's range
          widened by twice the half spread; no trailing stop, no open order) gets only its
          close quotes, which mark the positions as the whole path's last quote does;
        - so does a safe group whose indicator signals the engine would drop
          (:meth:`DroppedSignals.check`); the generator publishes those signals, to the
          ledger only (:meth:`DroppedSignals.publish`: their outcome from the kernel's
          scores). With one market, a flat stretch is walked on through such signals.

        Every other group, and every anomaly, takes the whole path. The fast-vs-slow tests
        (``tests/unit/backtest/test_fastpath.py``) hold the two paths to the same orders,
        fills, equity curve and statistics.
        """
        times, which, rows = timeline
        equity_ts, equity, exposure = out
        total = len(starts) - 1
        seconds = np.array([s.seconds for s in self.series], dtype=np.float64)
        first = starts[:-1]
        equity_ts[:] = np.repeat(times[first] + seconds[which[first]], np.diff(starts))
        fired = self._signal_groups(timeline, starts, found)
        # one market with one candle per group: group g is row g
        single = len(self.series) == 1 and total == n_rows(self.series[0], rows)
        at = columns(starts)  # read per group as Python ints, not numpy scalars
        fi = 0  # fired[fi] is the next group with an indicator signal
        g = 0
        while g < total:
            if fi < len(fired) and fired[fi] < g:
                fi = bisect_left(fired, g, fi)
            due = found.next_due(g)
            signal_at = min(fired[fi] if fi < len(fired) else total, due)
            lo, hi = at[g], at[g + 1]
            if signal_at > g and self._all_idle():
                end = at[signal_at]
                equity[lo:end], exposure[lo:end] = self.path.mark()
                self.lanes["skipped"] += signal_at - g
                g = signal_at
                continue
            if single:  # a safe position, or none at a signal: its lanes in one walk
                walk = self._idle_walk if signal_at == g and self._all_idle() else self._walk
                walked = walk(self.series[0], g, due, times, out)
                if walked > g:
                    g = walked
                    continue
            await self._drive_group(g, timeline, lo=lo, hi=hi, signal_at=signal_at, found=found)
            if hi == lo + 1:  # one candle: item stores, cheaper than slice stores
                equity[lo], exposure[lo] = self.path.mark()
            else:
                equity[lo:hi], exposure[lo:hi] = self.path.mark()
            g += 1
        self.path.flush()  # a walk's last deferred close quote

    async def _drive_group(
        self,
        g: int,
        timeline: tuple[np.ndarray, np.ndarray, np.ndarray],
        *,
        lo: int,
        hi: int,
        signal_at: int,
        found: CandleAnomalies,
    ) -> None:
        """Group ``g`` (timeline rows ``lo:hi``) in its lane: close quotes only (safe), close
        quotes and its signals to the ledger (dropped by the engine), or the whole path."""
        times, which, rows = timeline
        t = float(times[lo])
        if hi == lo + 1:  # one candle (one market): no slices
            group = [(self.series[int(which[lo])], int(rows[lo]))]
        else:
            group = [
                (self.series[i], r)
                for i, r in zip(which[lo:hi].tolist(), rows[lo:hi].tolist(), strict=True)
            ]
        quiet = signal_at > g and all(self._safe_candle(s, r) for s, r in group)
        dropped = not quiet and signal_at == g < found.next_due(g)
        dropped = dropped and self.dropped.check(t, group)
        if quiet or dropped:
            self.path.close_quotes(t, group)
            if dropped:
                with self.dropped.publishing():
                    for series, row in group:
                        self.dropped.publish(series, row, t)
                self.pipe.absorb()
            self.lanes["dropped" if dropped else "close"] += 1
        else:
            still = self._still(group)
            await self.path.candles(t, group, found.due(g), still=still)
            self.lanes["whole"] += 1

    def _walk(
        self,
        series: CandleSeries,
        g: int,
        due: int,
        times: np.ndarray,
        out: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> int:
        """The only market holds a safe position at row ``g`` (no anomaly before row
        ``due``): every row up to its next reachable level or ``due`` is a close quote and a
        mark (:meth:`_close_stretch`), or a dropped signal (:meth:`DroppedSignals.check`), as
        the group by group loop would drive them. Returns the first row not driven (``g``:
        none), where the engine acts on a signal or the position is no longer safe.

        A stretch followed by a dropped signal leaves its last close quote unpublished (the
        signal's own close quote replaces it before anything reads a quote): the check of
        the signal reads the stretch's last equity instead of the portfolio's. While the
        position alone makes the equity, a dropped signal's close quote is deferred
        (:meth:`CandlePath.defer_close`: published when a later quote, mark or check needs
        it, or replaced by the next quote) and its equity valued as the engine's mark of that
        quote would value it."""
        if g >= due or self.path.idle(series) or not self._safe_candle(series, g):
            return g
        key = (series.exchange, series.symbol)
        end = min(due, self._safe[key][1] + 1)
        _, equity, exposure = out
        rows = self._rows_firing(key, g, end)
        portfolio = self.engine.portfolio
        # the position alone in the equity: a dropped signal's close quote is deferred
        # (CandlePath.defer_close) and its equity valued as stretch_equity values a quote
        plain = plain_equity(portfolio, series)
        cash = portfolio.cash
        amount = portfolio.positions[key].amount if plain else ZERO
        at = g  # the first row not yet driven
        held = None  # the equity after row at - 1 when its quote is not published
        with self.dropped.publishing():
            batched = self._held_batch(series, g, rows, times, out) if plain else 0
            if batched:  # the loop below goes on from the first row not batched
                last = rows[batched - 1]
                at, rows = last + 1, rows[batched:]
                held = cash + amount * self._close_mids(series).mark(last)
            for r in rows:
                stretched = r > at
                if stretched:
                    held = self._close_stretch(series, at, r, times, (equity, exposure), last=False)
                    self.lanes["close"] += r - at
                    at = r
                t = float(times[r])
                if not self.dropped.check_row(t, series, r, held):
                    if stretched and held is not None:  # the engine acts at r: the last quote
                        self.path.close_quotes(float(times[r - 1]), [(series, r - 1)])
                    return at  # a deferred quote waits for its next reader
                if plain:
                    mid = self.path.defer_close(t, series, r)
                else:
                    mid = None
                    self.path.close_quotes(t, [(series, r)])
                self.dropped.publish(series, r, t, mid=mid)
                self.pipe.absorb()
                if mid is not None:
                    # as the engine marks the quote (the float mid is the signal's price)
                    held = cash + amount * self._close_mids(series).mark(r)
                    equity[r], exposure[r] = float(held), 1.0
                else:
                    equity[r], exposure[r] = self.path.mark()
                    held = None
                self.lanes["dropped"] += 1
                at = r + 1
        if end > at:
            self._close_stretch(series, at, end, times, (equity, exposure))
            self.lanes["close"] += end - at
        return end

    def _held_batch(
        self,
        series: CandleSeries,
        g: int,
        rows: Column,
        times: np.ndarray,
        out: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> int:
        """:meth:`_walk`'s leading dropped signals over a plain position (its equity the
        cash and this market's spot position, no zero bid among the rows' close quotes),
        driven at once: the firing ``rows`` from row ``g`` that
        :meth:`DroppedSignals.held_run` passes, and the rows between them, are valued in one
        pass (:func:`stretch_equity`: each row's equity as the engine marks its close quote,
        the dropped signals' deferred quotes as the stretches' unpublished ones); only the
        last dropped signal's close quote is deferred (:meth:`CandlePath.defer_close`, the
        clock moved as the quotes before it would move it), their signals join the batch
        with their ends and mids (:meth:`DroppedSignals.queue`). Returns how many of
        ``rows`` were driven (0: none, nothing done but what the first row's check does)."""
        mids = self._close_mids(series)
        if not rows or mids.zeros[rows[-1] + 1] != mids.zeros[g]:
            return 0
        starts = self._times(times)
        run = self.dropped.held_run(series, rows, starts, mids, g)
        if not run:
            return 0
        last = rows[run - 1]
        valued = stretch_equity(self.engine.portfolio, series, mids, g, last + 1)
        if valued is None:  # held_run passed a plain position: not reached
            return 0
        _, equity, exposure = out
        equity[g : last + 1], exposure[g : last + 1] = valued[0], 1.0
        step = series.seconds
        now = self.clock.time()
        ends: list[float] = []
        for row in rows[: run - 1]:
            now = max(now, starts[row] + step)  # the clock after the row's close quote
            ends.append(now)
        self.clock.set(now)  # where the quotes before the last one leave it
        mid = self.path.defer_close(starts[last], series, last)
        if mid != mids.values[last]:  # close_mids repeats the quote's arithmetic: a bug
            raise AssertionError(f"close mid {mid} of row {last} is not {mids.values[last]}")
        ends.append(self.clock.time())
        self.dropped.queue(series, rows[:run], ends, mids.values)
        self.pipe.absorb()
        self.lanes["dropped"] += run
        self.lanes["close"] += last + 1 - g - run
        return run

    def _idle_walk(
        self,
        series: CandleSeries,
        g: int,
        due: int,
        times: np.ndarray,
        out: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> int:
        """The only market is idle (flat, no protection, no order) at row ``g``, a signal
        row (no anomaly before row ``due``): each indicator signal the engine drops
        (:meth:`DroppedSignals.check`) gets its close quote and goes to the ledger, the rows
        between them are not driven (the equity is the cash), as the group by group loop
        would drive them. Without a fee balance or dust the equity reads no quote: the close
        quotes of the dropped signals are deferred (:meth:`CandlePath.defer_close`).
        Returns the first row not driven (``g``: none), where the engine acts on a signal,
        or ``due``."""
        key = (series.exchange, series.symbol)
        if g >= due or key not in self._fires:
            return g
        _, equity, exposure = out
        value = self.path.mark()
        portfolio = self.engine.portfolio
        # flat with no fee balance or dust, the equity does not read the quotes: a dropped
        # signal's close quote is deferred (CandlePath.defer_close), the equity stays
        defer = not portfolio.fee_balances and not portfolio.dust
        held = portfolio.equity if defer else None
        rows = self._rows_firing(key, g, due)
        at = g  # the first row not yet driven
        i = 0
        with self.dropped.publishing():
            while i < len(rows):
                if held is not None:  # a run of dropped signals at once
                    run = self._dropped_run(series, rows, i, times, held)
                    if run:
                        last = rows[i + run - 1]
                        equity[at : last + 1], exposure[at : last + 1] = value
                        self.lanes["skipped"] += last + 1 - at - run
                        self.lanes["dropped"] += run
                        at, i = last + 1, i + run
                        continue
                r = rows[i]
                if r > at:
                    equity[at:r], exposure[at:r] = value
                    self.lanes["skipped"] += r - at
                    at = r
                t = float(times[r])
                if not self.dropped.check_row(t, series, r, held):
                    return at
                if defer:
                    mid = self.path.defer_close(t, series, r)
                    self.dropped.publish(series, r, t, mid=mid)
                    self.pipe.absorb()
                    equity[r], exposure[r] = value
                else:
                    self.path.close_quotes(t, [(series, r)])
                    self.dropped.publish(series, r, t)
                    self.pipe.absorb()
                    equity[r], exposure[r] = value = self.path.mark()
                self.lanes["dropped"] += 1
                at, i = r + 1, i + 1
        if due > at:
            equity[at:due], exposure[at:due] = value
            self.lanes["skipped"] += due - at
        return due

    def _dropped_run(
        self,
        series: CandleSeries,
        rows: Column,
        i: int,
        times: np.ndarray,
        held: Decimal,
    ) -> int:
        """The run of dropped signals of an idle market from ``rows[i]``
        (:meth:`DroppedSignals.flat_run`, up to the first close quote with a zero bid),
        driven at once: as one by one, each row's close quote would be deferred and
        replaced by the next one (:meth:`CandlePath.defer_close`), so only the last one's
        is; the clock moves as their quotes would move it; their signals join the batch
        with their ends and mids (:meth:`DroppedSignals.queue`). Returns the rows driven."""
        mids = self._close_mids(series)
        starts = self._times(times)
        run = self.dropped.flat_run(series, rows[i:], starts, held)
        if run and mids.zeros[rows[i + run - 1] + 1] != mids.zeros[rows[i]]:
            zeros = mids.zeros
            run = next(k for k in range(run) if zeros[rows[i + k] + 1] != zeros[rows[i + k]])
        if not run:
            return 0
        step = series.seconds
        now = self.clock.time()
        ends: list[float] = []
        for row in rows[i : i + run - 1]:
            now = max(now, starts[row] + step)  # the clock after the row's close quote
            ends.append(now)
        last = rows[i + run - 1]
        mid = self.path.defer_close(starts[last], series, last)
        if mid != mids.values[last]:  # close_mids repeats the quote's arithmetic: a bug
            raise AssertionError(f"close mid {mid} of row {last} is not {mids.values[last]}")
        ends.append(self.clock.time())
        self.dropped.queue(series, rows[i : i + run], ends, mids.values)
        return run

    def _close_stretch(
        self,
        series: CandleSeries,
        g: int,
        until: int,
        times: np.ndarray,
        out: tuple[np.ndarray, np.ndarray],
        *,
        last: bool = True,
    ) -> Decimal | None:
        """Rows ``g:until`` of the only market, a safe position: close quotes and marks.
        ``last`` False: the last row's quote too is only valued, not published, when the
        stretch can be valued in one pass; then its equity (Decimal) is returned."""
        equity, exposure = out
        first = g
        stop = until - 1 if last else until
        valued = (
            stretch_equity(self.engine.portfolio, series, self._close_mids(series), g, stop)
            if stop > g
            else None
        )
        if valued is not None:  # the rows before the last (or all), valued in one pass
            first = stop
            equity[g:first] = valued[0]
            exposure[g:first] = 1.0
        for r in range(first, until):
            self.path.close_quotes(float(times[r]), [(series, r)])
            equity[r], exposure[r] = self.path.mark()
        return valued[1] if valued is not None and not last else None

    def _signal_groups(
        self,
        timeline: tuple[np.ndarray, np.ndarray, np.ndarray],
        starts: np.ndarray,
        found: CandleAnomalies,
    ) -> list[int]:
        """The groups where the indicator strategy publishes (ascending); gives the
        generator each market's :class:`SeriesIndicators`."""
        _, which, rows = timeline
        total = len(starts) - 1
        group_of = np.repeat(np.arange(total), np.diff(starts))
        fire_groups: list[np.ndarray] = [np.empty(0, dtype=np.int64)]
        signals = self.pipe.signals
        cfg = self.settings.trading
        for i, series in enumerate(self.series):
            mine = which == i
            groups = np.empty(len(series), dtype=np.int64)
            groups[rows[mine]] = group_of[mine]
            key = (series.exchange, series.symbol)
            if (
                not cfg.indicators.enabled
                or series.timeframe != cfg.indicators.interval
                or not signals.trades(*key)
            ):
                continue
            indicators = SeriesIndicators(cfg.indicators, series.close)
            self.path.indicators[key] = indicators
            signals.use_indicators(*key, indicators)  # the generator's own state for this market
            totals = None
            if cfg.indicators.scoring == "spec":  # the dropped signals' outcomes too
                totals = spec_totals(indicators.values, series.close, cfg.indicators)
                self.dropped.totals[key] = (columns(totals[0]), columns(totals[1]))
            fired_rows = indicator_signals(
                series.close, found.closes[groups], indicators.values, cfg, totals
            )
            self._fires[key] = fired_rows
            self._fire_rows[key] = columns(np.flatnonzero(fired_rows[0]))
            fire_groups.append(groups[fired_rows[0]])
        fired = np.concatenate(fire_groups)
        if fired.shape[0] > 1 and not bool(np.all(fired[1:] > fired[:-1])):
            fired = np.unique(fired)  # several markets: their groups merged (one market's
            # groups ascend strictly already, its rows in group order)
        return fired.tolist()

    def _times(self, times: np.ndarray) -> Column:
        """The timeline's open times as floats, once (one market: row r is group r)."""
        if self._starts is None or self._starts[0] is not times:
            self._starts = (times, columns(times))
        return self._starts[1]

    def _rows_firing(self, key: tuple[str, str], lo: int, hi: int) -> Column:
        """The rows ``lo:hi`` of market ``key`` where its indicator signal fires."""
        rows = self._fire_rows.get(key, ())
        return rows[bisect_left(rows, lo) : bisect_left(rows, hi)]

    def _all_idle(self) -> bool:
        """No position, protection or open order anywhere."""
        engine = self.engine
        if engine.protection.protections or engine.portfolio.open_positions():
            return False
        return all(self.path.idle(s) for s in self.series)

    def _safe_candle(self, series: CandleSeries, row: int) -> bool:
        """Nothing but the close quote can act on this candle of ``series``: idle, or a
        position whose emulated stop and take-profit the candle cannot reach."""
        if self.path.idle(series):
            return True
        key = (series.exchange, series.symbol)
        prot: Protection | None = self.engine.protection.protections.get(key)
        if (
            prot is None
            or prot.exiting
            or prot.native
            or prot.trail_pct is not None
            or prot.retry_at
            or self.engine.context.book.open(*key)
        ):
            return False
        levels = (prot.long, prot.stop, prot.take)
        cached = self._safe.get(key)
        if cached is None or cached[0] != levels or row > cached[1]:
            cached = self._safe[key] = (levels, self._safe_until(series, row, prot))
        return row <= cached[1]

    def _still(self, group: list[tuple[CandleSeries, int]]) -> bool:
        """The whole path of ``group`` needs only its close quotes: every candle is safe
        (:meth:`_safe_candle`: idle, or a position whose emulated levels the candle cannot
        reach, no trailing stop, no open order) with a positive bid at its close, and the
        pipeline is settled. Then the quotes before the close ones trigger nothing, so the
        settling after each returns at once (no loop turn: the engine, its poller and the
        signal worker run only after the close quotes, as they would), and every reader of
        a quote keeps only the latest one (the market's top, the position's mark, the
        portfolio's price of the asset): the close quote leaves them as the whole path's
        last quote does. A zero bid at the close leaves the mark and price of the quote
        before it: such a candle takes every quote."""
        if not self.pipe.settled:
            return False
        for series, row in group:
            if not self._safe_candle(series, row):
                return False
            if not self.path.close_bid(series, row) > 0:
                return False
        return True

    def _close_mids(self, series: CandleSeries) -> CloseMids:
        """:func:`close_mids` of ``series``, once."""
        key = (series.exchange, series.symbol)
        mids = self._mids.get(key)
        if mids is None:
            mids = self._mids[key] = close_mids(
                series, self.settings.backtest, self.settings.trading.paper.tick_size
            )
        return mids

    def _safe_until(self, series: CandleSeries, row: int, prot: Protection) -> int:
        """The last row from ``row`` on (``row - 1``: none) whose range, widened by twice its
        half spread, stays strictly between the stop and the take-profit."""
        key = (series.exchange, series.symbol)
        reach = self._reach.get(key)
        if reach is None:
            reach = self._reach[key] = reach_bounds(
                series, self.settings.backtest, self.settings.trading.paper.tick_size
            )
        take = None if prot.take is None else float(prot.take)
        return safe_until(reach, row, long=prot.long, stop=float(prot.stop), take=take)


def n_rows(series: CandleSeries, rows: np.ndarray) -> int:
    """len(series) when ``rows`` (the timeline's) is 0, 1, 2, ...; else -1."""
    n = len(series)
    return n if rows.shape[0] == n and bool(np.all(rows == np.arange(n))) else -1
