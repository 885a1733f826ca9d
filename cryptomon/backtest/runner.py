"""The backtest pipeline: the live detectors, signal generator, order engine (risk checks,
protection) and paper broker on one hub and a :class:`~cryptomon.clock.ManualClock`.

The candle driver turns each candle into market data the live components read:

- quotes (``BookTop``) along a path through the candle, in four slots at ``start``,
  ``+1/4``, ``+1/2`` and ``+3/4`` of the interval: open, first extreme, second extreme, close.
  The half spread is ``backtest.slippage_bps`` of the price or
  ``backtest.slippage_range_fraction`` of the candle range, whichever is larger, so a market
  order pays it (the paper broker fills at the quote);
- **SL/TP inside a candle** (documented, conservative): with a long position the low is
  visited before the high, with a short the high before the low, so when one candle touches
  both the stop and the take-profit the stop fills first (the worse outcome). Every protection
  level crossed between two path points is quoted on the way: a stop fills at the level minus
  (long) / plus (short) the half spread, a take-profit at its level; a candle opening beyond
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
that path; the others are skipped or get their close quote (:meth:`BacktestRunner._drive_fast`,
:mod:`cryptomon.backtest.fastpath`), with the same orders, fills, equity and statistics.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from cryptomon.backtest.candle_detect import CandleAnomalies, candle_trade
from cryptomon.backtest.data import CandleSeries, infer_instrument
from cryptomon.backtest.fastpath import SeriesIndicators, indicator_signals
from cryptomon.backtest.ledger import RoundTrip
from cryptomon.backtest.pipeline import Pipeline
from cryptomon.config import Settings
from cryptomon.events import Anomaly, BookTop, Candle, Fill, Signal
from cryptomon.hub import Hub
from cryptomon.trading.protection import Protection
from cryptomon.trading.risk import RiskState

SLOTS = 4
MAX_SETTLE_ROUNDS = 50
YIELDS_PER_ROUND = 4


@dataclass(slots=True)
class BacktestResult:
    """What one run produced; :mod:`cryptomon.backtest.stats` summarizes it."""

    series: list[CandleSeries]
    trades: list[RoundTrip]
    fills: list[Fill]
    anomalies: list[Anomaly]
    signals: int
    equity_ts: np.ndarray
    equity: np.ndarray
    exposure: np.ndarray  # 1.0 where a position was open at the candle's end
    starting_balance: float
    quote: str
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    candles: int = 0

    def digest(self) -> str:
        """sha256 of the orders and fills (ids aside, those are random): equal runs, equal hash."""
        rows = [
            [f.ts, f.exchange, f.symbol, f.side, str(f.amount), str(f.price), str(f.fee)]
            for f in self.fills
        ]
        rows += [[t.symbol, t.side, t.source, str(t.pnl), t.exit_reason] for t in self.trades]
        return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def make_result(
    pipe: Pipeline,
    *,
    series: list[CandleSeries],
    equity: tuple[np.ndarray, np.ndarray, np.ndarray],
    seconds: float,
) -> BacktestResult:
    """The result of a finished run of ``pipe``."""
    paper = pipe.settings.trading.paper
    ledger = pipe.ledger
    return BacktestResult(
        series=series,
        trades=list(ledger.closed),
        fills=list(ledger.fills),
        anomalies=list(ledger.anomalies.values()),
        signals=len(ledger.signals),
        equity_ts=equity[0],
        equity=equity[1],
        exposure=equity[2],
        starting_balance=paper.starting_balance,
        quote=paper.quote_currency,
        seconds=seconds,
        candles=sum(len(s) for s in series),
    )


def backtest_settings(settings: Settings, series: list[CandleSeries]) -> Settings:
    """``settings`` as the backtest runs them: paper mode, auto trading on, the indicator
    interval of the data, and (``backtest.infer_instrument``) tick and lot from the data."""
    trading = settings.trading
    paper = trading.paper
    if settings.backtest.infer_instrument and series:
        specs = [infer_instrument(s) for s in series]
        tick = min(t for t, _ in specs)
        lot = min(lot for _, lot in specs)
        paper = paper.model_copy(update={"tick_size": float(tick), "lot_size": float(lot)})
    indicators = trading.indicators
    if series:
        indicators = indicators.model_copy(update={"interval": series[0].timeframe})
    trading = trading.model_copy(
        update={
            "auto_trading_enabled": True,
            "mode": "paper",
            "paper": paper,
            "indicators": indicators,
        }
    )
    return settings.model_copy(update={"trading": trading})


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
        self._marked: tuple[int, float] | None = None  # (ledger activity, equity) when flat
        self._no_orders: dict[tuple[str, str], int] = {}  # market -> activity seen orderless
        self._indicators: dict[tuple[str, str], SeriesIndicators] = {}  # fast path
        self._safe: dict[tuple[str, str], tuple[Any, int]] = {}  # market -> (levels, until)
        self._reach: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        # per market: (fires, side, strength, grade rank) of the indicator signal of each row
        self._fires: dict[tuple[str, str], tuple[np.ndarray, ...]] = {}
        # the signals the engine would drop go to the ledger only (see _drive_fast)
        self._ledger_hub = Hub()
        self._ledger_hub.subscribe(Signal, self.pipe.ledger.record_signal, name="backtest.ledger")
        self._days: tuple[str, int] = ("", -1)  # the portfolio's day string, its day number
        # fast path: candle groups not driven, given close quotes only, given close quotes
        # with signals the engine drops, and driven through the whole path
        self.lanes = {"skipped": 0, "close": 0, "dropped": 0, "whole": 0}

    async def run(self) -> BacktestResult:
        """Start the components, drive every candle, stop; the result of the run."""
        t0 = time.perf_counter()
        await self.pipe.start()
        try:
            equity_ts, equity, exposure = await self._drive()
        finally:
            await self.pipe.stop()
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
        found = CandleAnomalies(self.pipe, self.series, timeline, starts)
        if self.fast:
            await self._drive_fast(timeline, starts, found, (equity_ts, equity, exposure))
            return equity_ts, equity, exposure
        for g in range(len(starts) - 1):
            lo, hi = int(starts[g]), int(starts[g + 1])
            t = float(times[lo])
            group = [
                (self.series[i], r)
                for i, r in zip(which[lo:hi].tolist(), rows[lo:hi].tolist(), strict=True)
            ]
            await self._candles(t, group, found.due(g))
            equity_ts[lo:hi] = t + group[0][0].seconds
            equity[lo:hi], exposure[lo:hi] = self._mark()
        return equity_ts, equity, exposure

    def _mark(self) -> tuple[float, float]:
        """(equity, exposure) at a candle's end; flat and without a new trading event since
        the last mark, the equity has not moved (no Decimal work)."""
        activity = self.pipe.ledger.activity
        if self._marked is not None and self._marked[0] == activity:
            return self._marked[1], 0.0
        exposed = self.pipe.exposed
        equity = self.pipe.equity
        self._marked = None if exposed else (activity, equity)
        return equity, 1.0 if exposed else 0.0

    def _idle(self, series: CandleSeries) -> bool:
        """No position, protection or open order on ``series``: only its close can act."""
        key = (series.exchange, series.symbol)
        if self.engine.portfolio.amount(*key) != 0 or key in self.engine.protection.protections:
            return False
        activity = self.pipe.ledger.activity  # an order opens only with an intent (activity)
        known = self._no_orders.get(key)
        if known != activity:
            if self.engine.context.book.open(*key):
                return False
            self._no_orders[key] = activity
        return True

    async def _candles(
        self, t: float, group: list[tuple[CandleSeries, int]], anomalies: list[Anomaly]
    ) -> None:
        step = group[0][0].seconds
        last: dict[str, float] = {}
        # an idle market (flat, no order) skips the path: nobody reads those quotes
        moving = [(series, row) for series, row in group if not self._idle(series)]
        for slot in range(SLOTS):
            self.clock.set(max(self.clock.time(), t + step * slot / SLOTS))
            for series, row in moving if slot < SLOTS - 1 else group:
                target = _slot_price(series, row, slot, self._long(series))
                start = last.get(series.symbol, float(series.open[row]))
                for price in [*self._levels(series, row, start, target), target]:
                    self._quote(series, row, price)
                    await self.pipe.settle()
                last[series.symbol] = target
        self.clock.set(max(self.clock.time(), t + step))
        for series, row in group:
            self._close(series, row, t)
        for anomaly in anomalies:  # found a chunk ahead (candle_detect.py)
            self.hub.publish(anomaly)
        await self.pipe.settle()

    # ------------------------------------------------------------------ fast path

    async def _drive_fast(
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
          the whole path (:meth:`_candles`);
        - while every market is idle (flat, no protection, no open order) the groups up to the
          next signal are not driven at all: nothing reads them (the equity is the cash);
        - a group whose positions are safe (their levels out of reach of the candle's range
          widened by twice the half spread; no trailing stop, no open order) gets only its
          close quotes, which mark the positions as the whole path's last quote does;
        - so does a safe group whose indicator signals the engine would drop
          (:meth:`_dropped_signals`); the generator still reads those candles and publishes
          those signals, to the ledger only.

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
        fi = 0  # fired[fi] is the next group with an indicator signal
        g = 0
        while g < total:
            while fi < len(fired) and fired[fi] < g:
                fi += 1
            signal_at = min(fired[fi] if fi < len(fired) else total, found.next_due(g))
            lo, hi = int(starts[g]), int(starts[g + 1])
            if signal_at > g and self._all_idle():
                end = int(starts[signal_at])
                equity[lo:end], exposure[lo:end] = self._mark()
                self.lanes["skipped"] += signal_at - g
                g = signal_at
                continue
            if single:  # a safe position: its close quotes and dropped signals in one walk
                walked = self._walk(self.series[0], g, found.next_due(g), times, out)
                if walked > g:
                    g = walked
                    continue
            t = float(times[lo])
            group = [
                (self.series[i], r)
                for i, r in zip(which[lo:hi].tolist(), rows[lo:hi].tolist(), strict=True)
            ]
            quiet = signal_at > g and all(self._safe_candle(s, r) for s, r in group)
            dropped = (
                not quiet
                and signal_at == g
                and found.next_due(g) > g
                and self._dropped_signals(t, group)
            )
            if quiet or dropped:
                self._close_quotes(t, group)
                if dropped:
                    for series, row in group:
                        self._ledger_signal(series, row, t)
                    self.pipe.absorb()
                self.lanes["dropped" if dropped else "close"] += 1
            else:
                await self._candles(t, group, found.due(g))
                self.lanes["whole"] += 1
            equity[lo:hi], exposure[lo:hi] = self._mark()
            g += 1

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
        mark (:meth:`_close_stretch`), or a dropped signal (:meth:`_dropped_signals`), as
        the group by group loop would drive them. Returns the first row not driven (``g``:
        none), where the engine acts on a signal or the position is no longer safe."""
        if g >= due or self._idle(series) or not self._safe_candle(series, g):
            return g
        key = (series.exchange, series.symbol)
        end = min(due, self._safe[key][1] + 1)
        _, equity, exposure = out
        fired = self._fires.get(key)
        rows = [] if fired is None else (np.flatnonzero(fired[0][g:end]) + g).tolist()
        at = g  # the first row not yet driven
        for r in rows:
            if r > at:
                self._close_stretch(series, at, r, times, (equity, exposure))
                self.lanes["close"] += r - at
                at = r
            t = float(times[r])
            if not self._dropped_signals(t, [(series, r)]):
                return at
            self._close_quotes(t, [(series, r)])
            self._ledger_signal(series, r, t)
            self.pipe.absorb()
            equity[r], exposure[r] = self._mark()
            self.lanes["dropped"] += 1
            at = r + 1
        if end > at:
            self._close_stretch(series, at, end, times, (equity, exposure))
            self.lanes["close"] += end - at
        return end

    def _close_stretch(
        self,
        series: CandleSeries,
        g: int,
        until: int,
        times: np.ndarray,
        out: tuple[np.ndarray, np.ndarray],
    ) -> None:
        """Rows ``g:until`` of the only market, a safe position: close quotes and marks."""
        equity, exposure = out
        first = g
        marks = self._stretch_equity(series, g, until - 1) if until - g > 1 else None
        if marks is not None:  # the rows before the last, valued in one pass
            first = until - 1
            equity[g:first] = marks
            exposure[g:first] = 1.0
        for r in range(first, until):
            self._close_quotes(float(times[r]), [(series, r)])
            equity[r], exposure[r] = self._mark()

    def _plain_equity(self, series: CandleSeries) -> bool:
        """The portfolio's equity is its cash plus this market's spot position at its mark:
        no other position holds value, no fee balance or dust (:meth:`_stretch_equity`)."""
        portfolio = self.engine.portfolio
        if portfolio.fee_balances or portfolio.dust:
            return False
        key = (series.exchange, series.symbol)
        for k, pos in portfolio.positions.items():
            if k == key:
                if pos.contract is not None or pos.amount == 0:
                    return False
            elif pos.amount != 0 or pos.mark is None:
                return False
        return key in portfolio.positions

    def _stretch_equity(self, series: CandleSeries, lo: int, hi: int) -> list[float] | None:
        """The equity at the end of rows ``lo:hi`` of a safe stretch of one market (its
        position unchanged, :meth:`_plain_equity`) as their close quotes would mark it:
        the mid of each quote (:meth:`_quote`'s float arithmetic, element by element) as the
        Decimal the engine marks with, and ``cash + amount * mark`` in Decimal as
        ``Portfolio.equity`` adds it (the other terms are exact zeros). Only the stretch's
        last quote need be published: every reader of a close quote keeps the latest one
        (the market state, the marks), and a safe quote triggers no exit. None: not such a
        stretch (another holding, a fee balance, dust, a contract, a zero bid)."""
        if not self._plain_equity(series):
            return None
        cfg = self.settings.backtest
        bps, fraction = cfg.slippage_bps, cfg.slippage_range_fraction
        portfolio = self.engine.portfolio
        cash = portfolio.cash
        amount = portfolio.positions[(series.exchange, series.symbol)].amount
        out: list[float] = []
        spans = (series.high[lo:hi] - series.low[lo:hi]).tolist()
        for price, span in zip(series.close[lo:hi].tolist(), spans, strict=True):
            half = max(price * bps / 10_000.0, fraction * span)  # as _half_spread
            bid = max(price - half, 0.0)
            if not bid > 0:  # the engine does not mark at a zero bid
                return None
            mark = Decimal(str((bid + (price + half)) / 2))  # to_decimal of on_top's mid
            out.append(float(cash + amount * mark))
        return out

    def _close_quotes(self, t: float, group: list[tuple[CandleSeries, int]]) -> None:
        """Only the close quotes of ``group``, at the time the whole path quotes them."""
        step = group[0][0].seconds
        self.clock.set(max(self.clock.time(), t + step * (SLOTS - 1) / SLOTS))
        for series, row in group:
            self._quote(series, row, float(series.close[row]))
        self.clock.set(max(self.clock.time(), t + step))

    def _dropped_signals(self, t: float, group: list[tuple[CandleSeries, int]]) -> bool:
        """The group's indicator signals are ones the engine drops and nothing else can act:
        every candle safe (:meth:`_safe_candle`), each signal below ``min_signal_strength``
        or graded ``ignore``, or on the side of its market's position, or a sell while flat
        without ``allow_short`` (:meth:`SignalTrader.handle`'s early returns); and the poll
        the engine would run while settling it a no-op: trading active, the same UTC day as
        the portfolio's, the day's PnL far from the daily loss limit, spot positions only."""
        if not all(self._safe_candle(s, r) for s, r in group):
            return False
        ctx = self.engine.context
        if ctx.risk_state != RiskState.ACTIVE:
            return False
        step = group[0][0].seconds
        portfolio = self.engine.portfolio
        day = self._portfolio_day()
        if int(t // 86400) != day or int((t + step) // 86400) != day:
            return False
        cfg = self.settings.trading
        swing = 0.0
        for series, row in group:
            key = (series.exchange, series.symbol)
            fired = self._fires.get(key)
            pos = portfolio.positions.get(key)
            amount = pos.amount if pos is not None else 0
            if pos is not None and amount != 0:
                if pos.contract is not None:
                    return False
                low, high = self._reach[key]
                swing += abs(float(amount)) * float(high[row] - low[row])
            if fired is None or not fired[0][row]:
                continue
            _, side, strength, rank = fired
            if rank[row] == 0 or strength[row] < cfg.min_signal_strength:
                continue
            buy = side[row] == 1
            if (amount > 0 and buy) or (amount < 0 and not buy):
                continue
            if amount == 0 and not buy and not cfg.allow_short:
                continue
            return False  # the engine acts on this one
        limit = float(ctx.runtime.limits.daily_loss_limit)
        pnl = float(portfolio.equity - portfolio.day_start_equity)
        return pnl - 2 * swing - 0.01 * limit > -limit

    def _portfolio_day(self) -> int:
        """The UTC day number of the portfolio's current day (-1 before its first)."""
        name = self.engine.portfolio.day  # rolled by its snapshots (the engine's poll)
        if name != self._days[0]:
            number = -1
            if name:
                when = datetime.strptime(name, "%Y-%m-%d").replace(tzinfo=UTC)
                number = int(when.timestamp() // 86400)
            self._days = (name, number)
        return self._days[1]

    def _ledger_signal(self, series: CandleSeries, row: int, t: float) -> None:
        """The generator reads the closed candle; its signal, if any, reaches the ledger only."""
        key = (series.exchange, series.symbol)
        fired = self._fires.get(key)
        if fired is None or not fired[0][row]:
            return
        self._indicators[key].row = row
        now = self.clock.time()
        with self.pipe.signals.publishing_to(self._ledger_hub):
            self.pipe.signals.on_candle(
                Candle(
                    exchange=series.exchange,
                    symbol=series.symbol,
                    ts=now,
                    ts_recv=now,
                    interval=series.timeframe,
                    start=t,
                    end=now,
                    open=float(series.open[row]),
                    high=float(series.high[row]),
                    low=float(series.low[row]),
                    close=float(series.close[row]),
                    volume=float(series.volume[row]),
                )
            )

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
            self._indicators[key] = indicators
            signals.use_indicators(*key, indicators)  # the generator's own state for this market
            fired_rows = indicator_signals(
                series.close, found.closes[groups], indicators.values, cfg
            )
            self._fires[key] = fired_rows
            fire_groups.append(groups[fired_rows[0]])
        return [int(g) for g in np.unique(np.concatenate(fire_groups))]

    def _all_idle(self) -> bool:
        """No position, protection or open order anywhere."""
        engine = self.engine
        if engine.protection.protections or engine.portfolio.open_positions():
            return False
        return all(self._idle(s) for s in self.series)

    def _safe_candle(self, series: CandleSeries, row: int) -> bool:
        """Nothing but the close quote can act on this candle of ``series``: idle, or a
        position whose emulated stop and take-profit the candle cannot reach."""
        if self._idle(series):
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

    def _safe_until(self, series: CandleSeries, row: int, prot: Protection) -> int:
        """The last row from ``row`` on (``row - 1``: none) whose range, widened by twice its
        half spread, stays strictly between the stop and the take-profit."""
        key = (series.exchange, series.symbol)
        reach = self._reach.get(key)
        if reach is None:
            cfg = self.settings.backtest
            span = series.high - series.low
            half = np.maximum(
                series.high * cfg.slippage_bps / 10_000.0, cfg.slippage_range_fraction * span
            )
            reach = self._reach[key] = (series.low - 2 * half, series.high + 2 * half)
        low, high = reach
        stop = float(prot.stop)
        take = None if prot.take is None else float(prot.take)
        n = len(series)
        width = 256
        at = row
        while at < n:
            lo_, hi_ = low[at : at + width], high[at : at + width]
            if prot.long:
                risky = lo_ <= stop
                if take is not None:
                    risky |= hi_ >= take
            else:
                risky = hi_ >= stop
                if take is not None:
                    risky |= lo_ <= take
            hit = np.flatnonzero(risky)
            if hit.size:
                return at + int(hit[0]) - 1
            at += width
            width *= 4
        return n - 1

    def _long(self, series: CandleSeries) -> bool | None:
        amount = self.engine.portfolio.amount(series.exchange, series.symbol)
        return None if amount == 0 else amount > 0

    def _half_spread(self, series: CandleSeries, row: int, price: float) -> float:
        cfg = self.settings.backtest
        span = float(series.high[row] - series.low[row])
        return max(price * cfg.slippage_bps / 10_000.0, cfg.slippage_range_fraction * span)

    def _levels(self, series: CandleSeries, row: int, start: float, end: float) -> list[float]:
        """Mid prices that quote the protection levels crossed moving from start to end."""
        prot: Protection | None = self.engine.protection.protections.get(
            (series.exchange, series.symbol)
        )
        if prot is None or start == end:
            return []
        lo, hi = min(start, end), max(start, end)
        out: list[float] = []
        for level, is_take in ((prot.stop, False), (prot.take, True)):
            if level is None or not lo < float(level) < hi:
                continue
            value = float(level)
            if is_take:  # the quote's bid (long) / ask (short) touches it: fills at the level
                half = self._half_spread(series, row, value)
                value = value + half if prot.long else value - half
            out.append(value)
        out.sort(reverse=end < start)
        return out

    def _quote(self, series: CandleSeries, row: int, price: float) -> None:
        now = self.clock.time()
        half = self._half_spread(series, row, price)
        bid, ask = max(price - half, 0.0), price + half
        mid = (bid + ask) / 2 or 1.0
        self.hub.publish(
            BookTop(
                exchange=series.exchange,
                symbol=series.symbol,
                ts=now,
                ts_recv=now,
                bid=bid,
                bid_size=1e12,
                ask=ask,
                ask_size=1e12,
                spread=ask - bid,
                spread_bps=(ask - bid) / mid * 10_000.0,
                bid_depth=1e12,
                ask_depth=1e12,
                imbalance=0.0,
                levels=1,
            )
        )

    def _close(self, series: CandleSeries, row: int, t: float) -> None:
        now = self.clock.time()
        indicators = self._indicators.get((series.exchange, series.symbol))
        if indicators is not None:
            indicators.row = row
        trade = candle_trade(series, row, now)
        self.hub.publish(trade)
        self.hub.publish(
            Candle(
                exchange=series.exchange,
                symbol=series.symbol,
                ts=now,
                ts_recv=now,
                interval=series.timeframe,
                start=t,
                end=now,
                open=float(series.open[row]),
                high=float(series.high[row]),
                low=float(series.low[row]),
                close=trade.price,
                volume=trade.amount,
            )
        )


def n_rows(series: CandleSeries, rows: np.ndarray) -> int:
    """len(series) when ``rows`` (the timeline's) is 0, 1, 2, ...; else -1."""
    n = len(series)
    return n if rows.shape[0] == n and bool(np.all(rows == np.arange(n))) else -1


def _slot_price(series: CandleSeries, row: int, slot: int, long: bool | None) -> float:
    """Open, the worse extreme for the position first (low for a long), the other, close."""
    if slot == 0:
        return float(series.open[row])
    if slot == SLOTS - 1:
        return float(series.close[row])
    # flat: the extreme on the far side of the close's move comes first
    low_first = bool(series.close[row] >= series.open[row]) if long is None else long
    first, second = (series.low, series.high) if low_first else (series.high, series.low)
    return float((first if slot == 1 else second)[row])
