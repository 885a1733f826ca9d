"""The daemon's lifecycle (DESIGN.md section 1): ``App`` starts components in dependency
order, stops them in reverse, and turns SIGTERM/SIGINT into a graceful stop within
``shutdown_timeout_s``; SIGHUP re-reads the config file through its reloader.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import structlog

from cryptomon import __version__
from cryptomon.app.services import Services
from cryptomon.clock import Clock
from cryptomon.errors import ConfigError, CryptomonError, OperatorError, Problem
from cryptomon.events import Notice
from cryptomon.hub import Hub

if TYPE_CHECKING:
    from cryptomon.reload import Reloader

log = structlog.get_logger()


@runtime_checkable
class Component(Protocol):
    """A long-lived part of the daemon."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class StartupError(CryptomonError):
    """A component failed to start; the ones already started were stopped again."""

    def __init__(self, component: str, cause: BaseException) -> None:
        self.component = component
        self.cause = cause
        super().__init__(f"{component} failed to start: {cause}")


LOCK_FILE = "cryptomon.lock"


class InstanceLock:
    """One live trader per ``data_dir``: an exclusive ``flock`` on ``data_dir/cryptomon.lock``
    taken before any other component starts, held until the daemon stops (the kernel drops
    it when the process dies, a ``kill -9`` too). A second daemon on the same config (a
    manual ``run`` beside the service) would replay the journal, reconcile with the venue and
    cancel as orphans the orders the first placed since its replay, before any later check
    (the API's port) stopped it: it fails here, having sent nothing. The scale-out brains
    share the account through the bus's trading lease instead (not built with this)."""

    name = "instance-lock"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._fd: int | None = None

    async def start(self) -> None:
        import fcntl
        import os

        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            expected = (
                f"a data_dir no other live trader uses: another crypto-monitor (pid {holder}) "
                "trades from it; two would send and cancel orders on the same account"
            )
            raise ConfigError([Problem("data_dir", str(self.data_dir), expected)]) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    async def stop(self) -> None:
        import os

        if self._fd is not None:
            os.close(self._fd)  # releases the lock
            self._fd = None


class HubComponent:
    """Starts the hub's queued subscribers first and drains what is left last."""

    name = "hub"

    def __init__(self, *, hub: Hub, drain_timeout_s: float) -> None:
        self.hub = hub
        self.drain_timeout_s = drain_timeout_s

    async def start(self) -> None:
        await self.hub.start()

    async def stop(self) -> None:
        await self.hub.stop(self.drain_timeout_s)


GIL_SWITCH_INTERVAL_S = 0.0005
"""The interpreter's thread switch interval while the daemon runs (Python's default: 5 ms).
The store's SQLite writes and reads run in threads, and the stdlib driver releases the GIL
for every row it steps; while the event loop is busy (a full-speed replay, a burst of
market data) such a thread waits up to the whole interval to take the GIL back, for every
row: ~200 rows/s. With 0.5 ms the writer kept up in the 500-market memory benchmark (a
10,000-row batch in 4-6 s instead of 35-55 s; the durable queue peaked at 6 rows instead
of 12.6k). README, Performance: Memory."""


def freeze_startup_objects() -> bool:
    """Leave every object that exists once the daemon has started (modules, compiled
    kernels, ccxt's and SQLAlchemy's tables, the config: ~250k objects) out of the garbage
    collector's passes (:func:`gc.freeze`). A pass over the oldest generation otherwise
    walks all of them: 50-100 ms with the event loop stopped, several times in the first
    minutes of a run, which is a latency spike for every market. Frozen objects are still
    freed by reference counting; only a reference cycle among them would wait for
    :func:`gc.unfreeze`. False (and nothing done) when the process froze objects itself."""
    if gc.get_freeze_count():
        return False
    gc.freeze()
    return True


class App:
    """Ordered components with start/rollback/stop and signal-driven shutdown."""

    def __init__(
        self,
        components: list[Component],
        *,
        hub: Hub,
        clock: Clock,
        shutdown_timeout_s: float = 10.0,
        services: Services | None = None,
    ) -> None:
        names = [c.name for c in components]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"component names must be unique: {sorted(dup)}")
        self.components = components
        self.hub = hub
        self.clock = clock
        self.shutdown_timeout_s = shutdown_timeout_s
        self.services = services or Services()
        self.started: list[Component] = []
        self.started_at: float | None = None
        self._stop_requested = asyncio.Event()
        self.reloader: Reloader | None = None  # set by `run`: SIGHUP re-reads the config file
        self._reloading: asyncio.Task[bool] | None = None
        self._switch_interval: float | None = None  # the interpreter's, restored by stop
        self._froze = False  # startup objects frozen out of the GC's passes, unfrozen by stop
        self.start_failure: str | None = None  # why `run` could not start (for the CLI's line)

    async def start(self) -> None:
        """Start every component in order; on a failure stop the started ones and raise.
        The interpreter's thread switch interval is :data:`GIL_SWITCH_INTERVAL_S` until
        :meth:`stop`, and the objects that exist once every component has started are left
        out of the garbage collector's passes (:func:`freeze_startup_objects`) until then."""
        if self._switch_interval is None:
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        for comp in self.components:
            log.debug("component.starting", component=comp.name)
            try:
                await comp.start()
            except Exception as exc:
                log.error("component.start_failed", component=comp.name, error=str(exc))
                await self.stop()
                raise StartupError(comp.name, exc) from exc
            self.started.append(comp)
        self.started_at = self.clock.time()
        if not self._froze:
            self._froze = freeze_startup_objects()
        self.hub.publish(_notice(self.clock, "daemon_start", f"cryptomon {__version__} running"))

    async def stop(self) -> bool:
        """Stop started components in reverse order within ``shutdown_timeout_s`` in total.
        A component's ``stop_reserve`` (a share of that time) is kept for it: the ones stopped
        before it cannot use it up. One with a ``stop_budget_s`` attribute is told its time
        before its ``stop()``, so it can finish within it.

        Returns False when a component failed to stop or the time ran out.
        """
        if self.started_at is not None:
            self.started_at = None
            self.hub.publish(_notice(self.clock, "daemon_stop", "cryptomon stopping"))
        deadline = time.monotonic() + self.shutdown_timeout_s
        clean = True
        while self.started:
            comp = self.started.pop()
            # what the components stopped after this one reserve (the store writer) is not
            # this one's to take
            reserved = self.shutdown_timeout_s * min(
                1.0, sum(getattr(c, "stop_reserve", 0.0) for c in self.started)
            )
            left = max(0.05, deadline - time.monotonic() - reserved)
            if hasattr(comp, "stop_budget_s"):
                comp.stop_budget_s = left
            try:
                await asyncio.wait_for(comp.stop(), timeout=left)
                log.debug("component.stopped", component=comp.name)
            except TimeoutError:
                clean = False
                log.error("component.stop_timeout", component=comp.name)
            except Exception as exc:
                clean = False
                log.error("component.stop_failed", component=comp.name, error=str(exc))
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None
        if self._froze:
            gc.unfreeze()
            self._froze = False
        return clean

    def request_stop(self) -> None:
        self._stop_requested.set()

    async def run(self, *, until: Callable[[], Any] | None = None) -> int:
        """Start, wait for SIGTERM/SIGINT (or ``until`` to finish), stop. Returns the exit code."""
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
        if hasattr(signal, "SIGHUP"):  # a reload with `run`; logged as not done otherwise
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGHUP, self._on_reload)
                installed.append(signal.SIGHUP)
        try:
            try:
                if not await self._start_unless_stopped():
                    await self._cancel_reload()
                    clean = await self.stop()
                    log.info("daemon.stopped", clean=clean)
                    return 0 if clean else 1
            except StartupError as exc:
                log.error("daemon.start_failed", component=exc.component, error=str(exc.cause))
                self.start_failure = f"{exc.component}: {exc.cause}"
                if isinstance(exc.cause, ConfigError):
                    raise exc.cause from None  # a config problem found at start: exit 2
                if isinstance(exc.cause, OperatorError):
                    # the operator must act (the message says how): exit 2 as for a config
                    # error, which the systemd unit does not restart (RestartPreventExitStatus)
                    return 2
                return 1
            log.info(
                "daemon.running",
                version=__version__,
                components=[c.name for c in self.started],
            )
            waiter = asyncio.ensure_future(self._stop_requested.wait())
            waits: set[asyncio.Future[Any]] = {waiter}
            if until is not None:
                waits.add(asyncio.ensure_future(until()))
            done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for p in pending:
                p.cancel()
            for d in done:
                if d is not waiter and d.exception() is not None:
                    log.error("daemon.task_failed", error=repr(d.exception()))
            log.info("daemon.stopping", timeout_s=self.shutdown_timeout_s)
            await self._cancel_reload()
            clean = await self.stop()
            log.info("daemon.stopped", clean=clean)
            return 0 if clean else 1
        finally:
            for sig in installed:
                # a second Ctrl-C (or SIGTERM, or a SIGHUP) while the process finishes its
                # exit (a summary, the loop's close) is told, not a KeyboardInterrupt or the
                # signal's default action that ends it after a clean stop. Replaced in
                # place: removing it first puts Python's default handler back for an
                # instant, and a Ctrl-C landing there raised KeyboardInterrupt (exit 130).
                # `run_daemon` takes these off.
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, _signal_while_exiting, sig)

    async def _start_unless_stopped(self) -> bool:
        """:meth:`start`, cut short by SIGTERM/SIGINT: a component can take its whole
        timeout to start (a database that does not answer, a venue or NATS being slow), and
        a stop asked meanwhile must not wait for it (systemd's ``TimeoutStopSec`` would end
        in SIGKILL). The component being started is cancelled (a migration in progress rolls
        back: it is one transaction); the ones already started are then stopped by the
        caller. False when the start was cut short."""
        starting = asyncio.ensure_future(self.start())
        stop = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait({starting, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if starting.done():
            starting.result()  # StartupError
            return True
        pending = [c.name for c in self.components if c not in self.started]
        log.warning(
            "daemon.start_interrupted",
            component=pending[0] if pending else None,
            started=[c.name for c in self.started],
        )
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, StartupError):
            await starting
        return False

    async def _cancel_reload(self) -> None:
        """A reload still running (a feed being replaced) ends before the components stop:
        it would otherwise start a feed after the feed manager has stopped."""
        task = self._reloading
        if task is not None and not task.done():
            log.warning("config.reload_cancelled", reason="the daemon is stopping")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _on_reload(self) -> None:
        log.info("daemon.signal", signal="SIGHUP")
        if self.reloader is None:  # demo, replay: their config is not a file to read again
            log.warning(
                "daemon.reload_unsupported",
                hint="a config reload (SIGHUP) is done by `crypto-monitor run` only; "
                "this command goes on with the config it started with",
            )
            return
        if self._reloading is not None and not self._reloading.done():
            return
        self._reloading = asyncio.get_running_loop().create_task(
            self.reloader.reload(), name="config-reload"
        )

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("daemon.signal", signal=sig.name)
        self._stop_requested.set()


def _signal_while_exiting(sig: signal.Signals) -> None:
    log.info("daemon.signal_while_exiting", signal=sig.name)


def _notice(clock: Clock, code: str, message: str) -> Notice:
    now = clock.time()
    return Notice(exchange="", symbol="", ts=now, ts_recv=now, code=code, message=message)
