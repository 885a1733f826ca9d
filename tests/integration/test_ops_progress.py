"""``scorecard`` and ``record`` show a progress line on a terminal (stderr a pty) and
nothing of it when stderr is not a terminal (subprocesses)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel

CLI = [sys.executable, "-m", "cryptomon"]
SCORECARD = ["scorecard", "--symbols", "BTC-USDT", "--calm-minutes", "1", "--rounds", "1"]


def on_terminal(args: list[str], timeout: float = 240) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal; the exit code and what the terminal showed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*CLI, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave
    )
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(master)
    code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    return code, shown.decode(errors="replace")


def off_terminal(args: list[str], timeout: float = 240) -> tuple[int, str]:
    proc = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    return proc.returncode, proc.stderr


@pytest.mark.timeout(600)  # two whole scorecard runs: ~1 min each idle, 2-4 min on a busy CI
def test_scorecard_shows_progress_on_a_terminal_only() -> None:
    """On a terminal the scorecard redraws a bar of sim seconds; piped, stderr has no bar."""
    code, shown = on_terminal(SCORECARD)
    assert code in (0, 1), shown
    assert "\rscorecard [" in shown
    assert "sim s" in shown
    assert "Traceback" not in shown
    code, err = off_terminal(SCORECARD)
    assert code in (0, 1), err
    assert "scorecard [" not in err


@pytest.mark.asyncio
async def test_record_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    """``record --duration`` shows elapsed of the duration and the messages recorded."""
    sim = SimExchange(MarketModel(["BTC-USDT"], seed=3), interval=0.05)
    await sim.start()
    try:
        cfg = tmp_path / "cfg.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "exchanges": [
                        {"name": "simulator", "url": sim.rest_url, "symbols": ["BTC-USDT"]}
                    ],
                    "logging": {"level": "WARNING"},
                }
            )
        )
        args = ["record", "--config", str(cfg), "--duration", "2"]
        import asyncio

        code, shown = await asyncio.to_thread(on_terminal, [*args, "--out", str(tmp_path / "a")])
        assert code == 0, shown
        assert "\rrecord [" in shown
        assert "messages" in shown
        code, err = await asyncio.to_thread(off_terminal, [*args, "--out", str(tmp_path / "b")])
        assert code == 0, err
        assert "record [" not in err
    finally:
        await sim.stop()
