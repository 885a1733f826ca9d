"""The whole candle path of the backtest (see :mod:`cryptomon.backtest.runner`): quotes at the
open, the extremes and the close, every protection level crossed on the way, the closing
trade and candle, and the equity mark at a candle's end."""

from __future__ import annotations

import math

from cryptomon.backtest.candle_detect import candle_trade
from cryptomon.backtest.data import CandleSeries, Column, columns
from cryptomon.backtest.fastpath import SeriesIndicators
from cryptomon.backtest.pipeline import Pipeline
from cryptomon.backtest.synth import (
    grid_down,
    grid_quote,
    grid_unit,
    grid_up,
    quote_top,
    series_candle,
)
from cryptomon.config import Settings
from cryptomon.events import Anomaly
from cryptomon.trading.protection import Protection

SLOTS = 4


class CandlePath:
    """Drives candles of the pipeline ``pipe`` through their quote path, one group at a time."""

    def __init__(self, pipe: Pipeline, settings: Settings) -> None:
        """``settings``: the backtest's (:func:`~cryptomon.backtest.result.backtest_settings`)."""
        self.pipe = pipe
        self.settings = settings
        self.clock = pipe.clock
        self.hub = pipe.hub
        self.engine = pipe.engine
        self._marked: tuple[int, float] | None = None  # (ledger activity, equity) when flat
        self._no_orders: dict[tuple[str, str], int] = {}  # market -> activity seen orderless
        self._spans: dict[int, tuple[CandleSeries, Column]] = {}  # id -> high - low
        self._unit = grid_unit(settings.trading.paper.tick_size)  # the quotes' grid
        self._bps = settings.backtest.slippage_bps
        self._fraction = settings.backtest.slippage_range_fraction
        # per market: the indicator columns the generator reads (fast path, set by its driver)
        self.indicators: dict[tuple[str, str], SeriesIndicators] = {}
        # the fast path's close quote not yet published: (series, row, its time), see
        # :meth:`defer_close`
        self._pending: tuple[CandleSeries, int, float] | None = None

    def mark(self) -> tuple[float, float]:
        """(equity, exposure) at a candle's end; flat and without a new trading event since
        the last mark, the equity has not moved (no Decimal work)."""
        activity = self.pipe.ledger.activity
        if self._marked is not None and self._marked[0] == activity:
            return self._marked[1], 0.0
        if self._pending is not None:  # the marks read the latest quote
            self.flush()
        exposed = self.pipe.exposed
        equity = self.pipe.equity
        self._marked = None if exposed else (activity, equity)
        return equity, 1.0 if exposed else 0.0

    def idle(self, series: CandleSeries) -> bool:
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

    async def candles(
        self,
        t: float,
        group: list[tuple[CandleSeries, int]],
        anomalies: list[Anomaly],
        *,
        still: bool = False,
    ) -> None:
        """The group's quotes along each candle, its closing trades and candles, then
        ``anomalies``. ``still``: the caller knows no quote before the close ones can act
        (see :meth:`FastLanes._still`): only the close quotes are published."""
        step = group[0][0].seconds
        last: dict[int, float] = {}  # per series (one symbol may trade on two exchanges)
        # an idle market (flat, no order) skips the path: nobody reads those quotes
        moving = [] if still else [(s, row) for s, row in group if not self.idle(s)]
        for slot in range(SLOTS):
            self.clock.set(max(self.clock.time(), t + step * slot / SLOTS))
            for series, row in moving if slot < SLOTS - 1 else group:
                target = slot_price(series, row, slot, self._long(series))
                start = last.get(id(series), float(series.open[row]))
                for price in [*self._levels(series, row, start, target), target]:
                    self.quote(series, row, price)
                    await self.pipe.settle()
                last[id(series)] = target
        self.clock.set(max(self.clock.time(), t + step))
        for series, row in group:
            self.close(series, row, t)
        for anomaly in anomalies:  # found a chunk ahead (candle_detect.py)
            self.hub.publish(anomaly)
        await self.pipe.settle()

    def close_quotes(self, t: float, group: list[tuple[CandleSeries, int]]) -> None:
        """Only the close quotes of ``group``, at the time the whole path quotes them."""
        step = group[0][0].seconds
        self.clock.set(max(self.clock.time(), t + step * (SLOTS - 1) / SLOTS))
        for series, row in group:
            self.quote(series, row, float(series.close[row]))
        self.clock.set(max(self.clock.time(), t + step))

    def defer_close(self, t: float, series: CandleSeries, row: int) -> float | None:
        """The fast path's close quote of one market (:meth:`close_quotes`, the clock moved
        the same way), kept unpublished until a quote, a mark or :meth:`flush` needs it; the
        mid the market answers after it (the signal of the row reads it), or None: its bid is
        zero and it was published now. Only for a candle where nothing but the close quote
        can act (idle, or a safe position: no exit fires, no trailing stop): every reader of a
        quote keeps the latest one (the market's top, the position's mark, the quote price),
        so the quote is the same whether published now or just before the next reader."""
        step = series.seconds
        clock = self.clock
        clock.set(max(clock.time(), t + step * (SLOTS - 1) / SLOTS))
        now = clock.time()
        price = float(series.close[row])
        bid, ask = self._quote(series, row, price)
        if bid > 0:
            pending = self._pending
            if pending is not None and pending[0] is not series:
                self.flush()
            self._pending = (series, row, now)  # replaces this market's pending quote
            mid: float | None = (bid + ask) / 2  # MarketState.mid of that quote
        else:
            self.quote(series, row, price)
            mid = None
        clock.set(max(clock.time(), t + step))
        return mid

    def flush(self) -> None:
        """Publish the deferred close quote (:meth:`defer_close`), if any."""
        pending, self._pending = self._pending, None
        if pending is not None:
            series, row, now = pending
            self._publish(series, row, float(series.close[row]), now)

    def _long(self, series: CandleSeries) -> bool | None:
        amount = self.engine.portfolio.amount(series.exchange, series.symbol)
        return None if amount == 0 else amount > 0

    def close_bid(self, series: CandleSeries, row: int) -> float:
        """The bid of the row's close quote (as :meth:`quote` publishes it)."""
        return self._quote(series, row, float(series.close[row]))[0]

    def _quote(self, series: CandleSeries, row: int, price: float) -> tuple[float, float]:
        """The bid and ask of the quote around ``price``: its half spread, on the series'
        price grid (:func:`~cryptomon.backtest.synth.grid_quote`)."""
        return grid_quote(price, self._half_spread(series, row, price), self._unit)

    def _half_spread(self, series: CandleSeries, row: int, price: float) -> float:
        cached = self._spans.get(id(series))
        if cached is None or cached[0] is not series:  # each row's range, as floats, once
            cached = self._spans[id(series)] = (series, columns(series.high - series.low))
        return max(price * self._bps / 10_000.0, self._fraction * cached[1][row])

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
                value = self._touching(series, row, value, long=prot.long)
            out.append(value)
        out.sort(reverse=end < start)
        return out

    def _touching(self, series: CandleSeries, row: int, level: float, *, long: bool) -> float:
        """The mid whose quote's bid (``long``) / ask is ``level``: its half spread is the
        mid's, not the level's (``level + half(level)`` bids a hair below the level, which
        then fired only at a later, better quote of the candle)."""
        b = self._bps / 10_000.0
        fixed = self._half_spread(series, row, 0.0)  # the range part alone
        unit = self._unit
        if long:  # the bid is on the grid: the first grid price at or above the level
            target = grid_up(level, unit)
            mid = max(target / (1.0 - b), target + fixed)  # slippage_bps <= 1000
            for _ in range(8):  # float rounding: the first mid whose bid reaches the level
                if self._quote(series, row, mid)[0] >= level:
                    break
                mid = math.nextafter(mid, math.inf)
        else:
            target = grid_down(level, unit)
            mid = min(target / (1.0 + b), target - fixed)
            for _ in range(8):
                if self._quote(series, row, mid)[1] <= level:
                    break
                mid = math.nextafter(mid, -math.inf)
        return mid

    def quote(self, series: CandleSeries, row: int, price: float) -> None:
        """Publish the quote around ``price`` now. A deferred close quote of the same market
        (:meth:`defer_close`) is replaced by it when its bid is positive (it sets all that
        one would), else published first; another market's is published first."""
        pending = self._pending
        if pending is not None:
            if pending[0] is series and self._quote(series, row, price)[0] > 0:
                self._pending = None
            else:
                self.flush()
        self._publish(series, row, price, self.clock.time())

    def _publish(self, series: CandleSeries, row: int, price: float, now: float) -> None:
        bid, ask = self._quote(series, row, price)
        mid = (bid + ask) / 2 or 1.0
        self.hub.publish(quote_top(series.exchange, series.symbol, now, bid=bid, ask=ask, ref=mid))

    def close(self, series: CandleSeries, row: int, t: float) -> None:
        now = self.clock.time()
        indicators = self.indicators.get((series.exchange, series.symbol))
        if indicators is not None:
            indicators.row = row
        trade = candle_trade(series, row, now)
        self.hub.publish(trade)
        self.hub.publish(
            series_candle(series, row, start=t, now=now, close=trade.price, volume=trade.amount)
        )


def slot_price(series: CandleSeries, row: int, slot: int, long: bool | None) -> float:
    """Open, the worse extreme for the position first (low for a long), the other, close."""
    if slot == 0:
        return float(series.open[row])
    if slot == SLOTS - 1:
        return float(series.close[row])
    # flat: the extreme on the far side of the close's move comes first
    low_first = bool(series.close[row] >= series.open[row]) if long is None else long
    first, second = (series.low, series.high) if low_first else (series.high, series.low)
    return float((first if slot == 1 else second)[row])
