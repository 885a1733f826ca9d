"""The real daemon process: it runs, and stops cleanly with exit code 0 on a signal."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.util import LoggedProcess


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_daemon_exits_0_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    """The real daemon process logs that it runs and exits 0 within the timeout on a signal."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"database: {{url: 'sqlite+aiosqlite:///{tmp_path}/x.db'}}\n"
        "api: {port: 0}\nshutdown_timeout_s: 5\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cryptomon", "--config", str(cfg), "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if '"daemon.running"' in line:
            break
    assert any('"daemon.running"' in ln for ln in seen), "".join(seen)
    proc.send_signal(sig)
    started = time.monotonic()
    rc = proc.wait(timeout=30)
    rest = proc.stderr.read()
    assert rc == 0, "".join(seen) + rest
    assert time.monotonic() - started < 10
    assert '"daemon.stopped"' in rest
    assert "Traceback" not in rest


def test_signal_during_a_start_waiting_on_the_database_stops_at_once(tmp_path: Path) -> None:
    """SIGTERM while a component is still starting (here: PostgreSQL accepts the TCP
    connection and never answers, so the database waits out its 30 s connect timeout) stops
    the daemon within seconds with exit 0, not after the timeout with exit 1: systemd's
    TimeoutStopSec would otherwise end in SIGKILL."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)  # the kernel completes the handshake; nobody ever reads or answers
    port = hole.getsockname()[1]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"database: {{url: 'postgresql+psycopg://cm:pw-9f2c@127.0.0.1:{port}/cm', "
        "connect_timeout_s: 30}\n"
        f"data_dir: {tmp_path}\napi: {{port: 0}}\nshutdown_timeout_s: 5\n"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, "-m", "cryptomon", "--config", str(cfg), "--log-format", "json"]
    proc = subprocess.Popen(
        [*argv, "--log-level", "DEBUG"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            if '"component.starting"' in line and '"database"' in line:
                break
        assert any('"component.starting"' in ln for ln in seen), "".join(seen)
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        rc = proc.wait(timeout=40)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
        hole.close()
    rest = proc.stderr.read()
    assert took < 10, f"stopped after {took:.1f} s\n" + rest
    assert rc == 0, "".join(seen) + rest
    assert '"daemon.start_interrupted"' in rest
    assert '"daemon.stopped"' in rest
    assert "Traceback" not in rest
    assert "pw-9f2c" not in "".join(seen) + rest


def test_exit_follows_the_stop_when_a_worker_thread_is_stuck(tmp_path: Path) -> None:
    """A venue's symbol list is fetched in a worker thread (cryptofeed, blocking HTTP) through
    a proxy that accepts and never answers. SIGTERM stops the daemon at once; its exit waits
    for that thread a short grace only (it waited for the library's own HTTP timeout, ~30 s,
    past systemd's TimeoutStopSec), saying which thread it leaves behind."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    port = hole.getsockname()[1]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"database: {{url: 'sqlite+aiosqlite:///{tmp_path}/x.db'}}\n"
        f"data_dir: {tmp_path}\napi: {{port: 0}}\nshutdown_timeout_s: 5\n"
        "exchanges: [{name: binance, symbols: [BTC/USDT], "
        f"proxy: 'http://127.0.0.1:{port}'}}]\n"
    )
    argv = [sys.executable, "-m", "cryptomon", "--config", str(cfg), "--log-format", "json"]
    proc = subprocess.Popen(
        [*argv, "--log-level", "DEBUG"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=tmp_path,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            if '"component.starting"' in line and '"feeds"' in line:
                break
        assert any('"feeds"' in ln for ln in seen), "".join(seen)
        hole.settimeout(20)
        conn, _ = hole.accept()  # the symbol request reached the proxy: its thread now waits
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        rc = proc.wait(timeout=60)
        took = time.monotonic() - started
        conn.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        hole.close()
    rest = proc.stderr.read()
    assert took < 8, f"exited {took:.1f} s after SIGTERM\n" + rest
    assert rc == 0, "".join(seen) + rest
    assert '"daemon.stopped"' in rest
    assert '"daemon.exit_abandons_threads"' in rest
    assert "Traceback" not in rest


def test_ctrl_c_during_the_first_start_compile_stops_at_once(tmp_path: Path) -> None:
    """The first start after an install compiles the detector kernels (10-15 s on two cores;
    an empty NUMBA_CACHE_DIR forces it here). Ctrl-C meanwhile stops the daemon while the
    detectors are still starting: the compile ran on the event loop and held it, so the signal
    was only seen once every kernel was compiled and the next component was starting."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"database: {{url: 'sqlite+aiosqlite:///{tmp_path}/x.db'}}\n"
        f"data_dir: {tmp_path}\napi: {{port: 0}}\nshutdown_timeout_s: 5\n"
    )
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NUMBA_CACHE_DIR": str(cache)}
    argv = [sys.executable, "-m", "cryptomon", "--config", str(cfg), "--log-format", "json"]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            if '"detectors.compiling"' in line:
                break
        assert any('"detectors.compiling"' in ln for ln in seen), "".join(seen)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    rest = proc.stderr.read()
    assert rc == 0, "".join(seen) + rest
    interrupted = [ln for ln in rest.splitlines() if '"daemon.start_interrupted"' in ln]
    assert interrupted, "".join(seen) + rest
    assert '"component": "detectors"' in interrupted[0], rest
    assert '"detectors.compiled"' not in rest, rest
    assert '"daemon.stopped"' in rest
    assert "Traceback" not in rest


def _daemon_config(tmp_path: Path) -> list[str]:
    """The argv of a daemon on a SQLite file with no exchanges and a free API port."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"database: {{url: 'sqlite+aiosqlite:///{tmp_path}/x.db'}}\n"
        f"data_dir: {tmp_path}\napi: {{port: 0}}\nshutdown_timeout_s: 5\n"
    )
    return [sys.executable, "-m", "cryptomon", "--config", str(cfg), "--log-format", "json"]


def test_ctrl_c_held_down_after_the_stop_leaves_the_exit_code_0(tmp_path: Path) -> None:
    """Ctrl-C, then Ctrl-C again and again (every 10 ms) once the daemon has stopped, until
    the process is gone: the exit stays the clean stop's 0. The exit restored Python's
    SIGINT handler, and the interpreter's own finalization (about a second, freeing numba's
    modules) then ended the process by the signal: exit 130 after a clean stop."""
    with LoggedProcess(_daemon_config(tmp_path), cwd=tmp_path) as daemon:
        proc = daemon.proc
        daemon.wait_for("daemon.running")
        proc.send_signal(signal.SIGINT)
        daemon.wait_for("daemon.stopped")
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.01)
        rc = proc.wait(timeout=10)
    rest = proc.stderr.read() if proc.stderr is not None else ""
    assert rc == 0, f"exit {rc}\n" + daemon.log() + rest
    assert "Traceback" not in rest, rest


def test_sighup_while_the_daemon_is_being_built_does_not_end_it(tmp_path: Path) -> None:
    """SIGHUP (a reload) before the event loop has its handler, while the daemon is still
    importing and building its components: the daemon goes on to run and stops with 0 on
    SIGTERM. SIGHUP's default action ended the process then, without a line (exit 129)."""
    with LoggedProcess(_daemon_config(tmp_path), cwd=tmp_path) as daemon:
        proc = daemon.proc
        daemon.wait_for("daemon.no_exchanges")  # logged before the daemon is built
        proc.send_signal(signal.SIGHUP)
        daemon.wait_for("daemon.running")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
    rest = proc.stderr.read() if proc.stderr is not None else ""
    assert rc == 0, f"exit {rc}\n" + daemon.log() + rest
