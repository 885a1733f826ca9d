"""``crypto-monitor api token`` and ``crypto-monitor api openapi``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cryptomon.api.auth import hash_token
from cryptomon.cli import main
from cryptomon.config import load_settings


def test_token_prints_a_token_and_a_config_entry_that_accepts_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The printed entry stores only the hash, and it validates as api.tokens."""
    assert main(["api", "token", "--name", "ci", "--scopes", "read,trade"]) == 0
    out = capsys.readouterr().out
    token = out.splitlines()[0].removeprefix("token: ")
    entries = yaml.safe_load(out.split("\n", 1)[1])
    assert entries == [
        {"name": "ci", "token_sha256": hash_token(token), "scopes": ["read", "trade"]}
    ]
    assert token not in out.split("\n", 1)[1]
    settings = load_settings(data={"api": {"tokens": entries}})
    assert settings.api.tokens[0].name == "ci"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["api", "token", "--scopes", "read,root"], "--scopes 'read,root'"),
        (["api", "token", "--name", "a b"], "--name 'a b'"),
        (["api"], "choose an action"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad arguments print what was wrong and exit 2."""
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_openapi_writes_the_document(tmp_path: Path) -> None:
    """The written document is the OpenAPI 3.1 description of every endpoint."""
    out = tmp_path / "openapi.json"
    assert main(["api", "openapi", "--output", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["openapi"] == "3.1.0"
    assert "/api/v1/anomalies" in doc["paths"]
    assert main(["api", "openapi", "--output", str(tmp_path / "missing" / "x.json")]) == 2


def test_public_bind_without_tokens_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon refuses a public api.host without tokens: exit 2 naming the key."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("api: {host: 0.0.0.0, port: 0}\n")
    assert main(["run", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "api: got" in err
    assert "not a loopback address" in err
    assert "api.tokens" in err
