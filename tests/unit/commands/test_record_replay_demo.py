"""record, replay and demo command lines: bad arguments exit 2 with a clear message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cryptomon.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_replay_bad_speed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--speed fast is refused naming the accepted forms."""
    code, err = run(capsys, "replay", "--exchange", "binance", str(tmp_path), "--speed", "fast")
    assert code == 2
    assert "--speed" in err
    assert "1x" in err


@pytest.mark.parametrize("speed", ["infx", "nanx", "1e400x", "1e3x", " 2x", "1_0x"])
def test_replay_speed_outside_the_config_pattern(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, speed: str
) -> None:
    """--speed infx passed the command's check (float("inf") > 0) and then failed the
    replay_speed pattern of the exchange config: a pydantic ValidationError traceback, exit
    1. Now the command accepts exactly what the config does: one line, exit 2."""
    recording = tmp_path / "BINANCE.0"
    recording.write_text("")
    code, err = run(capsys, "replay", "--exchange", "binance", str(recording), "--speed", speed)
    assert code == 2, err
    assert f"--speed: expected max or a positive multiple such as 1x or 10x, got {speed!r}" in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_replay_unknown_exchange(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """An unknown exchange lists valid names and a close match."""
    code, err = run(capsys, "replay", "--exchange", "krakn", str(tmp_path / "x"))
    assert code == 2
    assert "kraken" in err
    assert "'krakn'" in err


def test_replay_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A recording file that does not exist is named in the error."""
    code, err = run(capsys, "replay", "--exchange", "binance", str(tmp_path / "BINANCE.0"))
    assert code == 2
    assert "BINANCE.0" in err
    assert "not found" in err


def test_replay_of_another_exchanges_files_names_the_recording(
    capsys: pytest.CaptureFixture[str], shared_data: Path, tmp_path: Path
) -> None:
    """BINANCE.* files replayed as --exchange binance_futures failed inside cryptofeed
    ("Premium Index Symbols only allowed on Candle data feed", exit 1); the command now says
    whose recording the files are, before anything starts. Renamed files are left alone."""
    files = [str(shared_data / "BINANCE.0"), str(shared_data / "BINANCE.ws.1.0")]
    code, err = run(capsys, "replay", "--exchange", "binance_futures", *files)
    assert code == 2, err
    assert "--exchange binance_futures" in err
    assert "BINANCE recording" in err
    assert "--exchange binance" in err
    assert len(err.strip().splitlines()) == 1, err
    specs = tmp_path / "instruments.BINANCE.json"  # the specs `record` saves beside them
    specs.write_text("{}")
    code, err = run(capsys, "replay", "--exchange", "okx", *files, str(specs))
    assert code == 2, err
    assert "BINANCE recording" in err


def test_record_needs_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """record without --config says it needs one."""
    code, err = run(capsys, "record", "--out", str(tmp_path))
    assert code == 2
    assert "--config" in err


def test_record_bad_duration(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A non-positive --duration is refused."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("exchanges: []\n")
    code, err = run(
        capsys, "record", "--config", str(cfg), "--out", str(tmp_path), "--duration", "0"
    )
    assert code == 2
    assert "--duration" in err


def test_a_nan_duration_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--duration nan passed the "<= 0" check: record died in asyncio's call_later with a
    ValueError traceback, demo stopped at once with exit 0; now both are one line, exit 2."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("exchanges: []\n")
    for argv in (
        ["record", "--config", str(cfg), "--out", str(tmp_path), "--duration", "nan"],
        ["demo", "--port", "0", "--duration", "nan"],
    ):
        code, err = run(capsys, *argv)
        assert code == 2, err
        assert "--duration: expected a positive, finite number of seconds, got nan" in err
        assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("duration", ["inf", "Infinity", "1e400", "-inf"])
def test_an_infinite_duration_is_refused(tmp_path: Path, duration: str) -> None:
    """``demo --duration inf`` passed the "> 0" check and ran forever (record too): the real
    command line refuses it in one line, exit 2, at once."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("exchanges: []\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    for argv in (
        ["demo", "--port", "0", f"--duration={duration}"],
        ["record", "--config", str(cfg), "--out", str(tmp_path), f"--duration={duration}"],
    ):
        try:
            done = subprocess.run(
                [sys.executable, "-m", "cryptomon", *argv],
                check=False,
                capture_output=True,
                text=True,
                timeout=30,
                env=env,
            )
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{argv[0]} --duration {duration} ran on") from None
        assert done.returncode == 2, done.stderr[-2000:]
        assert "--duration: expected a positive, finite number of seconds" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr[-2000:]


def test_record_without_live_exchange(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A config without any enabled live exchange has nothing to record: exit 2."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("exchanges: []\n")
    code, err = run(capsys, "record", "--config", str(cfg), "--out", str(tmp_path / "o"))
    assert code == 2
    assert "no enabled live exchange" in err


def test_record_out_that_cannot_be_created(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An --out directory that cannot be made (its parent is a file) is one line and exit 2,
    not a traceback from mkdir; nothing is connected before that."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "exchanges:\n  - {name: simulator, url: 'http://127.0.0.1:9', symbols: [BTC-USDT]}\n"
    )
    parent = tmp_path / "a-file"
    parent.write_text("not a directory\n")
    out = parent / "rec"
    code, err = run(capsys, "record", "--config", str(cfg), "--out", str(out), "--duration", "1")
    assert code == 2
    assert f"--out: cannot create the directory {str(out)!r}" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_demo_bad_duration_and_port(capsys: pytest.CaptureFixture[str]) -> None:
    """demo refuses a non-positive duration and an out-of-range port."""
    code, err = run(capsys, "demo", "--duration", "-1")
    assert code == 2
    assert "--duration" in err
    code, err = run(capsys, "demo", "--port", "70000")
    assert code == 2
    assert "--port" in err


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A missing required argument (replay without a file) is an argparse error, exit 2."""
    with pytest.raises(SystemExit) as info:
        main(["replay"])
    assert info.value.code == 2
    assert "FILE" in capsys.readouterr().err


@pytest.mark.asyncio
async def test_demo_summary_names_anomaly_kinds_plainly(capsys: pytest.CaptureFixture[str]) -> None:
    """The summary line printed when the demo stops named the kinds by the enum's repr
    (``anomalies={<AnomalyKind.WHALE: 'whale'>: 1}``); it names them as everywhere else."""
    from cryptomon.commands.demo import _print_summary, _Tally
    from cryptomon.hub import Hub
    from cryptomon.kinds import AnomalyKind
    from tests.stubs import anomaly

    hub = Hub()
    await hub.start()
    try:
        tally = _Tally(hub)
        hub.publish(anomaly(kind=AnomalyKind.WHALE))  # what the detectors publish
        hub.publish(anomaly(kind=AnomalyKind.WHALE))
        hub.publish(anomaly(kind=AnomalyKind.PRICE_CHANGE))
        await hub.join()
    finally:
        await hub.stop()
    _print_summary(tally.summary(), as_json=False)
    out = capsys.readouterr().out
    assert "anomalies={'price_change': 1, 'whale': 2}" in out, out
    assert "AnomalyKind" not in out


def test_replay_whose_pipeline_did_not_start_prints_no_summary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_data: Path
) -> None:
    """A replay whose daemon could not start (its database refuses connections) exited 1
    but printed "replayed 0 messages of binance in 0.007s: ..." as if it had run; it now
    says on one line that nothing was replayed and why to look at the log."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("database: {url: 'postgresql+psycopg://bob:pw@127.0.0.1:1/cm'}\n")
    files = [str(shared_data / n) for n in ("BINANCE.0", "BINANCE.http.0.0", "BINANCE.ws.1.0")]
    argv = ["replay", "--exchange", "binance", *files, "--config", str(cfg)]
    for extra in ([], ["--json"]):
        assert main([*argv, *extra]) == 1
        out, err = capsys.readouterr()
        assert out == "", out
        assert "crypto-monitor replay: nothing was replayed: the pipeline did not start" in err


def test_replay_without_the_http_file_names_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_data: Path
) -> None:
    """A BINANCE recording replayed without its BINANCE.http.* file (the REST book
    snapshots) reported only "parse errors=177". The command now names the file and where
    it is expected: before starting when it lies beside BINANCE.0 but was not given, in the
    summary when there is none."""
    beside = [str(shared_data / "BINANCE.0"), str(shared_data / "BINANCE.ws.1.0")]
    code, err = run(capsys, "replay", "--exchange", "binance", *beside)
    assert code == 2, err
    assert str(shared_data / "BINANCE.http.0.0") in err
    assert "were not given" in err

    copied = tmp_path / "rec"
    copied.mkdir()
    for name in ("BINANCE.0", "BINANCE.ws.1.0"):  # the ws file only, not the http one
        (copied / name).write_bytes((shared_data / name).read_bytes())
    argv = ["replay", "--exchange", "binance", str(copied / "BINANCE.0")]
    for extra in ([], ["--json"]):
        assert main([*argv, str(copied / "BINANCE.ws.1.0"), *extra]) == 0
        out, err = capsys.readouterr()
        (warning,) = [line for line in err.splitlines() if "REST" in line]
        assert warning.startswith("crypto-monitor replay: warning: 177 REST request(s)"), warning
        assert "no BINANCE.http.* file" in warning
        assert f"beside BINANCE.0 in {copied}" in warning
        assert "api/v3/depth" in warning  # the first request not answered
        if not extra:
            assert "parse errors=177 (177 without a recorded REST answer" in out, out


def test_replay_of_a_folder_replays_its_files_of_the_exchange(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_data: Path
) -> None:
    """``replay --exchange binance rec/`` (the folder ``record --out rec/`` wrote) said
    "recording file(s) not found: rec/" of a folder that is there: a folder now stands for
    its files of that exchange (``BINANCE.*``, not ``BINANCE_FUTURES.*``), as ``evaluate``
    takes folders; a folder without them says which recordings it holds."""
    code = main(["replay", "--exchange", "binance", str(shared_data), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    whole = main(
        ["replay", "--exchange", "binance", "--json"]
        + [str(shared_data / n) for n in ("BINANCE.0", "BINANCE.http.0.0", "BINANCE.ws.1.0")]
    )
    assert whole == 0
    summary = json.loads(out.splitlines()[-1])
    expected = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["messages"] == expected["messages"] > 0
    assert summary["events"] == expected["events"]

    empty = tmp_path / "rec"
    empty.mkdir()
    (empty / "KRAKEN.0").write_text("")
    code, err = run(capsys, "replay", "--exchange", "binance", str(empty))
    assert code == 2
    assert err.strip() == (
        f"crypto-monitor: {empty} holds no BINANCE.* recording files (it holds: KRAKEN)"
    ), err


@pytest.mark.parametrize(
    ("name", "text", "found"),
    [
        ("notes.txt", "hello\n", "line 1 is not 'URL -> TIMESTAMP: JSON': 'hello'"),
        ("config.yaml", "exchanges:\n  - name: binance\n", "line 1 is not"),
        ("BINANCE.0", "", "the file is empty"),
        ("BINANCE.0", "https://x/api -> 1.5: {}\n", "it has no 'configuration:' line"),
    ],
)
def test_replay_of_a_file_that_is_not_a_recording(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, text: str, found: str
) -> None:
    """A text or YAML file given to replay was reported as "invalid configuration" under
    ``exchanges[binance].files`` (and a REST-only EXCHANGE.0 the same); it is now one line
    naming the file, what a recording is and what the file holds instead, exit 2, with or
    without --exchange."""
    path = tmp_path / name
    path.write_text(text)
    ws = tmp_path / "BINANCE.ws.1.0"
    ws.write_text("wss://x\n")
    for exchange in (["--exchange", "binance"], []):
        code, err = run(capsys, "replay", *exchange, str(path), str(ws))
        assert code == 2, err
        assert err.startswith(f"crypto-monitor: {path}: expected a cryptofeed raw-data"), err
        assert found in err, err
        assert "invalid configuration" not in err
        assert len(err.strip().splitlines()) == 1, err


def test_replay_without_the_websocket_files_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_data: Path
) -> None:
    """``replay --exchange binance BINANCE.0`` (no BINANCE.ws.* file) "succeeded" with 0
    messages replayed; it is refused, naming the websocket files lying beside it and the
    folder to give instead, or that there are none. The same for ws files without their
    BINANCE.0."""
    code, err = run(capsys, "replay", "--exchange", "binance", str(shared_data / "BINANCE.0"))
    assert code == 2, err
    assert "no websocket traffic given: the recording's BINANCE.ws.* files are needed" in err
    assert str(shared_data / "BINANCE.ws.1.0") in err
    assert f"give the folder ({shared_data})" in err
    assert len(err.strip().splitlines()) == 1, err

    alone = tmp_path / "BINANCE.0"
    alone.write_bytes((shared_data / "BINANCE.0").read_bytes())
    code, err = run(capsys, "replay", "--exchange", "binance", str(alone))
    assert code == 2, err
    assert "BINANCE.ws.* files are needed (none was given, none lies beside" in err

    code, err = run(capsys, "replay", str(shared_data / "BINANCE.ws.1.0"))
    assert code == 2, err
    assert "no BINANCE.0 given" in err
    assert str(shared_data / "BINANCE.0") in err


def test_replay_infers_the_exchange_from_the_file_names(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, shared_data: Path
) -> None:
    """``--exchange`` was required even of BINANCE.* files; the files' names now say it when
    they name one exchange known to cryptofeed (--exchange still chooses or overrides).
    Files of two exchanges, or names of none, are one line asking for --exchange."""
    files = [str(shared_data / n) for n in ("BINANCE.0", "BINANCE.http.0.0", "BINANCE.ws.1.0")]
    code = main(["replay", *files, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["exchange"] == "binance"
    assert summary["messages"] > 0

    mixed = [*files, str(shared_data / "KRAKEN.ws.48.0")]
    code, err = run(capsys, "replay", *mixed)
    assert code == 2, err
    assert "recordings of 2 exchanges (BINANCE, KRAKEN): give --exchange NAME" in err
    code, err = run(capsys, "replay", str(shared_data))
    assert code == 2, err
    assert "(BINANCE, BINANCE_FUTURES, BITFINEX," in err

    renamed = tmp_path / "rec.0"
    renamed.write_bytes((shared_data / "BINANCE.0").read_bytes())
    code, err = run(capsys, "replay", str(renamed))
    assert code == 2, err
    assert "--exchange NAME is needed: the file names (rec.0) name no exchange" in err
    assert len(err.strip().splitlines()) == 1, err
