"""crypto-monitor CLI: check-config output and exit codes for every kind of bad config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cryptomon.cli import build_parser, main
from cryptomon.commands.support import settings_from_args, with_logging


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "config.yaml"
    p.write_text(text)
    return str(p)


def test_check_config_prints_effective_config_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A valid config exits 0 and prints the effective YAML with secrets as ***."""
    cfg = write(
        tmp_path,
        "alerts:\n  channels: [{name: ops, url: 'tgram://123456789:AAHBOTSECRETxxxxxxxxxxxxxxxxxxxxxxxx/1'}]\n"
        "database: {url: 'postgresql+psycopg://me:DBSECRET@h/db'}\n",
    )
    assert main(["check-config", "--config", cfg]) == 0
    out = capsys.readouterr().out
    assert "BOTSECRET" not in out
    assert "DBSECRET" not in out
    doc = yaml.safe_load(out)
    assert doc["alerts"]["channels"][0]["url"] == "***"
    assert doc["trading"]["mode"] == "paper"


def test_check_config_without_config_uses_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --config the built-in defaults are valid."""
    assert main(["check-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["api"]["host"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        # the file-level problems said "got None" (there is no value to show)
        (None, "missing.yaml: got no such file; expected an existing YAML config file"),
        ("api: {port: [1,\n", ":2:1: got invalid YAML; expected valid YAML (expected "),
        ("api: {port: eighty}\n", "api.port: got 'eighty'"),  # wrong type
        ("api: {prot: 80}\n", "api.prot: got 80; expected no such key"),  # unknown key
        (
            "anomaly_detection: {volume_threshold_multiplier: -2}\n",
            "anomaly_detection.volume_threshold_multiplier: got -2; expected greater than 0",
        ),  # impossible value
        ("exchanges: [{name: binance, symbols: ['???']}]\n", "exchanges.0.symbols"),
        # a repeated key replaced the first silently ("config OK" with the first one lost)
        (
            "api:\n  port: 8081\nlogging: {level: INFO}\napi:\n  host: 0.0.0.0\n",
            ":4:1: got 'api'; expected each key once per mapping (first at line 1;",
        ),
        ("api: {port: 1, host: x, port: 2}\n", ":1:25: got 'port'; expected each key once"),
        ("exchanges:\n  - name: a\n    name: b\n", ":3:5: got 'name'; expected each key once"),
        # a URL without a scheme or with an impossible port: "config OK", then a daemon that
        # retried "No scheme supplied" forever (a feed) or failed at the first order (live)
        (
            "exchanges: [{name: simulator, url: notaurl, symbols: [BTC/USDT]}]\n",
            "exchanges.0.url: got 'notaurl'; expected an http(s) URL such as http://",
        ),
        (
            "exchanges: [{name: binance, url: 'http://h:99999', symbols: [BTC/USDT]}]\n",
            "exchanges.0.url: got 'http://h:99999'; expected an http(s) URL such as",
        ),
        ("trading: {live: {url: 'ftp://venue'}}\n", "trading.live.url: got 'ftp://venue';"),
        # "config OK", then the daemon did not start ("Candle interval must be one of ...")
        (
            "exchanges: [{name: binance, symbols: [BTC/USDT], candle_interval: 7x}]\n",
            "exchanges[binance].candle_interval: got '7x'; expected an interval binance "
            "serves: 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d, 3d, 1w, 1M",
        ),
        # an alias used inside its own anchor: a RecursionError traceback (exit 1)
        ("a: &a [*a]\n", "got a recursive alias at a.0; expected YAML whose aliases"),
        ("exchanges: &x [{name: b, symbols: *x}]\n", "at exchanges.0.symbols; expected YAML"),
        ("api: &a {tokens: [*a]}\n", "got a recursive alias at api.tokens.0; expected YAML"),
        # aliases of aliases: nine values nine times over, nine levels (387 million values)
        (
            "l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
            + "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9))
            + "api: {tokens: *l8}\n",
            "got aliases expanding to more than 1000000 values at l6; expected YAML whose",
        ),
    ],
)
def test_bad_config_exits_2_with_one_line_per_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | None, needle: str
) -> None:
    """Each bad-config kind exits 2 and names the key path, the value and the expectation."""
    cfg = str(tmp_path / "missing.yaml") if text is None else write(tmp_path, text)
    assert main(["check-config", "--config", cfg]) == 2
    err = capsys.readouterr().err
    assert "invalid configuration" in err
    assert needle in err
    assert "got None" not in err
    assert "Traceback" not in err


def test_a_directory_or_a_file_in_the_wrong_place_is_named_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--config naming a directory said "got None; expected a readable file (Is a
    directory)"; data_dir naming a file said "expected a writable directory (File exists)"."""
    assert main(["check-config", "--config", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path}: got a directory; expected a readable YAML config file" in err, err
    a_file = tmp_path / "journal"
    a_file.write_text("")
    cfg = write(tmp_path, f"data_dir: {a_file}\n")
    assert main(["check-config", "--config", cfg]) == 2
    err = capsys.readouterr().err
    # the path as found (a long one, as under pytest-xdist's tmp dirs, is shortened)
    assert f"data_dir: got {str(a_file)!r}"[:70] in err, err
    assert "; expected a writable directory (a file is there)" in err, err
    assert "File exists" not in err


def test_merge_keys_may_override_merged_values(tmp_path: Path) -> None:
    """A YAML merge (``<<: *base``) followed by a key it also holds is an override, not a
    repeated key."""
    from cryptomon.config.loader import read_yaml

    path = write(tmp_path, "x: &b {port: 1, host: a}\napi:\n  <<: *b\n  port: 2\n")
    assert read_yaml(path)["api"] == {"port": 2, "host": "a"}


def test_run_with_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The daemon refuses a bad config the same way, before starting anything."""
    cfg = write(tmp_path, "shutdown_timeout_s: -1\n")
    assert main(["--config", cfg]) == 2
    assert "shutdown_timeout_s" in capsys.readouterr().err


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """Unknown options and bad choices are usage errors with exit status 2."""
    with pytest.raises(SystemExit) as exc:
        main(["check-config", "--log-format", "xml"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--nope"], "crypto-monitor: unrecognized arguments: --nope"),
        (["nope"], "crypto-monitor: unknown command 'nope' (commands: run, api, backtest"),
        (["demoo"], "did you mean 'demo'?; a command's options go after its name"),
        (["--duration", "1"], "crypto-monitor: unknown command '1' (commands: run,"),
        (["backtest", "--workers", "abc"], "crypto-monitor backtest: argument --workers: invalid"),
        (["db", "nope"], "crypto-monitor db: argument ACTION: invalid choice: 'nope'"),
        (["download"], "crypto-monitor download: the following arguments are required"),
        (["demo", "--port", "x"], "crypto-monitor demo: argument --port: invalid int value"),
    ],
)
def test_argparse_errors_are_one_line(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An argument argparse refuses was the usage block (up to 10 lines) then the error; now
    it is one line naming the argument and where to look, exit 2, like every other bad
    argument."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err
    assert err.rstrip().endswith("--help)")


def test_module_entry_point_reports_without_traceback(tmp_path: Path) -> None:
    """`python -m cryptomon check-config` on a bad file prints problems, no traceback."""
    cfg = write(tmp_path, "trading: {mode: yolo, risk_percentage: 0}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "cryptomon", "check-config", "--config", cfg],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "trading.mode" in proc.stderr
    assert "trading.risk_percentage" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_log_options_override_the_frozen_logging_section(tmp_path: Path) -> None:
    """--log-level/--log-format replace the logging section in a copy; other keys stay."""
    cfg = write(tmp_path, "logging: {level: info, format: console}\napi: {port: 9001}\n")
    args = build_parser().parse_args(["check-config", "-c", cfg, "--log-level", "debug"])
    settings = settings_from_args(args)
    assert (settings.logging.level, settings.logging.format) == ("DEBUG", "console")
    assert settings.api.port == 9001
    quiet = with_logging(settings, fmt="json")
    assert (quiet.logging.level, quiet.logging.format) == ("DEBUG", "json")
    assert settings.logging.format == "console"


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["api"], "crypto-monitor api: choose an action: token, openapi"),
        (["db"], "crypto-monitor db: choose an action: upgrade, downgrade, current, history"),
    ],
)
def test_a_command_without_its_action_is_one_line(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`crypto-monitor api` / `db` without an action printed the usage block (4 lines) before
    the error; like every other usage error it is one line pointing at --help, exit 2."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"{line} (see crypto-monitor {argv[0]} --help)"


def test_a_secret_file_that_is_no_secret_is_refused_unread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A `*_file` naming something far larger than a secret (a log, `/dev/zero`: read whole,
    the daemon ran out of memory) is one line naming the key and the size expected."""
    big = tmp_path / "app.log"
    big.write_text("a" * 200_000)
    cfg = write(tmp_path, f"api: {{tokens: [{{name: a, token_file: '{big}'}}]}}\n")
    assert main(["check-config", "--config", cfg]) == 2
    err = capsys.readouterr().err
    assert f"token_file: secret file {str(big)!r} holds more than 65536 bytes; expected " in err
    assert "aaaa" not in err


def test_download_url_that_is_no_http_url_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`download --url notaurl` was exit 1 "ExchangeError: binance GET notaurl/api/v3/..."
    after connecting; a bad argument is exit 2, one line naming it."""
    argv = ["download", "--exchange", "binance", "--symbol", "BTC/USDT", "--since", "2026-01-01"]
    assert main([*argv, "--url", "notaurl"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "crypto-monitor: --url: expected an http(s) URL such as http://127.0.0.1:8901, "
        "got 'notaurl'"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["download", "--exchange", "binance", "--symbol", "ALT", "--quote", "BTC", "--from-file"],
        ["backtest", "--symbols", "ALT/BTC"],
    ],
)
def test_a_database_that_does_not_answer_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """`download --from-file` and `backtest` from the database printed the whole traceback
    of the FatalError when the database refused the connection; they now print its message
    on one line (password hidden) and exit 1, as `trades` and `db` do."""
    data = tmp_path / "ALT_BTC-1m.json"
    data.write_text("[[1510000000000, 1.0, 1.0, 1.0, 1.0, 5.0]]")
    cfg = write(tmp_path, "database: {url: 'postgresql+psycopg://bob:pw-77ab@127.0.0.1:1/cm'}\n")
    full = [*argv, str(data)] if argv[0] == "download" else argv
    assert main([*full, "--config", cfg]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"crypto-monitor {argv[0]}: database postgresql+psycopg://bob:***@"), err
    assert "is unreachable" in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert "pw-77ab" not in err


def test_a_daemon_that_cannot_start_ends_with_one_plain_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The daemon whose database does not answer exits 1; after its log lines (JSON when
    stderr is not a terminal) the last line says plainly why, password hidden."""
    cfg = write(
        tmp_path,
        "database: {url: 'postgresql+psycopg://bob:pw-77ab@127.0.0.1:1/cm', "
        "connect_timeout_s: 2}\n",
    )
    assert main(["--config", cfg, "--log-format", "json"]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(
        "crypto-monitor: the daemon could not start: database: database "
        "postgresql+psycopg://bob:***@"
    ), last
    assert "is unreachable" in last
    assert "pw-77ab" not in last


@pytest.mark.parametrize(
    ("extra", "warned"),
    [
        ("", {"daemon.no_exchanges", "api.no_access"}),
        (
            "exchanges: [{name: binance, symbols: [BTC-USDT]}]\n"
            "api: {tokens: [{name: ops, token: 'a-token-of-some-length', scopes: [read]}]}\n",
            set(),
        ),
        ("bus: {role: brain}\napi: {enabled: false}\n", set()),
    ],
)
def test_a_daemon_that_would_watch_nothing_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, warned: set[str]
) -> None:
    """`crypto-monitor` without a config (or one without exchanges) started, logged
    daemon.running and watched nothing, its API refusing every request (no token, no
    public_read) without a word; it now warns of both at start. A brain (its data comes over
    NATS) and a configured daemon are not warned. The database refuses, so the start ends."""
    cfg = write(
        tmp_path,
        "database: {url: 'postgresql+psycopg://bob:pw@127.0.0.1:1/cm', connect_timeout_s: 2}\n"
        + extra,
    )
    assert main(["run", "--config", cfg, "--log-format", "json"]) == 1
    err = capsys.readouterr().err
    events = {line for line in ("daemon.no_exchanges", "api.no_access") if line in err}
    assert events == warned, err
    if warned:
        assert "config.example.yaml" in err
        assert "crypto-monitor api token" in err


def test_check_config_warns_of_a_daemon_that_would_watch_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config said "config OK" for a config with no exchange and an API nobody can
    use; it says so too (still exit 0: such a config is valid), as `run` warns at start. The
    example config lists exchanges but no token: only the API warning."""
    assert main(["check-config", "--config", write(tmp_path, "api: {port: 9000}\n")]) == 0
    err = capsys.readouterr().err
    assert "warning: no enabled exchange: the daemon watches nothing" in err
    assert "warning: api.tokens is empty and api.public_read is off" in err
    assert err.rstrip().endswith("config OK")
    example = Path(__file__).resolve().parents[2] / "config.example.yaml"
    assert main(["check-config", "--config", str(example)]) == 0
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1, warnings
    assert "api.tokens is empty" in warnings[0]


def test_a_role_that_cannot_reach_nats_says_so_in_one_line_without_its_password(
    tmp_path: Path,
) -> None:
    """A collector whose NATS (a closed port) is unreachable at start: exit 1 with one line
    naming NATS and bus.nats_url, no traceback, and the URL's password hidden on that line
    too (the log lines hid it; the plain stderr line printed it)."""
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cryptomon",
            "--log-level",
            "CRITICAL",
            "run",
            "--role",
            "collector",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(repo),
            "CRYPTOMON_BUS__NATS_URL": "nats://alice:NATSPW99@127.0.0.1:4999",
        },
        cwd=tmp_path,
    )
    assert out.returncode == 1, out.stderr
    assert "NATSPW99" not in out.stderr + out.stdout
    lines = [line for line in out.stderr.splitlines() if line.startswith("crypto-monitor:")]
    assert len(lines) == 1, out.stderr
    assert "NATS at nats://alice:***@127.0.0.1:4999" in lines[0]
    assert "bus.nats_url" in lines[0]
    assert "Traceback" not in out.stderr


def test_check_config_warns_of_trading_on_markets_no_feed_watches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trading.exchange or trading.symbols that no enabled exchange feeds was "config OK"
    and a daemon that never traded (no price: every signal dropped); each is a warning line
    (still exit 0: an exchange may be disabled for a while)."""
    text = (
        "exchanges:\n"
        "  - {name: binance, symbols: [BTC/USDT, ETH/USDT]}\n"
        "  - {name: kraken, enabled: false, symbols: [BTC/USD]}\n"
        "api: {public_read: true}\n"
    )
    for trading, line in (
        (
            "trading: {exchange: kraken}\n",
            "warning: trading.exchange 'kraken' is not an enabled exchange (enabled: binance): "
            "nothing is traded",
        ),
        (
            "trading: {exchange: binance, symbols: [BTC/USDT, SOL/USDT]}\n",
            "warning: trading.symbols SOL-USDT: no enabled exchange watches them (binance: "
            "BTC-USDT, ETH-USDT): they are never traded",
        ),
    ):
        assert main(["check-config", "--config", write(tmp_path, text + trading)]) == 0
        err = capsys.readouterr().err
        warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
        assert warnings == [line], err
    assert main(["check-config", "--config", write(tmp_path, text + "trading: {}\n")]) == 0
    assert "warning:" not in capsys.readouterr().err


@pytest.mark.parametrize("command", [["db", "history"], ["check-config"]])
def test_output_to_a_reader_that_has_gone_is_no_traceback(
    tmp_path: Path, command: list[str]
) -> None:
    """`crypto-monitor db history | head -1`: the reader closes the pipe before the command
    has written everything. The command ends quietly (exit 1, nothing on stderr), not with
    a BrokenPipeError traceback."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (head) has gone before the first write
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "cryptomon", *command],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp_path,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stderr
