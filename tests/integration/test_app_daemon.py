"""The real daemon process: it runs, and stops cleanly with exit code 0 on a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


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
