"""Backtesting public trades (``backtest --trades``: trade files, or trades stored by
``download --trades`` / ``--from-file``).

Every trade, in time order across markets, moves the ManualClock to its time, is quoted
(its price with the ``backtest.slippage_bps`` half spread, the bid and ask on the paper
venue's tick: the paper broker fills there and the protections watch it) and published, so
the trade detectors (volume, whale, imbalance, ...) see the real trades; the detectors'
micro-batch is flushed after each trade. When a trade opens a later minute, the previous
minute's candle is closed first (the indicator strategy). The equity is sampled at each
candle's close.
"""

from __future__ import annotations

import time

import numpy as np

from cryptomon.backtest.data import CandleSeries, candles_from_trades
from cryptomon.backtest.pipeline import Pipeline
from cryptomon.backtest.result import BacktestResult, backtest_settings, make_result
from cryptomon.backtest.synth import grid_quote, grid_unit, quote_top
from cryptomon.config import Settings
from cryptomon.events import Candle, Side, Trade
from cryptomon.market.datafiles import TradeRows

MINUTE = 60.0


class TradeRunner:
    """Drives ``markets`` (exchange, symbol, trades) through the pipeline."""

    def __init__(self, settings: Settings, markets: list[tuple[str, str, TradeRows]]) -> None:
        self.markets = [m for m in markets if len(m[2])]
        self.series: list[CandleSeries] = [
            candles_from_trades(t, exchange=ex, symbol=sym) for ex, sym, t in self.markets
        ]
        self.settings = backtest_settings(settings, self.series)
        self._unit = grid_unit(self.settings.trading.paper.tick_size)  # the quotes' grid
        start = min((float(t.ts[0]) for _, _, t in self.markets), default=0.0)
        self.pipe = Pipeline(self.settings, start=start)
        self.hub = self.pipe.hub
        self._bars: dict[int, list[float]] = {}  # market index -> [start, o, h, l, c, v]
        self._points: list[tuple[float, float, float]] = []

    async def run(self) -> BacktestResult:
        t0 = time.perf_counter()
        await self.pipe.start()
        try:
            await self._drive()
        finally:
            await self.pipe.stop()
        arr = np.asarray(self._points or [(self.pipe.clock.time(), self.pipe.equity, 0.0)])
        return make_result(
            self.pipe,
            series=self.series,
            equity=(arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy()),
            seconds=time.perf_counter() - t0,
        )

    async def _drive(self) -> None:
        ts = np.concatenate([t.ts for _, _, t in self.markets])
        which = np.concatenate([np.full(len(t), i) for i, (_, _, t) in enumerate(self.markets)])
        rows = np.concatenate([np.arange(len(t)) for _, _, t in self.markets])
        order = np.argsort(ts, kind="stable")
        clock = self.pipe.clock
        for k in order:
            i, r = int(which[k]), int(rows[k])
            when = float(ts[k])
            bar = self._bars.get(i)
            if bar is not None and when >= bar[0] + MINUTE:
                await self._close_bar(i)
            clock.set(max(clock.time(), when))
            await self._trade(i, r)
        for i in sorted(self._bars):
            await self._close_bar(i)

    async def _trade(self, i: int, r: int) -> None:
        ex, sym, trades = self.markets[i]
        now = self.pipe.clock.time()
        price, amount = float(trades.price[r]), float(trades.amount[r])
        half = price * self.settings.backtest.slippage_bps / 10_000.0
        bid, ask = grid_quote(price, half, self._unit)
        self.hub.publish(quote_top(ex, sym, now, bid=bid, ask=ask, ref=price))
        side: Side = "sell" if trades.side[r] == "sell" else "buy"
        self.hub.publish(
            Trade(
                exchange=ex,
                symbol=sym,
                ts=now,
                ts_recv=now,
                price=price,
                amount=amount,
                side=side,
                trade_id=trades.ids[r],
            )
        )
        self.pipe.flush()
        await self.pipe.settle()
        bar = self._bars.get(i)
        if bar is None:
            self._bars[i] = [now // MINUTE * MINUTE, price, price, price, price, amount]
        else:
            bar[2], bar[3], bar[4] = max(bar[2], price), min(bar[3], price), price
            bar[5] += amount

    async def _close_bar(self, i: int) -> None:
        ex, sym, _ = self.markets[i]
        start, o, h, low, c, v = self._bars.pop(i)
        clock = self.pipe.clock
        clock.set(max(clock.time(), start + MINUTE))
        now = clock.time()
        self.hub.publish(
            Candle(
                exchange=ex,
                symbol=sym,
                ts=now,
                ts_recv=now,
                interval="1m",
                start=start,
                end=start + MINUTE,
                open=o,
                high=h,
                low=low,
                close=c,
                volume=v,
            )
        )
        await self.pipe.settle()
        self._points.append((now, self.pipe.equity, 1.0 if self.pipe.exposed else 0.0))
