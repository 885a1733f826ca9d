"""crypto-monitor demo: simulator + full daemon in one process, offline, JSON summary."""

from __future__ import annotations

import json
import subprocess
import sys


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
