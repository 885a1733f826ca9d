"""The daemon's heartbeat file in ``data_dir``: its health signal when no API answers.

``crypto-monitor healthcheck`` (the Docker image's ``HEALTHCHECK``) probes ``/health``
when the API (or a collector's HTTP) listens on a known port. With ``api.enabled: false``
(or ``api.port: 0``, a port nobody can know in advance) the daemon instead rewrites
``data_dir/HEARTBEAT_FILE`` every :data:`HEARTBEAT_EVERY_S` seconds from a task on its
own event loop, like systemd's watchdog pings: a blocked loop stops it, so the file ages.
The file holds the wall-clock time of the beat and the daemon's pid; it is removed at stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from cryptomon.config import ApiConfig
from cryptomon.tasks import cancel_and_wait

log = structlog.get_logger()

HEARTBEAT_FILE = ".crypto-monitor.heartbeat"
HEARTBEAT_EVERY_S = 5.0
HEARTBEAT_MAX_AGE_S = 30.0
"""How old a heartbeat may be and still count as healthy (``healthcheck --max-age``)."""


def api_probed(api: ApiConfig) -> bool:
    """True when a health check can probe ``/health`` (the API or a collector's HTTP on a
    fixed port); otherwise the daemon writes the heartbeat file."""
    return api.enabled and api.port != 0


class Heartbeat:
    """A component rewriting ``data_dir/HEARTBEAT_FILE`` from the event loop; place it
    last in the start order (it beats once everything else has started)."""

    name = "heartbeat"

    def __init__(self, data_dir: Path, *, every_s: float = HEARTBEAT_EVERY_S) -> None:
        self.path = data_dir / HEARTBEAT_FILE
        self.every_s = every_s
        self.beats = 0
        self._task: asyncio.Task[None] | None = None
        self._failed = False

    def beat(self) -> bool:
        """Write the file (atomically: a reader never sees half of it); a failure is logged
        once and never raised (the daemon goes on; the health check reports it)."""
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(f"{time.time():.3f} {os.getpid()}\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("heartbeat.write_failed", path=str(self.path), error=str(exc))
            return False
        self.beats += 1
        return True

    async def start(self) -> None:
        self.beat()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="heartbeat")
        log.debug("heartbeat.started", path=str(self.path), every_s=self.every_s)

    async def _run(self) -> None:
        """Real time on purpose: the beat is about this loop answering, not the injected
        clock."""
        while True:
            await asyncio.sleep(self.every_s)
            self.beat()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        with contextlib.suppress(OSError):
            self.path.unlink()


@dataclass(frozen=True, slots=True)
class Beat:
    """What a health check read from the heartbeat file."""

    age_s: float
    pid: int | None


def read_beat(data_dir: Path, *, now: float | None = None) -> Beat | None:
    """The last beat written in ``data_dir`` (None: no file). Raises ValueError for a file
    that is not a heartbeat."""
    path = data_dir / HEARTBEAT_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    parts = text.split()
    if not parts:
        raise ValueError(f"{path} is empty")
    try:
        written = float(parts[0])
    except ValueError:
        raise ValueError(f"{path} does not start with a time: {text[:40]!r}") from None
    pid = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return Beat(age_s=max(0.0, (time.time() if now is None else now) - written), pid=pid)
