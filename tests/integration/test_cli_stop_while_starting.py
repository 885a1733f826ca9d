"""Ctrl-C or SIGTERM in the first seconds of a command (imports, reading the config, building
the daemon: before the event loop takes the signals over) is a stop like any other: one line,
exit 0 for the daemon commands, never a traceback or a death by the signal (exit -15, which
`crypto-monitor demo` gave to a SIGTERM in its first ~4 s, and a KeyboardInterrupt traceback
or a silent 130 for a Ctrl-C). The real CLI in a child process; the config file is a FIFO, so
the process is held in the config read, inside that window, until the test has signalled it."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _held_in_config_read(tmp_path: Path, *command: str) -> tuple[subprocess.Popen[str], int]:
    """The CLI started with ``--config`` a FIFO; returns once it has opened it for reading
    (it then blocks reading it), with the write end the test holds open."""
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cryptomon", *command, "--config", str(fifo)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while True:  # a non-blocking open for writing succeeds once a reader has the FIFO open
        try:
            return proc, os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the CLI never opened its --config"
        time.sleep(0.01)


@pytest.mark.parametrize("command", [("run",), ("demo", "--port", "0")])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_before_the_daemon_runs_is_a_clean_stop(
    tmp_path: Path, command: tuple[str, ...], sig: signal.Signals
) -> None:
    proc, writer = _held_in_config_read(tmp_path, *command)
    try:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(writer)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in err, err
    assert proc.returncode == 0, (proc.returncode, err)
    lines = err.strip().splitlines()
    assert lines[-1] == (
        f"crypto-monitor {command[0]}: stopped by {sig.name} while starting (nothing was running)"
    ), err
    assert "dashboard" not in out  # the demo never announced a URL that never listened


def test_stop_signal_in_another_command_is_an_interrupt(tmp_path: Path) -> None:
    """A command that is not the daemon (here `check-config`) stopped by SIGTERM says so and
    exits 128 + the signal's number, as a shell reports it, instead of dying by the signal."""
    proc, writer = _held_in_config_read(tmp_path, "check-config")
    try:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(writer)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in err, err
    assert proc.returncode == 128 + signal.SIGTERM, (proc.returncode, err)
    assert err.strip().splitlines()[-1] == "crypto-monitor check-config: stopped by SIGTERM", err


def test_importing_the_entry_point_loads_no_command() -> None:
    """The console script's first step (``from cryptomon.cli import main``) imports nothing
    heavy: the window before ``main`` takes the stop signals over stays a few milliseconds
    (it was ~1 s of config, logging and command imports, where Ctrl-C printed a traceback)."""
    code = (
        "import sys; import cryptomon.cli; "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('cryptomon'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60
    ).stdout.split()
    assert set(out) <= {"cryptomon", "cryptomon.cli"}, out
