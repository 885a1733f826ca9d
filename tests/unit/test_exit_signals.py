"""A Ctrl-C (or SIGTERM) that lands at any instant of the exit, once the daemon has stopped,
is told or ignored, never a KeyboardInterrupt: removing the loop's handler puts Python's
default back (``default_int_handler``), and a SIGINT arriving in that instant raised one
(seen in CI: exit 130 after a clean stop)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Iterator

import pytest

from cryptomon.app import App
from cryptomon.clock import ManualClock
from cryptomon.commands.support import ignore_exit_signals
from cryptomon.hub import Hub

EXIT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # a SIGHUP is no end either


@pytest.fixture
def restored_signals() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in EXIT_SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _ctrl_c_after_every_removal(
    loop: asyncio.AbstractEventLoop, removed: list[int]
) -> Callable[[], None]:
    """Make the loop's ``remove_signal_handler`` send a real SIGINT at once after its first
    removal of each signal: the worst instant for a second Ctrl-C. Returns the undo."""
    remove = loop.remove_signal_handler

    def remove_then_ctrl_c(sig: int) -> bool:
        done = remove(sig)
        first = sig not in removed
        removed.append(sig)
        if first:
            os.kill(os.getpid(), signal.SIGINT)
        return done

    loop.remove_signal_handler = remove_then_ctrl_c  # type: ignore[method-assign]
    return lambda: setattr(loop, "remove_signal_handler", remove)


@pytest.mark.asyncio
async def test_the_stopped_daemon_keeps_its_exit_signals_handled_without_a_gap(
    restored_signals: None,
) -> None:
    """The run's end replaces the SIGINT/SIGTERM handlers by the exit's (told, ignored)
    without removing them first, so a Ctrl-C right then is no KeyboardInterrupt."""
    loop = asyncio.get_running_loop()
    removed: list[int] = []
    undo = _ctrl_c_after_every_removal(loop, removed)
    app = App([], hub=Hub(), clock=ManualClock(), shutdown_timeout_s=5)

    async def until() -> None:
        return None

    try:
        code = await app.run(until=until)
    except KeyboardInterrupt:
        pytest.fail("a Ctrl-C at the end of the run raised KeyboardInterrupt")
    finally:
        undo()
    assert code == 0
    assert removed == []
    for sig in EXIT_SIGNALS:  # the loop outlives this test: its handlers go with it
        assert loop.remove_signal_handler(sig) is True


def test_the_exit_signals_end_ignored_even_with_a_ctrl_c_at_the_worst_instant(
    restored_signals: None,
) -> None:
    """Taking the exit signals off a loop before its close (which would put Python's default
    handlers back) leaves both ignored, even with a Ctrl-C right after each removal."""
    loop = asyncio.new_event_loop()
    try:
        for sig in EXIT_SIGNALS:
            loop.add_signal_handler(sig, lambda: None)
        removed: list[int] = []
        undo = _ctrl_c_after_every_removal(loop, removed)
        try:
            ignore_exit_signals(loop)
        except KeyboardInterrupt:
            pytest.fail("a Ctrl-C while the exit signals were taken off raised KeyboardInterrupt")
        finally:
            undo()
        assert set(removed) == set(EXIT_SIGNALS)
        for sig in EXIT_SIGNALS:
            assert signal.getsignal(sig) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGINT)  # ignored by the process: nothing is raised
    finally:
        loop.close()
    for sig in EXIT_SIGNALS:
        assert signal.getsignal(sig) is signal.SIG_IGN  # the close left them alone
