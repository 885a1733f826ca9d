"""A start refused for a reason only the operator can fix exits 2, like a config error, so
the systemd unit (``RestartPreventExitStatus=2``) does not restart the daemon every few
seconds forever; the last line names the fix. The real CLI on a real SQLite file."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cryptomon.cli import main
from cryptomon.store import migrate


def _daemon(tmp_path: Path, url: str, *, auto_migrate: bool) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"database: {{url: '{url}', auto_migrate: {str(auto_migrate).lower()}}}\n"
        f"data_dir: {tmp_path}\napi: {{enabled: false}}\n"
    )
    argv = [sys.executable, "-m", "cryptomon", "--config", str(cfg), "--log-format", "json"]
    return subprocess.run(
        argv, check=False, capture_output=True, text=True, cwd=tmp_path, timeout=120
    )


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert lines, proc
    return lines[-1]


def test_schema_behind_head_with_auto_migrate_off_exits_2_naming_db_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    monkeypatch.setenv("CRYPTOMON_DATABASE__URL", url)
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "downgrade", "-1"]) == 0
    capsys.readouterr()
    assert main(["db", "current"]) == 0
    behind = capsys.readouterr().out.strip()
    assert behind != migrate.head()
    monkeypatch.delenv("CRYPTOMON_DATABASE__URL")

    proc = _daemon(tmp_path, url, auto_migrate=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = _last_line(proc)
    assert last.startswith("crypto-monitor: the daemon could not start:"), proc.stderr[-3000:]
    assert f"schema revision {behind}, this cryptomon needs {migrate.head()}" in last
    assert "run `crypto-monitor db upgrade` first" in last
    assert last.endswith(f"(with this daemon's --config {tmp_path / 'c.yaml'} and environment)")
    assert '"daemon.start_failed"' in proc.stderr
    assert "Traceback" not in proc.stderr
    # nothing was changed: still behind
    with sqlite3.connect(tmp_path / "old.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(behind,)]


def test_schema_without_cryptomon_tables_and_auto_migrate_off_exits_2(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    sqlite3.connect(tmp_path / "empty.db").close()
    proc = _daemon(tmp_path, url, auto_migrate=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = _last_line(proc)
    assert "has no cryptomon schema" in last
    assert "crypto-monitor db upgrade" in last


@pytest.mark.parametrize("auto_migrate", [True, False])
def test_schema_of_a_newer_cryptomon_exits_2_naming_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auto_migrate: bool
) -> None:
    """A rollback of the binary onto a database a newer release migrated: a restart will
    not change it, with or without auto_migrate."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'newer.db'}"
    monkeypatch.setenv("CRYPTOMON_DATABASE__URL", url)
    assert main(["db", "upgrade"]) == 0
    monkeypatch.delenv("CRYPTOMON_DATABASE__URL")
    with sqlite3.connect(tmp_path / "newer.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    proc = _daemon(tmp_path, url, auto_migrate=auto_migrate)
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = _last_line(proc)
    assert "at revision 9999" in last, last
    assert "a newer cryptomon migrated it" in last, last
    assert f"crypto-monitor db downgrade {migrate.head()}" in last, last


def test_an_unreachable_database_still_exits_1_for_a_restart(tmp_path: Path) -> None:
    """A database that does not answer (nothing listens on its port) may answer later:
    exit 1, restarted by the unit, not 2."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = _daemon(tmp_path, f"postgresql+psycopg://u@127.0.0.1:{port}/x", auto_migrate=True)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "unreachable" in _last_line(proc)


@pytest.mark.parametrize(
    ("part", "said", "fix"),
    [
        ("user", 'role "cmt_nobody" does not exist', "create the role or database"),
        ("database", 'database "cmt_no_such_db" does not exist', "create the role or database"),
    ],
)
def test_a_postgresql_login_the_server_refuses_exits_2_naming_the_fix(
    tmp_path: Path, pg_url: str, part: str, said: str, fix: str
) -> None:
    """The real server answers and refuses the login (a role or a database that does not
    exist): the same login is refused on every restart, so exit 2, naming what to fix."""
    base, _, _ = pg_url.rpartition("/")
    if part == "user":
        scheme, _, rest = base.partition("://")
        url = f"{scheme}://cmt_nobody@{rest.rpartition('@')[2]}/test"
    else:
        url = f"{base}/cmt_no_such_db"
    proc = _daemon(tmp_path, url, auto_migrate=True)
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = _last_line(proc)
    assert "refused the login" in last, last
    assert said in last, last
    assert fix in last, last
    assert "Traceback" not in proc.stderr
