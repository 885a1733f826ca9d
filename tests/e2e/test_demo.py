"""crypto-monitor demo: simulator + full daemon in one process, offline, JSON summary."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.util import LoggedProcess

DEMO_JSON = [sys.executable, "-m", "cryptomon", "demo", "--port", "0", "--log-format", "json"]


def test_demo_runs_offline_and_prints_summary() -> None:
    """A short demo exits 0 and its last line summarises events, anomalies, orders, fills."""
    proc = subprocess.run(
        [sys.executable, "-m", "cryptomon", "demo", "--duration", "5", "--json", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"events", "anomalies", "orders", "fills", "notifications", "seconds"} <= set(summary)
    for kind in ("Trade", "BookTop", "BookSnapshot", "Ticker"):
        assert summary["events"].get(kind, 0) > 0, kind
    assert isinstance(summary["anomalies"], dict)
    assert summary["seconds"] >= 5
    assert summary["api"].startswith("http://127.0.0.1:"), summary  # where it listened
    # by outcome, beside what the sink received (a bare count of 42 beside 15 delivered
    # read as lost notifications: most were suppressed by cooldowns)
    notes = summary["notifications"]
    assert isinstance(notes, dict), notes
    assert set(notes) <= {"sent", "failed", "suppressed", "digested"}, notes
    assert isinstance(summary["notifications_delivered"], int)


def test_ctrl_c_during_the_first_compile_exits_without_waiting_for_it(tmp_path: Path) -> None:
    """The README's first command on a fresh install compiles the detector kernels (10-30 s;
    an empty NUMBA_CACHE_DIR forces it). Ctrl-C meanwhile stops the daemon, and the process
    exits after a short grace instead of waiting for the compile to finish (the demo ran on
    ``asyncio.run``, which joins every worker thread: the compile's end was logged before
    the exit)."""
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NUMBA_CACHE_DIR": str(cache)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cryptomon", "demo", "--port", "0", "--log-format", "json"],
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
            if '"detectors.compiling"' in line:
                break
        assert any('"detectors.compiling"' in ln for ln in seen), "".join(seen)
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(seen) + rest
    assert '"daemon.start_interrupted"' in rest, rest
    assert '"daemon.exit_abandons_threads"' in rest, rest
    assert '"detectors.compiled"' not in rest, rest
    assert "demo summary: " in out, out
    assert "Traceback" not in rest


def test_a_second_ctrl_c_after_the_stop_does_not_end_the_process_by_the_signal(
    tmp_path: Path,
) -> None:
    """Ctrl-C, and again once the daemon has stopped (while the process prints its summary
    and exits), then SIGTERM: the exit stays the clean stop's 0 with the summary printed,
    not a KeyboardInterrupt (130, or the process ended by SIGINT)."""
    with LoggedProcess(DEMO_JSON, cwd=tmp_path) as demo:
        proc = demo.proc
        demo.wait_for("daemon.running")
        proc.send_signal(signal.SIGINT)
        demo.wait_for("daemon.stopped")
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGTERM)
        out, rest = proc.communicate(timeout=60)
    assert proc.returncode == 0, demo.log() + rest
    assert "demo summary: " in out, out
    assert "Traceback" not in rest, rest


def test_a_start_cut_short_by_ctrl_c_names_no_dashboard_url(tmp_path: Path) -> None:
    """Ctrl-C while the demo is still starting (its database, a PostgreSQL server that
    accepted the connection and never answers, holds the start before the API listens): the
    summary printed on the way out must not name an API URL, since none ever listened (it
    named ``http://127.0.0.1:PORT``, the port only picked for the settings)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(60)
        db_port = silent.getsockname()[1]
        config = tmp_path / "demo.yaml"
        config.write_text(
            "database:\n"
            f"  url: postgresql+psycopg://postgres@127.0.0.1:{db_port}/demo\n"
            "  connect_timeout_s: 120\n"
        )
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "cryptomon", "demo", "--port", "0", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        try:
            conn, _ = silent.accept()  # the daemon's store is connecting: the start is held
            with conn:
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert "demo summary: " in out, out
    assert "http://" not in out, out  # no dashboard URL: the API never listened
    assert "dashboard" not in out, out
    assert "Traceback" not in err, err


def test_sighup_is_ignored_with_a_log_line_and_the_demo_goes_on(tmp_path: Path) -> None:
    """SIGHUP to a running demo (a reload is `run`'s): logged as not supported, the demo goes
    on and still stops with 0 and its summary on SIGTERM. It had no SIGHUP handler: the
    signal's default action ended it (exit -1 / 129) without a line."""
    with LoggedProcess(DEMO_JSON, cwd=tmp_path) as demo:
        proc = demo.proc
        demo.wait_for("daemon.running")
        proc.send_signal(signal.SIGHUP)
        line = demo.wait_for("daemon.reload_unsupported")
        assert "crypto-monitor run" in line, line
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        out, rest = proc.communicate(timeout=60)
    assert proc.returncode == 0, demo.log() + rest
    assert "demo summary: " in out, out
    assert "Traceback" not in rest, rest
