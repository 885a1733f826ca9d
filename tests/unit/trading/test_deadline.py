"""deadline.within: a timeout armed at the awaited call's first wait (a call that answers at
once, like a paper placement, schedules no timer), otherwise asyncio.timeout's behaviour."""

from __future__ import annotations

import asyncio

import pytest

from cryptomon.trading.deadline import within
from tests.unit.trading.helpers import EX, SYM, book, paper_engine, trading_config
from tests.unit.trading.test_engine_orders import signal


def _timers(loop: asyncio.AbstractEventLoop) -> list[asyncio.TimerHandle]:
    return list(getattr(loop, "_scheduled", []))


@pytest.mark.asyncio
async def test_a_call_that_answers_at_once_schedules_no_timer() -> None:
    async def answer() -> int:
        return 7

    loop = asyncio.get_running_loop()
    before = _timers(loop)
    assert await within(answer(), 10.0) == 7
    assert [h for h in _timers(loop) if h not in before] == []


@pytest.mark.asyncio
async def test_a_call_that_waits_returns_its_result_and_leaves_no_live_timer() -> None:
    async def slow() -> str:
        await asyncio.sleep(0)  # a bare yield
        await asyncio.sleep(0.01)  # a future
        return "done"

    loop = asyncio.get_running_loop()
    before = _timers(loop)
    assert await within(slow(), 10.0) == "done"
    assert all(h.cancelled() for h in _timers(loop) if h not in before)


@pytest.mark.asyncio
async def test_a_call_past_its_timeout_is_cancelled_and_raises_timeout_error() -> None:
    seen: list[str] = []

    async def hang() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise
        finally:
            seen.append("cleaned up")

    with pytest.raises(TimeoutError):
        await within(hang(), 0.02)
    assert seen == ["cancelled", "cleaned up"]
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0  # the timeout's own cancellation was taken back


@pytest.mark.asyncio
async def test_errors_before_and_after_the_first_wait_propagate() -> None:
    async def refuse() -> None:
        raise ValueError("refused at once")

    async def fail_later() -> None:
        await asyncio.sleep(0)
        raise KeyError("failed after a wait")

    with pytest.raises(ValueError, match="refused at once"):
        await within(refuse(), 1.0)
    with pytest.raises(KeyError, match="failed after a wait"):
        await within(fail_later(), 1.0)


@pytest.mark.asyncio
async def test_an_outer_cancellation_stays_a_cancellation() -> None:
    started = asyncio.Event()

    async def wait_long() -> None:
        started.set()
        await asyncio.sleep(30)

    async def caller() -> None:
        await within(wait_long(), 10.0)

    task = asyncio.create_task(caller())
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.asyncio
async def test_a_paper_placement_schedules_no_loop_timer() -> None:
    """The paper venue answers a placement at once: the order, its fill and its protection
    as before, and no timer left in the loop's heap for it (asyncio.timeout left one per
    order, cancelled, until its 10 s of real time passed)."""
    engine, _paper, hub, _market, clock = paper_engine(config=trading_config())
    book(hub, clock, bid=100.0, ask=100.2, size=10.0)
    await engine.start()
    loop = asyncio.get_running_loop()
    before = _timers(loop)
    record = await engine.handle_signal(signal())
    assert record is not None
    assert str(record.state) == "filled"
    assert engine.portfolio.amount(EX, SYM) == record.intent.amount
    assert (EX, SYM) in engine.protection.protections
    assert [h for h in _timers(loop) if h not in before] == []
    await engine.stop()
