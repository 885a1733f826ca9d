"""systemd service notifications (``Type=notify`` + ``WatchdogSec=``) over ``NOTIFY_SOCKET``.

The protocol is one datagram per message to the AF_UNIX socket named by ``$NOTIFY_SOCKET``
(a path, or ``@name`` for the abstract namespace): ``READY=1`` once every component has
started, ``WATCHDOG=1`` pings, ``STOPPING=1`` when a stop begins. With ``WatchdogSec=`` set,
systemd passes ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``); the pings are sent from a task on
the daemon's own event loop every half of that, so a blocked loop stops them and systemd
restarts the service. Without ``$NOTIFY_SOCKET`` (not under systemd) there is no component.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

import structlog

from cryptomon.tasks import cancel_and_wait

log = structlog.get_logger()


def _address(value: str) -> str:
    """``@name`` is a Linux abstract socket (leading NUL); anything else is a path."""
    return "\0" + value[1:] if value.startswith("@") else value


class SystemdNotifier:
    """A component sending READY/WATCHDOG/STOPPING to systemd; place it last in the start order."""

    name = "systemd"

    def __init__(self, *, socket_path: str, watchdog_s: float | None) -> None:
        self.socket_path = socket_path
        self.watchdog_s = watchdog_s
        self.sent = 0
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._failed = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier | None:
        """The notifier systemd asks for through the environment; None when not asked."""
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET") or None
        if path is None:
            return None
        watchdog_s = None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            watchdog_s = int(usec) / 1_000_000
        return cls(socket_path=path, watchdog_s=watchdog_s)

    def notify(self, message: str) -> bool:
        """Send one message; a failure is logged once and never raised."""
        if self._sock is None:
            return False
        try:
            self._sock.sendto(message.encode(), _address(self.socket_path))
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("systemd.notify_failed", socket=self.socket_path, error=str(exc))
            return False
        self.sent += 1
        return True

    async def start(self) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.setblocking(False)
        self.notify("READY=1\nSTATUS=running")
        if self.watchdog_s is not None:
            self._task = asyncio.get_running_loop().create_task(
                self._ping(self.watchdog_s / 2), name="systemd-watchdog"
            )
        log.info("systemd.ready", watchdog_s=self.watchdog_s)

    async def _ping(self, every_s: float) -> None:
        """Real time on purpose: the watchdog is about this loop answering, not about the
        injected clock."""
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(every_s)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        if self._sock is not None:
            self.notify("STOPPING=1")
            self._sock.close()
            self._sock = None
