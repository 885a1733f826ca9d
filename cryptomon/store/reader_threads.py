"""The threads :meth:`Database.read <cryptomon.store.db.Database.read>` runs reads on, and the
deadline of a PostgreSQL read.

:class:`ReaderThreads` is a fixed set of threads taking jobs from one queue, lighter than a
``ThreadPoolExecutor`` behind ``run_in_executor`` (no ``concurrent.futures.Future`` with its
condition and locks, no chaining of two futures): the caller awaits a plain asyncio future,
and the results of the reads finished while the loop was busy are handed back by one
``call_soon_threadsafe`` (a wake-up of the loop is a write to its self-pipe, a system call
that gives up the GIL and has to take it back from the busy threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import socket
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

T = TypeVar("T")

_Job = tuple[Callable[[], Any], "asyncio.Future[Any]", asyncio.AbstractEventLoop]


class _Outcome(Generic[T]):
    __slots__ = ("error", "future", "value")

    def __init__(
        self, future: asyncio.Future[T], value: T | None, error: BaseException | None
    ) -> None:
        self.future = future
        self.value = value
        self.error = error


class ReaderThreads:
    """``size`` threads named ``{name}_{i}`` running the callables :meth:`submit` is given,
    one at a time each, in the order submitted."""

    def __init__(self, size: int, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._done: dict[asyncio.AbstractEventLoop, list[_Outcome[Any]]] = {}
        self._busy = 0
        self._threads = [
            threading.Thread(target=self._serve, name=f"{name}_{i}", daemon=True)
            for i in range(size)
        ]
        for thread in self._threads:
            thread.start()
        self._open = True

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """``fn()`` on one of the threads; its result (or exception) comes back in the
        future, on the running loop. A future cancelled before its job starts skips it."""
        if not self._open:
            raise RuntimeError("the reader threads are shut down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((fn, future, loop))
        return future

    @property
    def busy(self) -> int:
        """How many threads are running a job now."""
        return self._busy

    def shutdown(self) -> None:
        """Let the threads finish the jobs queued, then end them (waits for them)."""
        if not self._open:
            return
        self._open = False
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, future, loop = job
            if future.done():  # cancelled while queued (its caller gave up)
                continue
            with self._lock:
                self._busy += 1
            try:
                outcome = _Outcome(future, fn(), None)
            except BaseException as exc:
                outcome = _Outcome(future, None, exc)
            with self._lock:
                self._busy -= 1
                waiting = self._done.setdefault(loop, [])
                waiting.append(outcome)
                wake = len(waiting) == 1  # else a wake-up of this loop is on its way
            if wake:
                with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                    loop.call_soon_threadsafe(self._settle, loop)
            del job, fn, future, outcome

    def _settle(self, loop: asyncio.AbstractEventLoop) -> None:
        """On ``loop``: every outcome that finished since the last wake-up."""
        with self._lock:
            outcomes = self._done.pop(loop, [])
        for outcome in outcomes:
            future = outcome.future
            if future.done():  # the caller gave up (timeout, cancellation)
                continue
            if outcome.error is not None:
                future.set_exception(outcome.error)
            else:
                future.set_result(outcome.value)


_current = threading.local()  # the ReadGuard of the read a thread is running, if any


class ReadGuard:
    """The deadline of one threaded PostgreSQL read, shared by the loop and the thread: once
    expired, a read that has not started yet does not start, and one that holds a connection
    has its socket shut down (the blocked driver call then fails). The thread enters it
    (``with guard:``) around the checkout, so the pool's checkout event can attach the
    connection (:func:`guard_checkout`) before pinging it."""

    __slots__ = ("_conn", "_cut", "_expired", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: Any = None
        self._expired = False
        self._cut = False  # the connection's socket was shut down

    def __enter__(self) -> ReadGuard:
        _current.guard = self
        return self

    def __exit__(self, *_: object) -> None:
        _current.guard = None
        self.detach()

    def attach_raw(self, raw: Any) -> bool:
        """The driver connection the read uses from now on; False once expired."""
        with self._lock:
            if self._expired:
                return False
            self._conn = raw
            return True

    def attach(self, conn: Connection) -> None:
        """``conn`` is the read's connection (TimeoutError once expired)."""
        if not self.attach_raw(conn.connection.dbapi_connection):
            raise TimeoutError("the read's deadline passed before it started")

    def detach(self) -> bool:
        """The read no longer uses its connection (call before it goes back to the pool);
        True when its socket was shut down (the caller invalidates it, not to be reused)."""
        with self._lock:
            self._conn = None
            return self._cut

    @property
    def expired(self) -> bool:
        return self._expired

    def expire(self) -> None:
        with self._lock:
            self._expired = True
            raw, self._conn = self._conn, None
            if raw is not None:
                self._cut = True
                shut_down(raw)


def guard_checkout(raw: Any) -> bool:
    """For the pool's checkout event, before a ping: the driver connection a guarded read
    (the thread's current :class:`ReadGuard`) is about to use; False when that read's
    deadline has passed (no ping then: the read will not run)."""
    guard = getattr(_current, "guard", None)
    return guard is None or guard.attach_raw(raw)


def guard_connect() -> None:
    """For the engine's ``do_connect`` event: a guarded read whose deadline has passed opens
    no new connection (TimeoutError). The pool reconnects when a checkout's ping fails, and
    the ping of a read cut at its deadline does fail: without this the thread would then
    block in a new connection attempt (``connect_timeout_s``) to the server that stopped
    answering, busy long after its caller has been told."""
    guard = getattr(_current, "guard", None)
    if guard is not None and guard.expired:
        raise TimeoutError("the read's deadline passed: no new connection for it")


def shut_down(raw: Any) -> None:
    """Shut down the socket of a psycopg connection (not closed: its owner thread does that
    when the blocked call fails)."""
    with contextlib.suppress(Exception):
        fd = raw.pgconn.socket
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
