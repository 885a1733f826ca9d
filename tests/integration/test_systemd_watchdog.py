"""systemd ``Type=notify`` + watchdog: a notify socket of the test's own receives READY=1 and
WATCHDOG=1 pings from the event loop; a blocked loop stops the pings; the daemon as a process
says READY after starting and STOPPING on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cryptomon.systemd import SystemdNotifier
from tests.util import wait_until


class NotifySocket:
    """A datagram socket like systemd's, read by a thread that timestamps each message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.got: list[tuple[float, str]] = []
        self._run = True
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while self._run:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.got.append((time.monotonic(), data.decode()))

    def count(self, message: str) -> int:
        return sum(1 for _, m in self.got if message in m.split("\n"))

    def close(self) -> None:
        self._run = False
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    ns = NotifySocket(tmp_path / "notify")
    try:
        yield ns
    finally:
        ns.close()


def test_no_notify_socket_means_no_component() -> None:
    """Outside systemd (no NOTIFY_SOCKET) there is nothing to notify; WATCHDOG_USEC for
    another process is ignored."""
    assert SystemdNotifier.from_environ({}) is None
    other = SystemdNotifier.from_environ(
        {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}
    )
    assert other is not None
    assert other.watchdog_s is None
    mine = SystemdNotifier.from_environ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "4000000"})
    assert mine is not None
    assert mine.watchdog_s == 4.0


@pytest.mark.asyncio
async def test_pings_come_from_the_loop_and_stop_while_it_is_blocked(
    notify_socket: NotifySocket,
) -> None:
    """READY=1 on start, WATCHDOG=1 every half WatchdogSec; none while the loop is blocked,
    again once it runs; STOPPING=1 on stop."""
    env = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "200000"}
    notifier = SystemdNotifier.from_environ(env)
    assert notifier is not None
    await notifier.start()
    try:
        await wait_until(lambda: notify_socket.count("READY=1") == 1, message="READY=1")
        await wait_until(lambda: notify_socket.count("WATCHDOG=1") >= 3, message="pings")
        blocked_from = time.monotonic()
        # The fault under test: a synchronous call blocks the event loop for 1 s.
        time.sleep(1.0)  # noqa: ASYNC251
        blocked_to = time.monotonic()
        pings = notify_socket.count("WATCHDOG=1")
        await wait_until(lambda: notify_socket.count("WATCHDOG=1") >= pings + 2, message="again")
    finally:
        await notifier.stop()
    await wait_until(lambda: notify_socket.count("STOPPING=1") == 1, message="STOPPING=1")
    during = [t for t, m in notify_socket.got if blocked_from + 0.05 < t < blocked_to]
    assert during == []


@pytest.mark.asyncio
async def test_daemon_notifies_ready_pings_and_stopping(
    notify_socket: NotifySocket, tmp_path: Path
) -> None:
    """``crypto-monitor run`` under a notify socket: READY=1 after startup, watchdog pings,
    STOPPING=1 on SIGTERM and exit 0."""
    config = tmp_path / "config.yaml"
    config.write_text(
        f"exchanges: []\ndatabase: {{url: 'sqlite+aiosqlite:///{tmp_path / 'd.db'}'}}\n"
        "api: {enabled: false}\n"
    )
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify_socket.path),
        "WATCHDOG_USEC": "400000",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cryptomon",
        "--config",
        str(config),
        "run",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_until(lambda: notify_socket.count("READY=1") == 1, timeout=60, message="READY")
        await wait_until(lambda: notify_socket.count("WATCHDOG=1") >= 2, message="pings")
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert notify_socket.count("STOPPING=1") == 1
