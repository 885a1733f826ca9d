"""ccxt's request pacing with the urgent lane (ccxt_gate.pace): a protective exit's request
skips the queue that a heavy read left a debt in, and its weight is added to that debt."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from cryptomon.clock import LiveClock
from cryptomon.trading.brokers.base import URGENT, urgent
from cryptomon.trading.brokers.ccxt_gate import VenueGate, install


async def paced(algorithm: str = "leakyBucket") -> Any:
    """A real ccxt ``binanceusdm`` client with its pacing on and the broker's gate installed."""
    import ccxt.async_support as ccxt_async

    exchange = ccxt_async.binanceusdm({"enableRateLimit": True})
    if algorithm != "leakyBucket":
        exchange.throttler.config["algorithm"] = algorithm
    install(exchange, VenueGate("t", clock=LiveClock()))
    return exchange


@pytest.mark.asyncio
async def test_an_urgent_request_skips_the_debt_a_heavy_read_left_and_adds_to_it() -> None:
    """After a weight-40 read (openOrders without a symbol) the next paced request waits 2 s;
    an urgent one goes at once and the debt grows by its weight; outside ``urgent`` the
    request waits again."""
    exchange = await paced()
    try:
        await exchange.throttle(40)  # the heavy read leaves: tokens at -39 (2 s of debt)
        debt = exchange.throttler.config["tokens"]
        assert debt < -38
        started = time.monotonic()
        with urgent():
            await asyncio.wait_for(exchange.throttle(1), timeout=0.5)
        assert time.monotonic() - started < 0.5
        assert exchange.throttler.config["tokens"] == debt - 1
        assert URGENT.get() is False
        with pytest.raises(TimeoutError):  # an ordinary read still waits the debt out
            await asyncio.wait_for(exchange.throttle(1), timeout=0.2)
    finally:
        await exchange.close()


@pytest.mark.asyncio
async def test_not_urgent_when_off_and_a_rolling_window_counts_the_urgent_request() -> None:
    """``urgent(False)`` changes nothing (the request is paced); with ccxt's rolling window
    an urgent request is stamped into the window with its weight."""
    exchange = await paced("rollingWindow")
    try:
        with urgent(False):
            assert URGENT.get() is False
        with urgent():
            await exchange.throttle(7)
        assert [t["cost"] for t in exchange.throttler.timestamps] == [7.0]
    finally:
        await exchange.close()
