"""Time is injected (DESIGN.md 3.7): components take a ``Clock`` instead of calling ``time``.

``LiveClock`` reads the system clocks. ``ManualClock`` only moves when told to, for tests and
replay; its ``sleep`` wakes when ``advance``/``set`` moves time past the deadline.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Wall time (epoch seconds), monotonic time, and a sleep that honours both."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class LiveClock:
    """The system clocks."""

    __slots__ = ()

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that moves only through :meth:`advance` or :meth:`set`.

    ``monotonic()`` and ``time()`` move together. Sleepers are woken in deadline order when the
    clock passes their deadline; ``sleep(0)`` just yields to the loop.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._start = float(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now - self._start

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    @property
    def sleepers(self) -> int:
        """How many coroutines are waiting in :meth:`sleep` (for tests that wait on it)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def set(self, now: float) -> None:
        """Jump to ``now`` (never backwards) and wake every sleeper whose deadline passed."""
        if now < self._now:
            raise ValueError(f"ManualClock cannot go backwards: {now} < {self._now}")
        self._now = float(now)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.set(self._now + seconds)
