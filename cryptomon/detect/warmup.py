"""Compile every detector kernel up front (``DetectorEngine.start``): a throw-away engine runs
one event of each kind, so the first real events do not pay numba's compile or cache load."""

from __future__ import annotations

import numpy as np

from cryptomon.config import AnomalyDetectionConfig
from cryptomon.events import BookTop, Liquidation, Ticker, Trade


def warmup() -> None:
    """Run every kernel once on a throw-away engine so compilation happens up front."""
    from cryptomon.hub import Hub as _Hub

    class _Zero:
        def time(self) -> float:
            return 0.0

        def monotonic(self) -> float:
            return 0.0

        async def sleep(self, seconds: float) -> None:
            return None

    from cryptomon.detect.engine import DetectorEngine

    eng = DetectorEngine(hub=_Hub(), clock=_Zero(), config=AnomalyDetectionConfig(batch_size=4))
    t = Trade(exchange="x", symbol="A-B", ts=1.0, ts_recv=1.0, price=1.0, amount=1.0, side="buy")
    b = BookTop(
        exchange="x",
        symbol="A-B",
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
    )
    tk = Ticker(exchange="y", symbol="A-B", ts=1.0, ts_recv=1.0, bid=1.0, ask=1.1)
    liq = Liquidation(
        exchange="x", symbol="A-B", ts=1.0, ts_recv=1.0, side="sell", price=1.0, amount=1.0
    )
    eng._on_trade(t)
    eng._on_book(b)
    eng._on_ticker(tk)
    eng._on_liquidation(liq)
    eng.flush()
    from cryptomon.detect.kernels_nb import rolling_zscore_nb

    rolling_zscore_nb(np.zeros(2), 2, 2)
