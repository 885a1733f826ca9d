"""Environment overrides: bad JSON, unknown sections and names, non-UTF-8 files (issue 15.7)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cryptomon.cli import main
from cryptomon.config import load_settings
from cryptomon.errors import ConfigError


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("CRYPTOMON_")}
    return subprocess.run(
        [sys.executable, "-m", "cryptomon", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**base, **env},
    )


@pytest.mark.parametrize(
    ("name", "value", "needle", "shown"),
    [
        ("CRYPTOMON_API__CORS_ORIGINS", "not json", "expected JSON for api.cors_origins", None),
        # exchanges[].proxy is a secret (credentials in the URL): the raw value is hidden
        ("CRYPTOMON_EXCHANGES", "oops", "expected JSON for exchanges", "***"),
    ],
)
def test_env_override_that_is_not_json_is_one_line_and_exit_2(
    name: str, value: str, needle: str, shown: str | None
) -> None:
    """A list/mapping override that is not JSON names the variable in one line and exits 2."""
    proc = run_cli(["check-config"], {name: value})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if name in line]
    assert len(lines) == 1
    assert needle in lines[0]
    assert repr(shown or value) in lines[0]


def test_non_utf8_config_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """A config file that is not UTF-8 is named with the offending byte; exit 2, no traceback."""
    cfg = tmp_path / "latin1.yaml"
    cfg.write_bytes("api: {host: 'caf\u00e9'}\n".encode("latin-1"))
    proc = run_cli(["check-config", "--config", str(cfg)], {})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{cfg}: got 'byte 0xe9 at offset 16'; expected a UTF-8 text file" in proc.stderr


def test_unknown_section_in_env_name_is_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """CRYPTOMON_<X>__KEY with an unknown section X fails like an unknown key in the file."""
    monkeypatch.setenv("CRYPTOMON_TRADIN__MODE", "live")
    assert main(["check-config"]) == 2
    err = capsys.readouterr().err
    assert "CRYPTOMON_TRADIN__MODE: got 'tradin'; expected a known section" in err
    assert "anomaly_detection, api" in err


def test_unknown_key_in_env_section_is_an_error() -> None:
    """An unknown key under a known section is reported with the allowed keys."""
    with pytest.raises(ConfigError) as exc:
        load_settings(environ={"CRYPTOMON_API__PROT": "80"})
    assert "api.prot: got '80'; expected no such key (allowed:" in str(exc.value)


def test_env_cannot_index_into_lists() -> None:
    """A variable that walks into a list says to give the list whole, as JSON."""
    with pytest.raises(ConfigError, match="give exchanges whole, as JSON"):
        load_settings(environ={"CRYPTOMON_EXCHANGES__0__NAME": "binance"})


def test_unknown_names_get_one_warning_line_and_tooling_names_none() -> None:
    """Other unknown CRYPTOMON_* names give one warning listing them; TEST_/CI_ are ignored."""
    lines: list[str] = []
    env = {
        "CRYPTOMON_VERBOSE": "1",
        "CRYPTOMON_PORT": "9",
        "CRYPTOMON_TEST_DATABASE_URL": "x",
        "CRYPTOMON_CI_RUN": "1",
        "HOME": "/root",
    }
    s = load_settings(environ=env, warn=lines.append)
    assert s.api.port == 8080
    assert len(lines) == 1
    assert "CRYPTOMON_PORT, CRYPTOMON_VERBOSE" in lines[0]
    assert "CRYPTOMON_TEST_DATABASE_URL" not in lines[0]
    assert "CRYPTOMON_CI_RUN" not in lines[0]
    load_settings(environ={"CRYPTOMON_TEST_X": "1", "CRYPTOMON_CI__Y": "2"}, warn=lines.append)
    assert len(lines) == 1


def test_unknown_name_warning_reaches_stderr_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the CLI the warning is one stderr line and the config still loads."""
    monkeypatch.setenv("CRYPTOMON_LOGLEVEL", "debug")
    assert main(["check-config"]) == 0
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "CRYPTOMON_LOGLEVEL" in line] == [
        line for line in err.splitlines() if line.startswith("crypto-monitor: warning")
    ]
    assert "config OK" in err


def test_env_json_and_nested_values_reach_their_keys() -> None:
    """Lists, whole sections and dict entries are read as JSON or plain values by the schema."""
    s = load_settings(
        data={"api": {"port": 9000}},
        environ={
            "CRYPTOMON_API__CORS_ORIGINS": '["https://a.example"]',
            "CRYPTOMON_ANOMALY_DETECTION__WHALE_NOTIONAL__USDT": "5",
            "CRYPTOMON_LOGGING": '{"level": "debug"}',
            "cryptomon_api__host": "localhost",
        },
    )
    assert s.api.cors_origins == ["https://a.example"]
    assert s.api.port == 9000
    assert s.api.host == "localhost"
    assert s.anomaly_detection.whale_notional == {"USDT": 5.0}
    assert s.logging.level == "DEBUG"


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        (
            "CRYPTOMON_API__PORT",
            "abc",
            "api.port: got 'abc'; expected a valid integer, unable to parse string as an "
            "integer (from the environment: CRYPTOMON_API__PORT)",
        ),
        (
            "CRYPTOMON_EXCHANGES",
            '[{"name": "binance", "symbols": ["BTC/USDT"], "subscriptions": ["tradez"]}]',
            "exchanges.0.subscriptions.0: got 'tradez'; expected 'trades', 'orderbook', "
            "'ticker', 'candles', 'funding', 'liquidations' or 'open_interest' (from "
            "the environment: CRYPTOMON_EXCHANGES)",
        ),
    ],
)
def test_a_bad_value_from_the_environment_names_its_variable(
    tmp_path: Path, name: str, value: str, line: str
) -> None:
    """``api.port: got 'abc'`` sent the reader to a config file whose port was fine: the value
    came from a variable. The line now names it; a bad value in the file is unchanged."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("api: {port: 8080}\ntrading: {max_position_size: -1}\n")
    proc = run_cli(["check-config", "--config", str(cfg)], {name: value})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert f"  {line}" in lines, proc.stderr
    assert "  trading.max_position_size: got -1; expected greater than 0" in lines, proc.stderr
