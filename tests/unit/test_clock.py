"""ManualClock: time moves only when told, sleepers wake in deadline order."""

from __future__ import annotations

import asyncio

import pytest

from cryptomon.clock import Clock, LiveClock, ManualClock
from tests.util import wait_until


def test_both_clocks_satisfy_the_protocol() -> None:
    """LiveClock and ManualClock implement Clock."""
    assert isinstance(LiveClock(), Clock)
    assert isinstance(ManualClock(), Clock)


@pytest.mark.asyncio
async def test_sleepers_wake_when_time_passes_their_deadline() -> None:
    """A sleeper wakes only when the clock is advanced past its deadline, in order."""
    clock = ManualClock(start=100.0)
    woke: list[str] = []

    async def sleeper(name: str, s: float) -> None:
        await clock.sleep(s)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper("b", 5)), asyncio.create_task(sleeper("a", 2))]
    await wait_until(lambda: clock.sleepers == 2, message="both sleeping")
    clock.advance(1)
    await asyncio.sleep(0)
    assert woke == []
    clock.advance(1)
    await wait_until(lambda: woke == ["a"], message="a woke")
    clock.advance(10)
    await asyncio.gather(*tasks)
    assert woke == ["a", "b"]
    assert clock.time() == 112.0
    assert clock.monotonic() == 12.0


def test_clock_never_goes_backwards() -> None:
    """Setting an earlier time is refused."""
    clock = ManualClock(start=10)
    with pytest.raises(ValueError, match="backwards"):
        clock.set(5)
