"""The events that compile every detector kernel up front (:func:`cryptomon.detect.engine.warmup`,
run by ``DetectorEngine.start``): a throw-away engine with the same registry gets one event of
each input through its own hub, so the first real events do not pay numba's compile or cache
load."""

from __future__ import annotations

from cryptomon.events import BookTop, Event, Funding, Liquidation, Ticker, Trade


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
