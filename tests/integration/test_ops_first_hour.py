"""A new user's first hour, as subprocesses: record and replay of the simulator, an empty
recording, the read-only ``trades`` report, ``api openapi --config``, a SQLite database in a
missing directory."""

from __future__ import annotations

import asyncio
import signal
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


def _db_config(path: Path, url: str) -> Path:
    path.write_text(yaml.safe_dump({"database": {"url": url}, "logging": {"level": "WARNING"}}))
    return path


def _snapshot(directory: Path) -> bytes:
    """The database file, after checking no write is pending in a WAL beside it (SQLite
    makes an empty -wal/-shm pair even for a read-only reader of a WAL database)."""
    wal = directory / "cm.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    return (directory / "cm.db").read_bytes()


@pytest.mark.asyncio
async def test_trades_report_reads_without_migrating_or_writing(tmp_path: Path) -> None:
    """``trades`` on a database at an old revision reads nothing into it (no migration, no
    file touched) and says the schema is not current; on a missing file it creates none."""
    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite+aiosqlite:///{data / 'cm.db'}"
    cfg = _db_config(tmp_path / "cfg.yaml", url)
    code, _, err = await run("db", "upgrade", "base", "--config", str(cfg))  # an empty file
    assert code == 0, err
    before = _snapshot(data)
    code, out, err = await run("trades", "--config", str(cfg))
    assert code == 1, out + err
    assert "is its schema current? (crypto-monitor db upgrade)" in err
    assert "Traceback" not in err
    assert _snapshot(data) == before
    code, _, err = await run("db", "upgrade", "--config", str(cfg))
    assert code == 0, err
    before = _snapshot(data)
    code, out, err = await run("trades", "--config", str(cfg))
    assert code == 0, err
    assert _snapshot(data) == before
    missing = _db_config(tmp_path / "m.yaml", f"sqlite+aiosqlite:///{tmp_path / 'no/cm.db'}")
    code, _, err = await run("trades", "--config", str(missing))
    assert code == 1
    assert "no database file at" in err
    assert not (tmp_path / "no").exists()


@pytest.mark.asyncio
async def test_sqlite_in_a_missing_directory_is_created_and_logged(tmp_path: Path) -> None:
    """A SQLite URL whose directory does not exist: the directory is made and the log says
    which one."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'new/dir/cm.db'}"
    cfg = _db_config(tmp_path / "cfg.yaml", url)
    code, out, err = await run("db", "upgrade", "--config", str(cfg))
    assert code == 0, err
    assert "db.directory_created" in out + err
    assert str(tmp_path / "new" / "dir") in out + err
    assert (tmp_path / "new/dir/cm.db").is_file()


@pytest.mark.asyncio
async def test_api_openapi_reads_the_config_it_is_given(tmp_path: Path) -> None:
    """``api openapi --config`` with a bad file exits 2 naming the problem; a missing file
    is said so; a good one writes the document."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("api: {port: not-a-port}\n")
    code, out, err = await run("api", "openapi", "--config", str(bad))
    assert code == 2, out + err
    assert "api.port" in err
    assert out == ""
    code, _, err = await run("api", "openapi", "--config", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert "missing.yaml" in err
    good = tmp_path / "good.yaml"
    good.write_text("api: {port: 9000}\n")
    code, out, err = await run("api", "openapi", "--config", str(good))
    assert code == 0, err
    assert out.startswith("{")


@pytest.mark.asyncio
async def test_each_retry_of_an_offline_feed_logs_one_line(tmp_path: Path) -> None:
    """An exchange that refuses connections: each attempt to load its symbols is one
    ``feed.symbols_unavailable`` line, without cryptofeed's own copy of the error."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "exchanges": [
                    {
                        "name": "simulator",
                        "url": f"http://127.0.0.1:{closed_port()}",
                        "symbols": ["BTC-USDT"],
                    }
                ],
                "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'd.db'}"},
                "api": {"enabled": False},
            }
        )
    )
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "--config",
        str(cfg),
        "--log-format",
        "json",
        "run",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        while sum("feed.symbols_unavailable" in line for line in lines) < 2:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, "the daemon exited: " + "".join(lines)
            lines.append(line.decode())
        proc.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), 30)
        lines += rest.decode().splitlines()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = "\n".join(lines)
    assert "Failed to parse symbol information" not in text
    assert "Traceback" not in text
