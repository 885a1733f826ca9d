"""Compiling every detector kernel up front (run by ``DetectorEngine.start``): a throw-away
engine with the same registry gets one event of each input through its own hub, so the first
real events do not pay numba's compile or cache load."""

from __future__ import annotations

import os
import threading
import time
from typing import Protocol

import numpy as np
import structlog

from cryptomon.clock import Clock, ManualClock
from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect.kernels_nb import rolling_zscore_nb
from cryptomon.detect.registry import DetectorRegistry
from cryptomon.events import BookTop, Event, Funding, Liquidation, Ticker, Trade
from cryptomon.hub import Hub

log = structlog.get_logger()

COMPILE_NOTICE_S = 1.0  # a warm-up longer than this is compiling: say so


class Flushes(Protocol):
    def flush(self) -> None: ...


class EngineType(Protocol):
    """How a detector engine is built (``DetectorEngine`` itself: passed in, as this module
    sits below the engine)."""

    def __call__(
        self,
        *,
        hub: Hub,
        clock: Clock,
        config: AnomalyDetectionConfig,
        registry: DetectorRegistry | None = None,
    ) -> Flushes: ...


def warmup_events() -> list[Event]:
    """One event of every input the detectors read (the ticker on a second exchange, so the
    cross-exchange mids run too)."""
    x, sym = "x", "A-B"
    return [
        Trade(exchange=x, symbol=sym, ts=1.0, ts_recv=1.0, price=1.0, amount=1.0, side="buy"),
        BookTop(
            exchange=x,
            symbol=sym,
            ts=1.0,
            ts_recv=1.0,
            bid=1.0,
            bid_size=1.0,
            ask=1.1,
            ask_size=1.0,
            spread=0.1,
            spread_bps=10.0,
            bid_depth=1.0,
            ask_depth=1.0,
            imbalance=0.0,
            levels=1,
        ),
        Ticker(exchange="y", symbol=sym, ts=1.0, ts_recv=1.0, bid=1.0, ask=1.1),
        Liquidation(
            exchange=x, symbol=sym, ts=1.0, ts_recv=1.0, side="sell", price=1.0, amount=1.0
        ),
        Funding(exchange=x, symbol=sym, ts=1.0, ts_recv=1.0, rate=0.0001),
    ]


def warmup(engine: EngineType, registry: DetectorRegistry | None = None) -> None:
    """Run every kernel once on a throw-away ``engine`` (the class) so compilation happens
    up front."""
    hub = Hub()
    spare = engine(
        hub=hub,
        clock=ManualClock(0.0),
        config=AnomalyDetectionConfig(batch_size=4),
        registry=registry,
    )
    for event in warmup_events():
        hub.publish(event)
    spare.flush()
    rolling_zscore_nb(np.zeros(2), 2, 2)


def warmup_with_notice(engine: EngineType, registry: DetectorRegistry | None = None) -> float:
    """:func:`warmup`, saying what happens when it takes long: the first start after an
    install compiles every kernel (~10 s on 2 idle cores, more on a loaded machine), which
    would otherwise be that long a silence before the API listens. After
    ``COMPILE_NOTICE_S`` a ``detectors.compiling`` line is logged (from a timer thread: the
    warm-up holds the loop), and a ``detectors.compiled`` line with the seconds when it is
    done; a start that loads the kernels from numba's cache logs neither. Returns the
    seconds taken."""
    started = time.perf_counter()
    notice = threading.Timer(
        COMPILE_NOTICE_S,
        lambda: log.info(
            "detectors.compiling",
            hint="the first start after an install compiles the detector kernels; later "
            "starts load them from the cache",
            cache_dir=os.environ.get("NUMBA_CACHE_DIR") or "the package's __pycache__",
        ),
    )
    notice.daemon = True
    notice.start()
    try:
        warmup(engine, registry)
    finally:
        notice.cancel()
    seconds = time.perf_counter() - started
    if seconds >= COMPILE_NOTICE_S:
        log.info("detectors.compiled", seconds=round(seconds, 1))
    return seconds
