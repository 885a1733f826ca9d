"""``check-config`` runs the validation ``run`` runs (subprocesses): an unknown exchange name,
an apprise URL scheme that does not exist and an email URL apprise refuses are rejected by
both, each on one line; what needs the network is named in a note and skipped."""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import pytest
import yaml

CLI = [sys.executable, "-m", "cryptomon"]


async def run(*args: str, timeout: float = 90) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write(path: Path, **config: object) -> str:
    base: dict[str, object] = {
        "database": {"url": f"sqlite+aiosqlite:///{path.parent / 'cm.db'}"},
        "api": {"port": free_port()},
        "logging": {"level": "WARNING"},
    }
    path.write_text(yaml.safe_dump({**base, **config}))
    return str(path)


@pytest.mark.asyncio
async def test_check_config_rejects_what_run_rejects(tmp_path: Path) -> None:
    """An unknown exchange, an unknown apprise scheme and a refused email URL: exit 2 from
    check-config and from run, every problem on its own line, no traceback."""
    cfg = write(
        tmp_path / "bad.yaml",
        exchanges=[{"name": "binanse", "symbols": ["BTC/USDT"]}],
        alerts={
            "channels": [
                {"name": "chat", "url": "nosuchscheme://host/path"},
                {"name": "mail", "url": "mailto://"},
            ]
        },
    )
    for command in ("check-config", "run"):
        code, out, err = await run(command, "--config", cfg)
        assert code == 2, (command, err)
        assert "Traceback" not in err
        assert "config OK" not in err
        assert "exchanges[binanse].name: got 'binanse'" in err, (command, err)
        assert "did you mean binance" in err
        assert "alerts.channels.0.url" in err
        assert "alerts.channels.1.url" in err
        assert "nosuchscheme" not in out


@pytest.mark.asyncio
async def test_check_config_names_the_checks_it_skips_offline(tmp_path: Path) -> None:
    """A valid config passes with a note for each check that needs the network, the
    database included (it is not opened: a wrong port or a read-only SQLite directory
    passed check-config with no word, and `run` then exited 1)."""
    cfg = write(
        tmp_path / "ok.yaml",
        exchanges=[{"name": "binance", "symbols": ["BTC/USDT"]}],
        alerts={"channels": [{"name": "hook", "url": "json://127.0.0.1:9/x"}]},
    )
    code, out, err = await run("check-config", "--config", cfg)
    assert code == 0, err
    assert err.rstrip().endswith("config OK")
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert any("exchanges[binance].symbols" in n and "needs the network" in n for n in notes)
    assert any("alerts.channels" in n and "needs the network" in n for n in notes)
    assert any("database.url" in n and "crypto-monitor db current" in n for n in notes), notes
    assert "binance" in yaml.safe_load(out)["exchanges"][0]["name"]


@pytest.mark.asyncio
async def test_check_config_rejects_the_tls_files_run_rejects(tmp_path: Path) -> None:
    """A certificate file that does not exist and a key of another certificate stop `run`
    at the API's start (exit 2); check-config reads the same local files and refuses them
    too, each line naming the setting and the path found (not 'None')."""
    from tests.integration.api.test_tls import self_signed

    cert, key = self_signed(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _, other_key = self_signed(other)
    missing = tmp_path / "missing-cert.pem"
    cases = [
        ({"tls_cert_file": str(missing), "tls_key_file": str(key)}, "api.tls_cert_file"),
        ({"tls_cert_file": str(cert), "tls_key_file": str(other_key)}, "matching private key"),
    ]
    for n, (tls, expected) in enumerate(cases):
        cfg = write(tmp_path / f"tls{n}.yaml", api={"port": free_port(), **tls})
        for command in ("check-config", "run"):
            code, _, err = await run(command, "--config", cfg)
            assert code == 2, (command, err)
            assert "Traceback" not in err
            assert expected in err, (command, err)
            if n == 0:  # the path as found (a long one is shortened after 77 characters)
                assert f"got {str(missing)!r}"[:70] in err, (command, err)
    good = write(
        tmp_path / "good.yaml",
        api={"port": free_port(), "tls_cert_file": str(cert), "tls_key_file": str(key)},
    )
    code, _, err = await run("check-config", "--config", good)
    assert code == 0, err


@pytest.mark.asyncio
async def test_a_data_dir_that_cannot_be_written_is_refused_by_check_config_and_run(
    tmp_path: Path,
) -> None:
    """``data_dir`` (where protective exits are journaled while the database is away) must be
    a directory the daemon can create and write: one line naming it, exit 2, from both
    ``check-config`` and ``run``, before anything starts; a missing one is created."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    bad = write(tmp_path / "bad.yaml", data_dir=str(blocker / "state"))
    for command in ("check-config", "run"):
        code, _out, err = await run(command, "--config", bad)
        assert code == 2, (command, err)
        line = next(x for x in err.splitlines() if "data_dir" in x)
        # the path as found (a long one is shortened after 77 characters)
        assert f"got {str(blocker / 'state')!r}"[:70] in line, line
        assert "a writable directory" in line
        assert "Traceback" not in err
    fresh = tmp_path / "new" / "state"
    code, _out, err = await run(
        "check-config", "--config", write(tmp_path / "ok.yaml", data_dir=str(fresh))
    )
    assert code == 0, err
    assert fresh.is_dir()
    assert list(fresh.iterdir()) == []  # the probe file is gone


@pytest.mark.asyncio
async def test_check_config_names_each_bad_template_by_its_key(tmp_path: Path) -> None:
    """Two bad template overrides (three bad parts): check-config exits 2 with one line per
    part, each named by its key path with its value and what is wrong; it printed one line
    for the whole alerts.templates dict, about the first bad one only."""
    cfg = write(
        tmp_path / "bad.yaml",
        alerts={
            "templates": {
                "anomaly": {"title": "{nope} x", "body": "{value:d}"},
                "fill": {"title": "filled {symbol}"},
                "signal": {"body": "{bad"},
            }
        },
    )
    code, _, err = await run("check-config", "--config", cfg)
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line.strip() for line in err.splitlines() if line.startswith("  ")]
    assert len(lines) == 3, err
    assert any(
        line.startswith("alerts.templates.anomaly.title: got '{nope} x'")
        and "unknown field {nope} for anomaly" in line
        for line in lines
    ), err
    assert any(
        line.startswith("alerts.templates.anomaly.body: got '{value:d}'")
        and "formats with sample values" in line
        for line in lines
    ), err
    assert any(
        line.startswith("alerts.templates.signal.body: got '{bad'") and "str.format" in line
        for line in lines
    ), err
