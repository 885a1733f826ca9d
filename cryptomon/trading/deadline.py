"""A timeout armed only once the awaited call has to wait.

:func:`within` awaits a coroutine as ``async with asyncio.timeout(seconds)`` around it would,
except that the timer is armed at the coroutine's first wait, not before its first step. A
call that finishes without waiting (the paper venue answers a placement at once) then costs
no timer: ``asyncio.timeout`` schedules a loop timer and cancels it for every call, and the
cancelled timers stay in the loop's heap until their time (10 s of real time for an order),
which the loop then sweeps. A call that waits (a live venue's request) runs the rest of its
way under the same timeout: cancelled when it expires, raising ``TimeoutError``. Only the
synchronous work before its first wait (building and signing a request) is outside it, and a
timeout could not interrupt that anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _Within(Generic[T]):
    """The awaitable :func:`within` returns (see the module docstring)."""

    __slots__ = ("_coro", "_seconds")

    def __init__(self, coro: Coroutine[Any, Any, T], seconds: float) -> None:
        self._coro = coro
        self._seconds = seconds

    def __await__(self) -> Generator[Any, Any, T]:
        coro = self._coro
        try:
            first = coro.send(None)  # its first step, in the awaiting task
        except StopIteration as done:  # finished without waiting: no timer needed
            return done.value
        result: T = yield from _rest(coro, first, self._seconds).__await__()
        return result


async def _rest(coro: Coroutine[Any, Any, Any], first: Any, seconds: float) -> Any:
    async with asyncio.timeout(seconds):
        return await _Resumed(coro, first)


class _Resumed:
    """Hands the task what ``coro`` waits on (``first``, then each later wait) and passes
    back what the task sends or throws (a result, a cancellation), as ``await coro`` would
    have after its first step."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, waiting = self._coro, self._first
        while True:
            try:
                sent = yield waiting
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancellation (the timeout's) goes in
                try:
                    waiting = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    waiting = coro.send(sent)
                except StopIteration as done:
                    return done.value


def within(coro: Coroutine[Any, Any, T], seconds: float) -> _Within[T]:
    """Await ``coro`` under ``asyncio.timeout(seconds)`` armed at its first wait (see the
    module docstring): ``await within(broker.place_order(intent), 10.0)``."""
    return _Within(coro, seconds)
