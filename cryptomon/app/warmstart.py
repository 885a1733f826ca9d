"""Warm start: the detector windows filled from the store before the feeds start.

(``anomaly_detection.warm_from_store``.)

A restart would otherwise leave every market in warm-up for ``min_samples`` buckets (30
minutes by default). With ``storage.trades`` the stored live trades of each configured market
within the detectors' lookback take the path of venue history
(``DetectorEngine.warm_from_trades``); otherwise the stored 1-minute candles warm the
detectors whose bucket statistics a candle reproduces (``DetectorEngine.warm_from_candles``:
price and volume, never whale); a market whose trades the cap cuts gets its candles too,
for the price and volume buckets before its first stored trade. Nothing is published on the
hub (the store writer would store it again, the dashboard would show it) and nothing is
alerted on.

Bounded: one statement per kind for all markets (``cryptomon.store.warm``), at most
``max_trades`` trades (each market its share, its newest) or ``max_candles`` candles, and
``budget_s`` for the whole warm start: past it the start goes on with what was warmed
(``detectors.warm_start_cut``). A failed read is logged and the daemon starts cold, as it did
before. One ``detectors.warm_start`` line says what was warmed from what.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from cryptomon.clock import Clock
from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect.stored import warms_from_candles

if TYPE_CHECKING:
    from cryptomon.detect.engine import DetectorEngine
    from cryptomon.store.db import Database

log = structlog.get_logger()

BUDGET_S = 5.0  # the whole warm start at most (read and feed)
MAX_TRADES = 100_000  # stored trades read at most (each market its share, its newest)
MAX_CANDLES = 100_000  # stored candles read at most (the newest)
FEED_CHUNK = 20_000  # trades fed to the engine between two looks at the clock
MAX_DOWN_BUCKETS = 3
"""A store whose newest data is older than this many buckets before the start is not used
for a market (its own ``bucket_seconds``, an override's too): the daemon was down, and the
buckets in between would enter its windows as quiet ones (volume 0, the price flat), lowering
the volume mean a live burst is measured against. A restart or a deploy is shorter than
three buckets of a minute; with buckets of seconds the markets start cold."""


class StoreWarmStart:
    """A start-only component between the detectors and the feeds."""

    name = "detector-warm-start"

    def __init__(
        self,
        *,
        db: Database,
        detectors: DetectorEngine,
        clock: Clock,
        config: AnomalyDetectionConfig,
        markets: Sequence[tuple[str, str]],
        trades: bool,
        budget_s: float = BUDGET_S,
        max_trades: int = MAX_TRADES,
        max_candles: int = MAX_CANDLES,
    ) -> None:
        self.db = db
        self.detectors = detectors
        self.clock = clock
        self.config = config
        self.markets = list(dict.fromkeys(markets))
        self.trades = trades
        self.budget_s = budget_s
        self.max_trades = max_trades
        self.max_candles = max_candles
        self.result: dict[str, object] = {}

    def _bucket(self, market: tuple[str, str]) -> float:
        return self.config.for_symbol(*market).bucket_seconds

    def _cold(self, newest: float, now: float) -> set[tuple[str, str]]:
        """The markets the store's ``newest`` data is more than ``MAX_DOWN_BUCKETS`` of their
        own buckets before ``now`` for (the daemon was down that long; a per-market
        ``bucket_seconds`` counts for its market alone). Every market: the reason is in the
        result's ``skipped``; some: they are named in ``cold`` and ``cold_why``."""
        down = now - newest
        cold = {m for m in self.markets if down > MAX_DOWN_BUCKETS * self._bucket(m)}
        if not cold:
            return cold
        if len(cold) == len(self.markets):
            bucket = max(self._bucket(m) for m in self.markets)
            self.result.update(
                markets=0,
                skipped=f"the store's newest data is {_span(down)} old, more than "
                f"{MAX_DOWN_BUCKETS} buckets ({_span(MAX_DOWN_BUCKETS * bucket)}; the daemon "
                "was down): the buckets in between would count as quiet ones, so the "
                "detectors start cold",
            )
        else:
            self.result.update(
                cold=sorted(f"{x}:{s}" for x, s in cold),
                cold_why=f"the store's newest data is {_span(down)} old, more than "
                f"{MAX_DOWN_BUCKETS} of their buckets: the buckets in between would count as "
                "quiet ones, so they start cold",
            )
        return cold

    def _span_s(self) -> float:
        """The history the windows hold: the longest lookback of the markets plus a bucket."""
        spans = [
            cfg.lookback_window_minutes * 60.0 + cfg.bucket_seconds
            for cfg in (self.config.for_symbol(x, s) for x, s in self.markets)
        ]
        return max(spans, default=0.0)

    async def start(self) -> None:
        if not self.markets:
            return
        started = time.perf_counter()
        source = "trades" if self.trades else "candles"
        try:
            async with asyncio.timeout(self.budget_s):
                await self._warm()
        except TimeoutError:
            self.result["timed_out"] = True
            log.warning(
                "detectors.warm_start_cut",
                source=source,
                budget_s=self.budget_s,
                hint="the stored history took too long to read; the start goes on with what "
                "was warmed",
            )
        except Exception as exc:  # the daemon starts cold rather than not at all
            log.warning("detectors.warm_start_failed", source=source, error=repr(exc))
            return
        log.info(
            "detectors.warm_start",
            source=source,
            **self.result,
            seconds=round(time.perf_counter() - started, 2),
        )

    async def _warm(self) -> None:
        from cryptomon.store.warm import recent_candles, recent_trades

        now = self.clock.time()
        since = now - self._span_s()
        engine = self.detectors
        if self.trades:
            trades, cut = await recent_trades(self.db, self.markets, since, now, self.max_trades)
            self.result.update(markets=0, rows=0, minutes=0.0, cut=len(cut))
            cold = self._cold(max(t.ts for t in trades), now) if trades else set()
            if cold:
                if len(cold) == len(self.markets):
                    return
                trades = [t for t in trades if (t.exchange, t.symbol) not in cold]
                cut = [m for m in cut if m not in cold]
                self.result["cut"] = len(cut)
            if cut:
                # a busy market's share of the cap spans less than its windows: its stored
                # candles fill the price and volume buckets before its trades' first
                candles, _ = await recent_candles(self.db, cut, since, now, self.max_candles)
                engine.warm_from_candles(candles, now)
                self.result["candles"] = len(candles)
            for i in range(0, len(trades), FEED_CHUNK):
                engine.warm_from_trades(trades[i : i + FEED_CHUNK])
                self.result.update(
                    markets=len({(t.exchange, t.symbol) for t in trades[: i + FEED_CHUNK]}),
                    rows=min(len(trades), i + FEED_CHUNK),
                    minutes=round((now - trades[0].ts) / 60.0, 1),
                )
                await asyncio.sleep(0)  # the budget's timeout (and signals) may end it here
            return
        candles, cut_candles = await recent_candles(
            self.db, self.markets, since, now, self.max_candles
        )
        cold = self._cold(max(c.end for c in candles), now) if candles else set()
        if cold:
            if len(cold) == len(self.markets):
                return
            candles = [c for c in candles if (c.exchange, c.symbol) not in cold]
        warmed, skipped = engine.warm_from_candles(candles, now)
        self.result.update(
            markets=warmed,
            rows=len(candles),
            minutes=round((now - candles[0].start) / 60.0, 1) if candles else 0.0,
            cut=cut_candles,
            detectors=[name for name, det in engine.detectors.items() if warms_from_candles(det)]
            if warmed
            else [],
        )
        if skipped:  # their buckets do not start and end on minutes
            self.result["not_warmed"] = skipped
            self.result["hint"] = (
                "1-minute candles fill buckets of whole minutes only (bucket_seconds 60, "
                "120, ...); with storage.trades: true these markets warm from stored trades"
            )

    async def stop(self) -> None:
        return None


def _span(seconds: float) -> str:
    """``seconds`` as the log reads it: minutes from a minute on, else seconds."""
    return f"{seconds / 60.0:.1f} min" if seconds >= 60.0 else f"{seconds:.1f} s"
