"""The indicator signals the engine would drop, on the fast candle path
(:mod:`cryptomon.backtest.fastlanes`): the check that the engine would do nothing with them
(:meth:`DroppedSignals.check`), and their publication to the run's ledger only
(:meth:`DroppedSignals.publish`, inside :meth:`DroppedSignals.publishing`): the real
generator reads the closed candle and decides the signal (its cooldown), the engine never
sees it and the ledger counts it (:meth:`Ledger.count_signals`: nothing reads a dropped
signal but its count). A batch of spec signals is only counted, never made
(:meth:`SignalGenerator.indicator_count`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from cryptomon.backtest.candlepath import CandlePath
from cryptomon.backtest.data import CandleSeries, Column, columns
from cryptomon.backtest.fastpath import SeriesIndicators
from cryptomon.backtest.indicators_nb import RSI
from cryptomon.backtest.stretch import CloseMids
from cryptomon.backtest.synth import series_candle
from cryptomon.events import Event, Signal
from cryptomon.kinds import SignalGrade
from cryptomon.trading.risk import RiskState
from cryptomon.trading.signals.generator import IndicatorItem, Publisher
from cryptomon.trading.signals.scoring import Outcome, spec_outcome

MarketKey = tuple[str, str]
# DroppedSignals._lists: whether the row's indicator signal fires, then whether the engine
# acts on it while the market is flat, long or short
FIRES, ACTS_FLAT, ACTS_LONG, ACTS_SHORT = 0, 1, 2, 3


class DroppedSignals:
    """The dropped-signal lane of ``path``'s run. ``fires``: per market, the (fires, side,
    strength, grade rank) of each row's indicator signal; ``reach``: per market, the
    (low, high) reach of each candle; ``safe``: whether only the close quote can act on a
    candle (both filled and owned by the fast driver)."""

    def __init__(
        self,
        path: CandlePath,
        fires: dict[MarketKey, tuple[np.ndarray, ...]],
        reach: dict[MarketKey, tuple[np.ndarray, np.ndarray]],
        safe: Callable[[CandleSeries, int], bool],
    ) -> None:
        self.path = path
        self.pipe = path.pipe
        self.engine = path.engine
        self.settings = path.settings
        self.clock = path.clock
        self.fires = fires
        self.reach = reach
        self._safe = safe
        # the engine's count of the signals it makes no order of, by reason: the dropped
        # signals are counted there too, by the reason the engine would give
        self._tally = self.engine.entries.count_dropped
        self._tally_all = self.engine.entries.count_dropped_all
        self._ledger = _LedgerOnly(self.pipe.ledger.count_signals, self._tally)
        # the spec signals of one market with a known mid, not made yet (see publish)
        self._batch: list[IndicatorItem] = []
        self._batch_of: tuple[MarketKey, SeriesIndicators, int] | None = None
        self._days: tuple[str, int] = ("", -1)  # the portfolio's day string, its day number
        self._fire_lists: dict[MarketKey, tuple[Column, ...]] = {}
        self._floats: list[tuple[Decimal | None, float]] = [(None, 0.0), (None, 0.0)]
        self._spans: dict[MarketKey, Column] = {}
        # per market: (its series, its indicators, their closes and RSI readings as columns)
        self._row_cols: dict[MarketKey, tuple[Any, ...]] = {}
        # per market with the spec scoring: the kernel's (buy, sell) scores of each row
        self.totals: dict[MarketKey, tuple[Column, Column]] = {}

    def publishing(self) -> _Publishing:
        """The generator publishes to the ledger only inside this block; the signals
        :meth:`publish` batched are made when it ends (:meth:`flush`), then the generator
        publishes where it did before (``SignalGenerator.publishing_to`` around a
        ``try: ... finally: flush()``, without two generator-based context managers: the
        walks enter it ~64k times on a year of candles)."""
        return _Publishing(self)

    def flush(self) -> None:
        """The generator counts the batched signals (:meth:`SignalGenerator.indicator_count`:
        its cooldowns as making them would leave them), for the ledger; the pipeline absorbs
        them (only the ledger saw them), and the market's indicators are left at the batch's
        last row, as one by one would leave them."""
        batch, of = self._batch, self._batch_of
        if of is None:
            return
        self._batch, self._batch_of = [], None
        key, indicators, row = of
        tally = self._tally_all
        count = self.pipe.signals.indicator_count(*key, batch, lambda drops: tally(*key, drops))
        self.pipe.ledger.count_signals(count)
        indicators.row = row
        indicators.rsi.value = batch[-1][4]
        self.pipe.absorb()

    def check(
        self,
        t: float,
        group: list[tuple[CandleSeries, int]],
        *,
        held: Decimal | None = None,
        safe: bool = False,
    ) -> bool:
        """The group's indicator signals are ones the engine drops and nothing else can act:
        every candle safe (``safe``), each signal below ``min_signal_strength``
        or graded ``ignore``, or on the side of its market's position, or a sell while flat
        without ``allow_short`` (``SignalTrader.handle``'s early returns); and the poll
        the engine would run while settling it a no-op: trading active, the same UTC day as
        the portfolio's, the day's PnL far from the daily loss limit, spot positions only.
        ``held``: the portfolio's equity now (a walk's unpublished last quote), if known;
        ``safe``: the caller knows every candle of the group is safe."""
        if not safe and not all(self._safe(s, r) for s, r in group):
            return False
        if not self._open(t, group[0][0].seconds):
            return False
        swing = 0.0
        for series, row in group:
            candle = self._swing(series, row)
            if candle is None:
                return False
            swing += candle
        return self._far_from_limit(held, swing)

    def check_row(self, t: float, series: CandleSeries, row: int, held: Decimal | None) -> bool:
        """:meth:`check` of the one-candle group ``series``/``row`` that the caller knows is
        safe (a single-market walk's row), without building the group."""
        if not self._open(t, series.seconds):
            return False
        swing = self._swing(series, row)
        return swing is not None and self._far_from_limit(held, swing)

    def _open(self, t: float, step: float) -> bool:
        """Trading is active and the candle from ``t`` ends on the portfolio's UTC day."""
        if self.engine.context.risk_state != RiskState.ACTIVE:
            return False
        return _within_day(t, step, self._day())

    def _swing(self, series: CandleSeries, row: int) -> float | None:
        """How far the row's candle can move its market's spot position (0.0 flat); None
        when the engine would act on the row: a contract position, or an indicator signal
        it trades on (``SignalTrader.handle``'s early returns all fail)."""
        key = (series.exchange, series.symbol)
        pos = self.engine.portfolio.positions.get(key)
        amount = pos.amount if pos is not None else 0
        swing = 0.0
        if pos is not None and amount != 0:
            if pos.contract is not None:
                return None
            swing = abs(self._float(pos.amount, 0)) * self._span(key)[row]
        fired = self._lists(key)
        if fired is None:
            return swing
        acts = fired[ACTS_FLAT] if amount == 0 else fired[ACTS_LONG if amount > 0 else ACTS_SHORT]
        return None if acts[row] else swing

    def _far_from_limit(self, held: Decimal | None, swing: float) -> bool:
        """The day's PnL (``held``: the equity now if known, else the portfolio's after the
        latest quote), less twice the candles' ``swing``, stays far from the daily loss
        limit."""
        portfolio = self.engine.portfolio
        limit = self._float(self.engine.context.runtime.limits.daily_loss_limit, 1)
        if held is None:
            self.path.flush()  # the equity reads the latest quote
            held = portfolio.equity
        pnl = float(held - portfolio.day_start_equity)
        return pnl - 2 * swing - 0.01 * limit > -limit

    def _lists(self, key: MarketKey) -> tuple[Column, ...] | None:
        """Whether each row's indicator signal fires (``fires[key]``'s first column,
        :data:`FIRES`), then whether the engine acts on it while the market is flat, long or
        short (:data:`ACTS_FLAT`, :data:`ACTS_LONG`, :data:`ACTS_SHORT`), as columns (an
        item of a column is read faster than an array's; the side, strength and grade
        columns are read by nothing here, so they are not converted):
        ``SignalTrader.handle``'s early returns all fail (strong enough, not graded
        ``ignore``, not on the side of the position, not a sell while flat without
        ``allow_short``)."""
        lists = self._fire_lists.get(key)
        if lists is None and key in self.fires:
            fires, side, strength, rank = self.fires[key]
            cfg = self.settings.trading
            traded = fires & (rank != 0) & ~(strength < cfg.min_signal_strength)
            buy = side == 1
            acts = (traded & (buy | cfg.allow_short), traded & ~buy, traded & buy)
            lists = self._fire_lists[key] = tuple(columns(a) for a in (fires, *acts))
        return lists

    def _float(self, value: Decimal, slot: int) -> float:
        """``float(value)``, kept per ``slot`` while ``value`` is the same object (a
        position's amount, the daily loss limit: the same for many rows)."""
        known = self._floats[slot]
        if known[0] is not value:
            known = self._floats[slot] = (value, float(value))
        return known[1]

    def _row_columns(
        self, key: MarketKey, series: CandleSeries, indicators: SeriesIndicators
    ) -> tuple[Column, Column]:
        """The closes of ``series`` and the RSI readings of ``indicators``, as columns (read
        once per market: an item of a column is read faster than an array's)."""
        cached = self._row_cols.get(key)
        if cached is None or cached[0] is not series or cached[1] is not indicators:
            cached = self._row_cols[key] = (
                series,
                indicators,
                columns(series.close),
                columns(indicators.values[RSI]),
            )
        return cached[2], cached[3]

    def _span(self, key: MarketKey) -> Column:
        """The width of each candle's reach (high - low of ``reach[key]``), as a column."""
        span = self._spans.get(key)
        if span is None:
            low, high = self.reach[key]
            span = self._spans[key] = columns(high - low)
        return span

    def _day(self) -> int:
        """The UTC day number of the portfolio's current day (-1 before its first)."""
        name = self.engine.portfolio.day  # rolled by its snapshots (the engine's poll)
        if name != self._days[0]:
            number = -1
            if name:
                when = datetime.strptime(name, "%Y-%m-%d").replace(tzinfo=UTC)
                number = int(when.timestamp() // 86400)
            self._days = (name, number)
        return self._days[1]

    def publish(
        self, series: CandleSeries, row: int, t: float, *, mid: float | None = None
    ) -> None:
        """The generator's signal of the closed candle, if any, to the ledger only. With the
        ``spec`` scoring the kernel's scores of the row give the generator's outcome
        (``spec_outcome``), so the generator only grades, cools down and publishes it
        (:meth:`SignalGenerator.indicator_signal`); otherwise it reads the candle.
        ``mid``: the market's mid after the row's close quote when that quote is deferred
        (:meth:`CandlePath.defer_close`), the signal's price."""
        key = (series.exchange, series.symbol)
        fired = self._lists(key)
        if fired is None or not fired[FIRES][row]:
            return
        indicators = self.path.indicators[key]
        indicators.row = row
        now = self.clock.time()
        closes, rsi = self._row_columns(key, series, indicators)
        close = float(closes[row])
        totals = self.totals.get(key)
        if totals is not None:
            if mid is not None:  # made with the market's next batch (flush)
                self.queue(series, (row,), (now,), {row: mid})
                return
            outcome = _outcome(totals, row, key)
            self.flush()
            indicators.rsi.value = float(rsi[row])  # the reason reads it
            self.pipe.signals.indicator_signal(*key, outcome, end=now, close=close, mid=mid)
            return
        self.flush()
        self.path.flush()  # the generator reads the market's mid
        volume = float(series.volume[row])
        candle = series_candle(series, row, start=t, now=now, close=close, volume=volume)
        self.pipe.signals.on_candle(candle)  # to the ledger only (inside :meth:`publishing`)

    def queue(
        self,
        series: CandleSeries,
        rows: Sequence[int],
        ends: Sequence[float],
        mids: Sequence[float] | dict[int, float],
    ) -> None:
        """The spec signals of ``rows`` of ``series`` (firing rows, in order), :meth:`publish`
        of each with its candle's ``end`` (the clock after its close quote) and its market's
        mid ``mids[row]``, joined to the market's batch (:meth:`flush`)."""
        key = (series.exchange, series.symbol)
        indicators = self.path.indicators[key]
        closes, rsi = self._row_columns(key, series, indicators)
        buy, sell = self.totals[key]
        if self._batch_of is not None and self._batch_of[0] != key:
            self.flush()
        append = self._batch.append
        for row, end in zip(rows, ends, strict=True):
            append((_outcome((buy, sell), row, key), end, closes[row], mids[row], rsi[row]))
        self._batch_of = (key, indicators, rows[-1])

    def flat_run(
        self, series: CandleSeries, rows: Sequence[int], times: Sequence[float], held: Decimal
    ) -> int:
        """How many of ``rows`` (the firing rows of a flat, idle market, in order), from the
        first, :meth:`check_row` passes with the equity ``held`` while nothing reaches the
        engine between them (their close quotes deferred, their signals batched: the risk
        state, the portfolio and its day stay as they are, so do the daily loss limit's
        test and the position's); 0 without spec scores. ``times``: each row's open time."""
        key = (series.exchange, series.symbol)
        fired = self._lists(key)
        if fired is None or key not in self.totals or not rows:
            return 0
        if not self._open(times[rows[0]], series.seconds) or self._swing(series, rows[0]) != 0.0:
            return 0
        if not self._far_from_limit(held, 0.0):
            return 0
        acts, day, step = fired[ACTS_FLAT], self._day(), series.seconds
        for i, row in enumerate(rows):
            if acts[row] or not _within_day(times[row], step, day):
                return i
        return len(rows)

    def held_run(
        self,
        series: CandleSeries,
        rows: Sequence[int],
        times: Sequence[float],
        mids: CloseMids,
        first: int,
    ) -> int:
        """How many of ``rows`` (the firing rows of a walk over the only market's safe spot
        position, from row ``first``, in order), from the first, :meth:`check_row` passes
        while nothing reaches the engine between them (their close quotes deferred and
        valued, their signals batched: the risk state, the portfolio, its day and its
        position stay as they are). The equity each row's check reads is the one after the
        row before's close quote, ``cash + amount * mark`` of its Decimal mid (``mids``, of
        :func:`~cryptomon.backtest.stretch.close_mids`) as the walk values it; the walk's
        first row reads the portfolio's (the latest quote published). 0 without spec
        scores. ``times``: each row's open time."""
        key = (series.exchange, series.symbol)
        fired = self._lists(key)
        pos = self.engine.portfolio.positions.get(key)
        if fired is None or key not in self.totals or not rows or pos is None:
            return 0
        amount = pos.amount
        if amount == 0 or pos.contract is not None:
            return 0
        if self.engine.context.risk_state != RiskState.ACTIVE:
            return 0
        portfolio = self.engine.portfolio
        cash = portfolio.cash
        start = portfolio.day_start_equity
        limit = self._float(self.engine.context.runtime.limits.daily_loss_limit, 1)
        size = abs(self._float(amount, 0))
        span = self._span(key)
        acts = fired[ACTS_LONG if amount > 0 else ACTS_SHORT]
        day, step = self._day(), series.seconds
        for i, row in enumerate(rows):  # check_row's tests, in its order
            if not _within_day(times[row], step, day) or acts[row]:
                return i
            if row == first:
                self.path.flush()  # the equity reads the latest quote
                held = portfolio.equity
            else:
                held = cash + amount * mids.mark(row - 1)  # as the engine marks it
            swing = size * span[row]
            if not float(held - start) - 2 * swing - 0.01 * limit > -limit:
                return i
        return len(rows)


class _Publishing:
    """:meth:`DroppedSignals.publishing`'s block (one per entry: blocks may nest)."""

    __slots__ = ("_dropped", "_own")

    def __init__(self, dropped: DroppedSignals) -> None:
        self._dropped = dropped
        self._own: Publisher | None = None

    def __enter__(self) -> None:
        dropped = self._dropped
        self._own = dropped.pipe.signals.publish_to(dropped._ledger)

    def __exit__(self, *exc: object) -> None:
        dropped = self._dropped
        try:
            dropped.flush()
        finally:
            own = self._own
            if own is not None:
                dropped.pipe.signals.publish_to(own)


def _within_day(t: float, step: float, day: int) -> bool:
    """The candle from ``t`` to ``t + step`` starts and ends on UTC day number ``day``."""
    return int(t // 86400) == day and int((t + step) // 86400) == day


def _outcome(totals: tuple[Sequence[int], Sequence[int]], row: int, key: MarketKey) -> Outcome:
    """The generator's spec outcome of the kernel's scores of ``row``."""
    outcome = spec_outcome(totals[0][row], totals[1][row])
    if outcome is None:  # the kernel fired on a row without an outcome: a bug
        raise AssertionError(f"no spec outcome at row {row} of {key}")
    return outcome


class _LedgerOnly:
    """The generator's publisher inside :meth:`DroppedSignals.publishing`: each signal
    straight to the ledger, which counts it (its only reader; the generator publishes
    nothing else, and anything else would have no reader, as on a hub where only the ledger
    follows signals)."""

    def __init__(
        self,
        count: Callable[[int], None],
        tally: Callable[[str, str, str, float, SignalGrade | None], None],
    ) -> None:
        self._count = count
        self._tally = tally

    def publish(self, event: Event) -> None:
        if isinstance(event, Signal):
            self._count(1)
            self._tally(event.exchange, event.symbol, event.side, event.strength, event.grade)
