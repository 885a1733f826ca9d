"""A database URL's password is hidden by the URL's shape, whatever its length: a one-letter
password (``u:p@host``) is neither shown nor found by replacing every ``p`` in a line, an
empty user name (``:p@host``) or a password with a ``/`` hides it too. Real PostgreSQL
refuses the login; the daemon, ``db current`` and ``check-config`` say so."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import structlog
from sqlalchemy.engine import make_url

from cryptomon.cli import main
from cryptomon.config import load_settings
from cryptomon.log import configure
from tests.conftest import pg_admin_url
from tests.util import LoggedProcess

ROLE = "cm_no_such_role"


def _refused_url() -> str:
    """The test server's address with a role it does not have and the password ``p``."""
    url = make_url(pg_admin_url()).set(username=ROLE, password="p")
    return url.render_as_string(hide_password=False)


def _assert_hidden_not_scrubbed(text: str) -> None:
    assert ":p@" not in text, text
    assert f"{ROLE}:***@" in text, text
    # PostgreSQL's own words are kept whole: "port 5432", "password", "postgresql"
    assert "***ort" not in text, text
    assert "***ostgresql" not in text, text
    assert f'role "{ROLE}" does not exist' in text, text


def test_db_current_names_the_refusal_with_a_one_letter_password_hidden(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRYPTOMON_DATABASE__URL", _refused_url())
    monkeypatch.setenv("CRYPTOMON_DATABASE__CONNECT_TIMEOUT_S", "5")
    assert main(["db", "current"]) == 1
    err = capsys.readouterr().err
    _assert_hidden_not_scrubbed(err)
    assert ", port " in err, err  # psycopg's "connection to server at ..., port N failed"


def test_daemon_start_failure_hides_a_one_letter_password_in_log_and_stderr(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"database: {{url: '{_refused_url()}', connect_timeout_s: 5}}\n"
        f"data_dir: {tmp_path}\napi: {{enabled: false}}\n"
    )
    argv = [sys.executable, "-m", "cryptomon", "--config", str(cfg), "--log-format", "json"]
    with LoggedProcess(argv, cwd=tmp_path) as daemon:
        line = daemon.wait_for("daemon.start_failed", timeout=60)
        rc = daemon.proc.wait(timeout=60)
        rest = daemon.proc.stderr.read() if daemon.proc.stderr is not None else ""
    assert rc == 2, daemon.log() + rest  # a login the server refuses: the operator's to fix
    error = json.loads(line)["error"]
    assert "refused the login" in error, error
    _assert_hidden_not_scrubbed(error)
    last = rest.strip().splitlines()[-1]
    assert last.startswith("crypto-monitor: the daemon could not start:"), rest
    _assert_hidden_not_scrubbed(last)


@pytest.mark.parametrize(
    ("url", "password", "shown"),
    [
        ("postgresql+psycopg://:p@db.invalid/x", ":p@", "postgresql+psycopg://:***@db.invalid/x"),
        (
            "postgresql+psycopg://u:p/q@db.invalid/x",
            "p/q",
            "postgresql+psycopg://u:***@db.invalid/x",
        ),
        (
            "postgresql+psycopg://u:p@db.invalid/x",
            ":p@",
            "postgresql+psycopg://u:***@db.invalid/x",
        ),
    ],
)
def test_check_config_and_the_log_hide_short_and_odd_passwords(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    password: str,
    shown: str,
) -> None:
    """check-config prints the effective config (an empty user name kept the password
    shown); a log line quoting the URL (a ``/`` in the password kept it shown) loses it,
    and the letters of the rest of the line stay."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"database: {{url: '{url}'}}\ndata_dir: {tmp_path}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["check-config", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert password not in out
    assert f"url: {shown}" in out

    buf = io.StringIO()
    configure(level="INFO", fmt="json", secrets=load_settings(cfg).secret_values(), stream=buf)
    try:
        structlog.get_logger().error("db.failed", error=f"password refused at {url} (port 5432)")
    finally:
        structlog.reset_defaults()
    logged = json.loads(buf.getvalue())["error"]
    assert logged == f"password refused at {shown} (port 5432)"
