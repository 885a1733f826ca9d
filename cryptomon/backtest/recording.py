"""Backtesting raw recordings (cryptofeed's raw-data files, ``crypto-monitor record``).

The recording is replayed by the daemon's own :class:`~cryptomon.feeds.replay.ReplayFeed`
(cryptofeed parse, the converter, book tops) at its recorded pace on the pipeline's
ManualClock, which the driver moves forward in steps of ``step_s``: after each step the feed
delivers every message up to the new time, the loop turn those messages were handled in
ends (book tops conflated and published, detectors flushed), then the pipeline settles
(signals traded, fills applied, emulated exits run) before the next step, as the daemon's
replay would before that time. Trade and book detectors see the real trades and books; the
paper broker fills against the recorded book.

For the report and buy and hold, the recorded trades are aggregated into one-minute candles.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np

from cryptomon.backtest.data import CandleSeries, series_from_rows
from cryptomon.backtest.pipeline import Pipeline
from cryptomon.backtest.result import BacktestResult, backtest_settings, make_result
from cryptomon.config import ExchangeConfig, Settings
from cryptomon.errors import ConfigError
from cryptomon.events import Trade
from cryptomon.feeds.replay import ReplayFeed, replay_feed_class
from cryptomon.feeds.specs import recording_specs
from cryptomon.market.datafiles import DataError
from cryptomon.market.inputs import MarketInputs
from cryptomon.market.registry import InstrumentRegistry

MINUTE = 60.0


def is_recording(path: str) -> bool:
    """``BINANCE.0``, ``BINANCE.ws.1.0``, ``BINANCE.http.0.0``: cryptofeed raw-data names."""
    name = Path(path).name
    parts = name.split(".")
    return len(parts) >= 2 and parts[0].isupper() and parts[1] in ("0", "ws", "http")


def recording_exchange(files: list[str]) -> str:
    """The exchange of a recording from its file names (``BINANCE.0`` -> ``binance``)."""
    names = {Path(f).name.split(".")[0] for f in files}
    if len(names) != 1:
        raise DataError(f"recording files of one exchange expected, got {sorted(names)}")
    return names.pop().lower()


def first_timestamp(files: list[str]) -> float:
    """The time of the first websocket message of the recording."""
    for f in sorted(f for f in files if ".ws." in Path(f).name):
        try:
            with Path(f).open(encoding="utf-8") as fp:
                for line in fp:
                    head, sep, _ = line.partition(": ")
                    if sep and not head.startswith(("wss", "http")):
                        return float(head)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read {f}: {exc}") from None
    raise DataError(f"no websocket messages in {', '.join(files)} (expected EXCHANGE.ws.N.M)")


class _Minutes:
    """One-minute OHLCV of the recorded trades per symbol (for the report and buy and hold)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[float, list[float]]] = {}

    def on_trade(self, trade: Trade) -> None:
        bars = self.rows.setdefault(trade.symbol, {})
        start = trade.ts // MINUTE * MINUTE
        bar = bars.get(start)
        if bar is None:
            bars[start] = [start, trade.price, trade.price, trade.price, trade.price, trade.amount]
            return
        bar[2] = max(bar[2], trade.price)
        bar[3] = min(bar[3], trade.price)
        bar[4] = trade.price
        bar[5] += trade.amount

    def series(self, exchange: str) -> list[CandleSeries]:
        return [
            series_from_rows(list(bars.values()), exchange=exchange, symbol=sym, timeframe="1m")
            for sym, bars in sorted(self.rows.items())
        ]


class RecordingRunner:
    """Replays ``files`` through the backtest pipeline (see the module docstring)."""

    def __init__(
        self, settings: Settings, files: list[str], *, exchange: str | None = None
    ) -> None:
        self.exchange = exchange or recording_exchange(files)
        self.step_s = settings.backtest.replay_step_s
        self.settings = backtest_settings(settings, [])
        cfg = ExchangeConfig(
            name=self.exchange, source="replay", files=list(files), replay_speed="1x"
        )
        # the recording's instrument specs, as the daemon's replay reads them
        registry = InstrumentRegistry()
        registry.add(recording_specs(cfg))
        inputs = MarketInputs(registry=registry, config=self.settings.market_data)
        self.pipe = Pipeline(self.settings, start=first_timestamp(files), inputs=inputs)
        try:
            feed_class = replay_feed_class(self.exchange)
        except ConfigError as exc:
            raise DataError(f"recording of {self.exchange!r}: {exc.problems[0]}") from None
        self.feed = ReplayFeed(
            cfg, feed_class=feed_class, hub=self.pipe.hub, clock=self.pipe.clock, market=inputs
        )
        self.minutes = _Minutes()
        self.pipe.hub.subscribe(Trade, self.minutes.on_trade, name="backtest.minutes")

    async def _idle_sleepers(self) -> int:
        """Clock sleepers of the started pipeline alone (the engine's poll loop)."""
        for _ in range(8):
            await asyncio.sleep(0)
        return self.pipe.clock.sleepers

    async def run(self) -> BacktestResult:
        t0 = time.perf_counter()
        await self.pipe.start()
        base = await self._idle_sleepers()
        await self.feed.start()
        clock = self.pipe.clock
        points: list[tuple[float, float, float]] = []
        try:
            while not self.feed.done.is_set():
                # the feed delivers every message up to now, then sleeps on the clock again
                while not self.feed.done.is_set() and clock.sleepers <= base:  # noqa: ASYNC110 - loop turns, not time: the clock is manual
                    await asyncio.sleep(0)
                # the end of the loop turn of the step's last message, before the clock moves:
                # the converter's conflated book tops and the detectors' batch (call_soon), in
                # the order they were scheduled, as the daemon's loop runs them. Without it a
                # step with no trading activity (settle returns at once) published its book
                # tops after the clock had moved on: an emulated stop they cross exited a
                # step (0.1 s) later than in the daemon.
                await asyncio.sleep(0)
                self.pipe.flush()
                await self.pipe.settle()
                points.append((clock.time(), self.pipe.equity, 1.0 if self.pipe.exposed else 0.0))
                clock.advance(self.step_s)
            if self.feed.error is not None:
                raise DataError(f"replay of {self.exchange} failed: {self.feed.error}")
            self.pipe.flush()
            await self.pipe.settle()
        finally:
            await self.feed.stop()
            await self.pipe.stop()
        arr = np.asarray(points or [(clock.time(), self.pipe.equity, 0.0)], dtype=np.float64)
        series = self.minutes.series(self.exchange)
        return make_result(
            self.pipe,
            series=series,
            equity=(arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy()),
            seconds=time.perf_counter() - t0,
        )
