"""A new user's first hour, as subprocesses: record and replay of the simulator, an empty
recording, the read-only ``trades`` report, ``api openapi --config``, a SQLite database in a
missing directory."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import pytest
import yaml

from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel

CLI = [sys.executable, "-m", "cryptomon"]


async def run(*args: str, timeout: float = 90) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def simulator_config(path: Path, url: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "exchanges": [{"name": "simulator", "url": url, "symbols": ["BTC-USDT"]}],
                "logging": {"level": "WARNING"},
            }
        )
    )
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.asyncio
async def test_replay_of_a_simulator_recording_has_no_parse_errors(tmp_path: Path) -> None:
    """The simulator's plain ws:// connection header is a header to replay, not a malformed
    message."""
    sim = SimExchange(MarketModel(["BTC-USDT"], seed=3), interval=0.05)
    await sim.start()
    try:
        cfg = simulator_config(tmp_path / "cfg.yaml", sim.rest_url)
        out = tmp_path / "rec"
        code, _, err = await run(
            "record", "--config", str(cfg), "--out", str(out), "--duration", "1"
        )
        assert code == 0, err
    finally:
        await sim.stop()
    ws_files = sorted(out.glob("SIMULATOR.ws.*"))
    assert ws_files
    assert ws_files[0].read_text().startswith("ws://")
    files = [str(p) for p in sorted(out.iterdir())]
    code, stdout, err = await run("replay", "--exchange", "simulator", *files)
    assert code == 0, err
    assert "parse errors=0" in stdout


@pytest.mark.asyncio
async def test_record_that_captured_nothing_exits_1_saying_so(tmp_path: Path) -> None:
    """Recording an exchange that never answers: exit 1 and one line saying nothing was
    captured, instead of a success with no data."""
    cfg = simulator_config(tmp_path / "cfg.yaml", f"http://127.0.0.1:{closed_port()}")
    code, stdout, err = await run(
        "record", "--config", str(cfg), "--out", str(tmp_path / "rec"), "--duration", "1"
    )
    assert code == 1, stdout + err
    assert "record captured nothing from simulator" in err
    assert "Traceback" not in err
