"""The reader threads of threaded reads: results and errors come back on the loop, a job whose
caller gave up while it was queued is skipped, shutdown finishes what was queued."""

from __future__ import annotations

import asyncio
import threading

import pytest

from cryptomon.store.reader_threads import ReaderThreads


@pytest.mark.asyncio
async def test_results_and_errors_come_back_on_the_loop_from_the_named_threads() -> None:
    threads = ReaderThreads(2, "test-read")
    try:

        def name() -> str:
            return threading.current_thread().name

        def fail() -> None:
            raise ValueError("bad read")

        names = await asyncio.gather(*(threads.submit(name) for _ in range(20)))
        assert set(names) <= {"test-read_0", "test-read_1"}
        with pytest.raises(ValueError, match="bad read"):
            await threads.submit(fail)
        assert await threads.submit(lambda: 7) == 7  # the threads survive an error
    finally:
        threads.shutdown()


@pytest.mark.asyncio
async def test_a_job_cancelled_while_queued_does_not_run() -> None:
    threads = ReaderThreads(1, "test-read")
    release = threading.Event()
    ran: list[str] = []
    try:
        busy = threads.submit(release.wait)  # holds the only thread
        queued = threads.submit(lambda: ran.append("queued"))
        queued.cancel()
        release.set()
        assert await busy is True
        assert await threads.submit(lambda: "after") == "after"  # behind the skipped job
        assert ran == []
    finally:
        release.set()
        threads.shutdown()


@pytest.mark.asyncio
async def test_shutdown_finishes_the_queued_jobs_then_refuses_new_ones() -> None:
    threads = ReaderThreads(1, "test-read")
    done: list[int] = []
    futures = [threads.submit(lambda i=i: done.append(i)) for i in range(5)]
    await asyncio.to_thread(threads.shutdown)
    assert done == [0, 1, 2, 3, 4]
    await asyncio.gather(*futures)
    with pytest.raises(RuntimeError, match="shut down"):
        threads.submit(lambda: None)
