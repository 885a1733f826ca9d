"""Process and disk resources: CPU, RSS, open files and the free disk of ``data_dir``.

``ResourceMonitor`` samples every ``resources.sample_interval_s``; ``/metrics`` exports the
latest sample as gauges, ``GET /api/v1/system/resources`` returns it, and a ``Notice``
(``resource_threshold``, level warning) is published once when a configured threshold is
crossed, and once more (level info) when the value is back on the right side.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog

from cryptomon.clock import Clock
from cryptomon.config import ResourcesConfig
from cryptomon.events import Notice
from cryptomon.hub import Hub
from cryptomon.tasks import cancel_and_wait

log = structlog.get_logger()
_MB = 1024 * 1024
_PROBE_S = 0.25


def rss_bytes() -> float:
    """Resident set size now (``/proc/self/statm``), or the peak where /proc is absent."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return float(int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def open_files() -> float | None:
    """Open file descriptors of this process (``/proc/self/fd``); None where unknown."""
    try:
        return float(len(os.listdir("/proc/self/fd")))
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class Limit:
    """One threshold: the sample key, the bound, and whether the value must stay above it."""

    key: str
    bound: float
    floor: bool  # True: alert below the bound (free disk); False: alert above it

    def crossed(self, value: float) -> bool:
        return value < self.bound if self.floor else value > self.bound


_MIN_CPU_WINDOW_S = 1.0


class ResourceMonitor:
    """Samples the process and ``data_dir``'s disk; alerts on threshold crossings."""

    name = "resources"

    def __init__(self, *, config: ResourcesConfig, data_dir: Path, hub: Hub, clock: Clock) -> None:
        self.config = config
        self.data_dir = data_dir
        self.hub = hub
        self.clock = clock
        self.limits = _limits(config)
        self.crossed: set[str] = set()
        self.alerts = 0
        self._cpu: tuple[float, float] | None = None  # (monotonic, cpu seconds) of last sample
        self.latest: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._probe: asyncio.Task[None] | None = None
        self.loop_lag_s = 0.0  # worst lag seen since the last sample

    def sample(self) -> dict[str, Any]:
        """Measure now, remember it as ``latest``, check the thresholds; returns the sample."""
        times = os.times()
        cpu_s = times.user + times.system
        now = self.clock.monotonic()
        cpu_pct = float(self.latest.get("cpu_percent", 0.0))
        # os.times() ticks at 10 ms: a window much shorter than a second (the sample at start
        # and the loop's first one) would read one tick as hundreds of percent
        if self._cpu is None or now - self._cpu[0] >= _MIN_CPU_WINDOW_S:
            if self._cpu is not None:
                cpu_pct = 100.0 * (cpu_s - self._cpu[1]) / (now - self._cpu[0])
            self._cpu = (now, cpu_s)
        free: float | None = None
        total: float | None = None
        with contextlib.suppress(OSError):
            disk = shutil.disk_usage(self.data_dir)
            free, total = float(disk.free), float(disk.total)
        self.latest = {
            "ts": self.clock.time(),
            "cpu_seconds": round(cpu_s, 3),
            "cpu_percent": round(max(cpu_pct, 0.0), 2),
            "rss_bytes": rss_bytes(),
            "open_files": open_files(),
            "data_dir": str(self.data_dir),
            "disk_free_bytes": free,
            "disk_total_bytes": total,
            "thresholds": {lim.key: lim.bound for lim in self.limits},
            "crossed": sorted(self.crossed),
            "alerts": self.alerts,
            "loop_lag_s": round(self.loop_lag_s, 6),
        }
        self.loop_lag_s = 0.0
        self._check()
        self.latest["crossed"] = sorted(self.crossed)
        self.latest["alerts"] = self.alerts
        return self.latest

    def stats(self) -> dict[str, Any]:
        return self.latest or self.sample()

    def _check(self) -> None:
        for lim in self.limits:
            value = self.latest.get(lim.key)
            if value is None:
                continue
            shown = value / _MB if lim.key.endswith("_bytes") else value
            bound = lim.bound / _MB if lim.key.endswith("_bytes") else lim.bound
            if lim.crossed(value) and lim.key not in self.crossed:
                self.crossed.add(lim.key)
                self.alerts += 1
                side = "below" if lim.floor else "above"
                self._notice(lim.key, "warning", f"{lim.key} {shown:,.1f} is {side} {bound:,.1f}")
            elif not lim.crossed(value) and lim.key in self.crossed:
                self.crossed.discard(lim.key)
                self._notice(lim.key, "info", f"{lim.key} {shown:,.1f} is back within {bound:,.1f}")

    def _notice(self, resource: str, level: Literal["info", "warning"], message: str) -> None:
        now = self.clock.time()
        log.warning("resources.threshold", message=message, level=level)
        self.hub.publish(
            Notice(
                exchange="",
                symbol="",
                ts=now,
                ts_recv=now,
                code="resource_threshold",
                message=message,
                level=level,
                subject=resource,
            )
        )

    async def _run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception as exc:  # a failed sample must never stop the daemon
                log.warning("resources.sample_failed", error=repr(exc))
            await asyncio.sleep(self.config.sample_interval_s)

    async def _lag_probe(self) -> None:
        """How late the loop wakes a sleeper (every ``_PROBE_S``): a blocked loop shows here."""
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(_PROBE_S)
            self.loop_lag_s = max(self.loop_lag_s, loop.time() - before - _PROBE_S)

    async def start(self) -> None:
        self.sample()
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="resources")
        self._probe = loop.create_task(self._lag_probe(), name="resources.loop_lag")

    async def stop(self) -> None:
        for task in (self._task, self._probe):
            await cancel_and_wait(task)
        self._task = self._probe = None


def _limits(config: ResourcesConfig) -> list[Limit]:
    out = []
    if config.min_free_disk_mb > 0:
        out.append(Limit("disk_free_bytes", config.min_free_disk_mb * _MB, floor=True))
    if config.max_rss_mb > 0:
        out.append(Limit("rss_bytes", config.max_rss_mb * _MB, floor=False))
    if config.max_open_files > 0:
        out.append(Limit("open_files", float(config.max_open_files), floor=False))
    if config.max_cpu_percent > 0:
        out.append(Limit("cpu_percent", config.max_cpu_percent, floor=False))
    return out
