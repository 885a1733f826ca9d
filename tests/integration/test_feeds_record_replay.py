"""crypto-monitor record against the simulator, then replay of that recording (CLI, real files)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from tests.util import LoggedProcess

CLI = [sys.executable, "-m", "cryptomon"]


def write_config(path: Path, url: str) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "exchanges": [
                    {
                        "name": "simulator",
                        "url": url,
                        "symbols": ["BTC-USDT", "ETH-USDT"],
                        "depth": 100,
                    }
                ],
                "logging": {"level": "WARNING"},
            }
        )
    )


async def run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def recorded_files(out: Path) -> list[str]:
    return sorted(str(p) for p in out.iterdir())


@pytest.mark.asyncio
async def test_record_then_replay_gives_the_same_callbacks(tmp_path: Path) -> None:
    """Recording the simulator writes cryptofeed raw files; replaying them yields the same
    number of callbacks as the live run saw."""
    sim = SimExchange(MarketModel(["BTC-USDT", "ETH-USDT"], seed=3), interval=0.05)
    await sim.start()
    try:
        cfg = tmp_path / "cfg.yaml"
        write_config(cfg, sim.rest_url)
        out = tmp_path / "rec"
        code, stdout, err = await run(
            "record", "--config", str(cfg), "--out", str(out), "--duration", "2"
        )
        assert code == 0, err
    finally:
        await sim.stop()
    files = recorded_files(out)
    names = [Path(f).name for f in files]
    assert "SIMULATOR.0" in names
    assert "instruments.SIMULATOR.json" in names  # the specs, for the replay's units
    assert any(".ws." in n for n in names)
    assert any(".http." in n for n in names)
    live_total = int(re.search(r"recorded (\d+) callbacks", stdout).group(1))  # type: ignore[union-attr]
    assert live_total > 0
    code, stdout, err = await run("replay", "--exchange", "simulator", *files, "--json")
    assert code == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert set(summary) == {"exchange", "messages", "events", "anomalies", "seconds"}
    assert summary["exchange"] == "simulator"
    assert summary["events"]["trades"] > 0
    assert summary["events"]["l2_book"] > 0
    assert sum(summary["events"].values()) == live_total


def test_ctrl_c_during_the_first_compile_exits_without_waiting_for_it(
    tmp_path: Path, shared_data: Path
) -> None:
    """`crypto-monitor replay` right after an install compiles the detector kernels (10-30
    s; an empty NUMBA_CACHE_DIR forces it). Ctrl-C meanwhile stopped the pipeline at once but
    the process waited for the compile to end (``asyncio.run`` joins every worker thread);
    it now exits after the daemon's short grace, its temporary database removed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cache = tmp_path / "numba-cache"
    cache.mkdir()
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "NUMBA_CACHE_DIR": str(cache),
        "TMPDIR": str(tmpdir),
    }
    files = [str(shared_data / n) for n in ("BINANCE.0", "BINANCE.http.0.0", "BINANCE.ws.1.0")]
    argv = [sys.executable, "-m", "cryptomon", "replay", "--exchange", "binance", *files]
    proc = subprocess.Popen(
        [*argv, "--speed", "1x", "--log-format", "json"],
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
        _, rest = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(seen) + rest
    assert '"daemon.exit_abandons_threads"' in rest, rest
    assert '"detectors.compiled"' not in rest, rest
    assert not [p for p in tmpdir.iterdir() if p.name.startswith("cryptomon-replay-")]
    assert "Traceback" not in rest


def test_sighup_during_a_replay_is_ignored_with_a_log_line(
    shared_data: Path, tmp_path: Path
) -> None:
    """SIGHUP to a running replay (a reload is `run`'s): logged as not supported, the replay
    goes on and stops with 0 and its summary on SIGTERM. It had no SIGHUP handler: the
    signal's default action ended it (exit -1 / 129) without a line."""
    import signal

    files = [str(shared_data / n) for n in ("BINANCE.0", "BINANCE.http.0.0", "BINANCE.ws.1.0")]
    argv = [*CLI, "replay", "--exchange", "binance", *files, "--speed", "1x"]
    argv += ["--log-format", "json"]
    with LoggedProcess(argv, cwd=tmp_path) as replay:
        proc = replay.proc
        replay.wait_for("daemon.running")
        proc.send_signal(signal.SIGHUP)
        line = replay.wait_for("daemon.reload_unsupported")
        assert "crypto-monitor run" in line, line
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        out, rest = proc.communicate(timeout=60)
    assert proc.returncode == 0, replay.log() + rest
    assert out.startswith("replayed "), out
    assert "Traceback" not in rest, rest
