"""Helpers for tests: wait on conditions, never sleep for fixed durations."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 10.0,
    interval: float = 0.005,
    message: str = "condition",
) -> None:
    """Poll ``predicate`` (sync or async) until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result) or isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


class LoggedProcess:
    """A ``crypto-monitor`` subprocess run with JSON logs, whose log lines (stderr) a test
    waits on: :meth:`wait_for` reads them until an event, keeping every line read in
    :attr:`seen`; leaving the ``with`` block kills the process if it still runs."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            cwd=cwd,
        )
        self.seen: list[str] = []

    def wait_for(self, event: str, *, timeout: float = 90.0) -> str:
        """The first log line of ``event`` from here on; fails with the lines read when the
        process ends or ``timeout`` passes first."""
        stderr = self.proc.stderr
        assert stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = stderr.readline()
            if not line:
                break
            self.seen.append(line)
            if f'"{event}"' in line:
                return line
        raise AssertionError(f"{event} not logged (exit {self.proc.poll()}):\n" + self.log())

    def log(self) -> str:
        """Every log line read so far."""
        return "".join(self.seen)

    def __enter__(self) -> LoggedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
