"""What the subcommands share: exit codes, settings from the common options, logging setup,
the event loop runner and the config-error report.

Not a subcommand: it has no ``register`` and the CLI's discovery skips it.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import signal
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from cryptomon.config import DatabaseConfig, Settings, load_settings
from cryptomon.errors import ConfigError

if TYPE_CHECKING:
    from cryptomon.store.db import Database

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def settings_from_args(args: argparse.Namespace, *, offline: bool = False) -> Settings:
    """Load the config named by ``--config`` (or defaults) and apply logging overrides;
    ``offline``: for a command that never reaches the venue (no live keys needed)."""
    return with_logging(
        load_settings(getattr(args, "config", None), offline=offline),
        level=getattr(args, "log_level", None),
        fmt=getattr(args, "log_format", None),
    )


def with_logging(
    settings: Settings, *, level: str | None = None, fmt: str | None = None
) -> Settings:
    """``settings`` with the logging level and/or format replaced (sections are frozen)."""
    update = {k: v for k, v in (("level", level), ("format", fmt)) if v}
    if not update:
        return settings
    return settings.model_copy(update={"logging": settings.logging.model_copy(update=update)})


def setup_logging(settings: Settings) -> None:
    """Configure structlog from the ``logging`` section, with the config's secrets redacted."""
    from cryptomon import log

    log.configure(
        level=settings.logging.level,
        fmt=settings.logging.format,
        secrets=settings.secret_values(),
    )


def configured(args: argparse.Namespace, *, offline: bool = False) -> Settings:
    """The settings of the common options, with logging set up from them (``offline``: see
    :func:`settings_from_args`)."""
    settings = settings_from_args(args, offline=offline)
    setup_logging(settings)
    return settings


def add_command(
    subparsers: Any, parent: argparse.ArgumentParser, name: str, *, help: str, handler: Any
) -> argparse.ArgumentParser:
    """A subcommand parser with the common options, running ``handler(args)``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, parents=[parent], help=help)
    parser.set_defaults(handler=handler)
    return parser


async def open_database(
    config: DatabaseConfig, command: str, *, read_only: bool = False, check_schema: bool = True
) -> Database | None:
    """The started database, or None after saying on stderr why it could not start."""
    from cryptomon.errors import CryptomonError
    from cryptomon.store.db import Database

    db = Database(config, read_only=read_only, check_schema=check_schema)
    try:
        await db.start()
    except CryptomonError as exc:
        sys.stderr.write(f"crypto-monitor {command}: {exc}\n")
        return None
    return db


def run_async(main: Coroutine[Any, Any, int]) -> int:
    """Run a coroutine on uvloop when available, else the default loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return asyncio.run(main)
    return uvloop.run(main)


def ignore_sighup_until_running(args: argparse.Namespace) -> None:
    """A SIGHUP (a reload) asked while the daemon is still being built (imports, components)
    is not its end: its default action ended the process without a line (exit 129). The
    daemon's event loop takes SIGHUP over as it runs (`run` reloads, the other commands log
    that they do not); one asked before then is ignored. Only for the process's own command
    line (:func:`process_exits_after`): a host program keeps its handler."""
    if process_exits_after(args) and hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)


EXIT_GRACE_S = 2.0
"""How long the daemon's exit waits for worker threads still busy once it has stopped."""


def process_exits_after(args: argparse.Namespace) -> bool:
    """True when the command is the process's own command line (``cli.main`` without
    ``argv``): the interpreter exits once it returns."""
    return bool(getattr(args, "process_exits_after", False))


def run_daemon(
    main: Coroutine[Any, Any, int], *, grace_s: float = EXIT_GRACE_S, exiting: bool = False
) -> int:
    """:func:`run_async` for the daemon, whose exit must follow its stop: a worker thread
    still blocked in a call that cannot be cancelled (a venue's symbol list through a proxy
    that never answers, a DNS lookup) is waited for ``grace_s``, then left behind with the
    process (``os._exit`` after the logs are flushed). ``asyncio.run`` and the interpreter's
    exit would wait for it: up to the library's own timeout, or until systemd's SIGKILL.

    ``exiting`` (:func:`process_exits_after`): SIGINT and SIGTERM stay ignored once the
    daemon has stopped, through the interpreter's finalization (about a second, numba's
    modules freed), which leaves an ignored signal alone; restored to Python's handlers, a
    second Ctrl-C there ended the process by the signal (exit 130 after a clean stop).
    Otherwise (a host program, a test) the previous handlers are put back."""
    loop: asyncio.AbstractEventLoop
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        loop = asyncio.new_event_loop()
    executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="cryptomon-worker")
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    previous = {sig: signal.getsignal(sig) for sig in _EXIT_SIGNALS}
    try:
        try:
            code = loop.run_until_complete(main)
        finally:
            try:
                _cancel_tasks(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                # the daemon has stopped: a second Ctrl-C or SIGTERM during the rest of the
                # exit (the loop's close, the worker threads' grace) must not end the
                # process by the signal after a clean stop
                ignore_exit_signals(loop)
                asyncio.set_event_loop(None)
                loop.close()
        return _join_workers(executor, code, grace_s)
    finally:
        for sig, handler in () if exiting else previous.items():
            if handler is not None:
                signal.signal(sig, handler)


_EXIT_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    *((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()),
)


def ignore_exit_signals(loop: asyncio.AbstractEventLoop) -> None:
    """Take SIGINT, SIGTERM and SIGHUP off ``loop`` and ignore them: the daemon has stopped,
    and a second Ctrl-C, SIGTERM or a reload during the rest of the exit must not end the
    process by the signal after a clean stop. Done before the loop's close, which would put Python's
    default handlers back. Removing a handler puts the default back for an instant; a
    Ctrl-C in that instant raises KeyboardInterrupt, which is taken as what it is (a signal
    the exit ignores) and the step done again."""
    for sig in _EXIT_SIGNALS:
        while True:
            try:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
                signal.signal(sig, signal.SIG_IGN)
                break
            except KeyboardInterrupt:
                continue


def _join_workers(
    executor: concurrent.futures.ThreadPoolExecutor, code: int, grace_s: float
) -> int:
    """Wait ``grace_s`` for the executor's threads; leave the process (``os._exit``) when
    some are still busy."""
    import logging
    import os
    import threading
    import time

    executor.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + grace_s
    workers: list[threading.Thread] = list(getattr(executor, "_threads", ()))
    for thread in workers:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in workers if t.is_alive()]
    if not stuck:
        return code
    import structlog

    structlog.get_logger().warning("daemon.exit_abandons_threads", threads=stuck, code=code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def _cancel_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is still scheduled on ``loop`` and let it finish (as ``asyncio.run``)."""
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


def usage_error(message: str) -> int:
    """Report a bad argument on stderr (``crypto-monitor: MESSAGE``); the usage exit code."""
    sys.stderr.write(f"crypto-monitor: {message}\n")
    return EXIT_USAGE


def print_config_error(exc: ConfigError, stream: Any = None) -> None:
    """One line per config problem (key path, value, expectation), never a traceback."""
    out = stream or sys.stderr
    out.write(f"crypto-monitor: invalid configuration ({len(exc.problems)} problem(s)):\n")
    for problem in exc.problems:
        out.write(f"  {problem}\n")
