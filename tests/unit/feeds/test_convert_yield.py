"""The feed adapter gives the event loop back within a burst of messages (detector latency)."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D

import pytest
from cryptofeed.types import Trade as CfTrade

from cryptomon.clock import LiveClock
from cryptomon.events import Trade
from cryptomon.feeds.convert import Converter
from cryptomon.feeds.health import FeedHealth
from cryptomon.hub import Hub


async def burst(yield_every: int, n: int = 64) -> list[int]:
    """Feed ``n`` trades back to back, as cryptofeed's reader does with a buffered burst, while
    a subscriber schedules work with call_soon (like the detectors' flush); return how many
    trades had been handled each time that work ran."""
    hub = Hub()
    health = FeedHealth("x", ["trades"], hub=hub, clock=LiveClock())
    conv = Converter("x", hub=hub, health=health, loop_yield_every=yield_every)
    handled = 0
    ran_at: list[int] = []
    pending = False
    loop = asyncio.get_running_loop()

    def flush() -> None:
        nonlocal pending
        pending = False
        ran_at.append(handled)

    def on_trade(_: Trade) -> None:
        nonlocal handled, pending
        handled += 1
        if not pending:
            pending = True
            loop.call_soon(flush)

    hub.subscribe(Trade, on_trade)
    for i in range(n):
        await conv.trade(CfTrade("X", "BTC-USDT", "buy", D(1), D(100), 1.0, id=str(i)), 1.0)
    await asyncio.sleep(0)
    return ran_at


@pytest.mark.asyncio
async def test_call_soon_work_runs_every_n_messages_of_a_burst() -> None:
    """With loop_yield_every=16 the scheduled flush runs after every 16 messages."""
    assert await burst(16) == [16, 32, 48, 64]


@pytest.mark.asyncio
async def test_zero_disables_yielding() -> None:
    """loop_yield_every=0 never yields: the flush runs once, after the whole burst."""
    assert await burst(0) == [64]
