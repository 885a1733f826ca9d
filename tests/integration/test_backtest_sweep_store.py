"""A sweep's variants as stored backtest runs, on a SQLite file and on PostgreSQL: each is
kept with its parameters (the swept overrides included), summary and trades, linked by its
sweep's id and rank; the command stored with it runs it again to the same bytes."""

from __future__ import annotations

import asyncio
import json
import shlex
from pathlib import Path

import pytest

from cryptomon.cli import main
from cryptomon.config import DatabaseConfig
from cryptomon.store.db import Database
from cryptomon.store.history import BacktestRuns
from tests.unit.backtest.conftest import random_walk

SL = "trading.stop_loss_percentage"
TP = "trading.take_profit_percentage"


def candle_file(folder: Path, n: int = 1440) -> Path:
    """A day of generated minutes in freqtrade's JSON layout (ms open times)."""
    s = random_walk(n)
    rows = [
        [int(s.ts[i] * 1000), s.open[i], s.high[i], s.low[i], s.close[i], s.volume[i]]
        for i in range(len(s))
    ]
    path = folder / "ALT_BTC-1m.json"
    path.write_text(json.dumps(rows))
    return path


def config_file(folder: Path, url: str) -> Path:
    path = folder / "config.yaml"
    path.write_text(
        f'database: {{url: "{url}"}}\n'
        "trading:\n"
        "  min_signal_strength: 0.5\n"
        "  paper: {quote_currency: BTC, starting_balance: 10000.0, min_notional: 1.0}\n"
    )
    return path


def run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


async def stored(url: str, sweep: int) -> tuple[list[dict], list[dict]]:  # type: ignore[type-arg]
    db = Database(DatabaseConfig(url=url))
    await db.start()
    try:
        runs = BacktestRuns(db=db)
        listed = await runs.list_runs(sweep=sweep)
        details = [await runs.get_run(r["id"]) for r in listed]
        return listed, [d for d in details if d is not None]
    finally:
        await db.stop()


def test_a_sweep_stores_every_variant_ranked_and_each_reruns_identically(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, db_url: str
) -> None:
    """Every variant is a stored run (overrides in its params, its trades, no report: none
    was asked for), listed by its sweep best first; the command stored with it (``--set``
    the overrides) re-runs it to the byte-identical ``--json`` summary and the same digest."""
    data, config = candle_file(tmp_path), config_file(tmp_path, db_url)
    argv = ["backtest", str(data), "--config", str(config), "--start", "2023-11-14T02:00"]
    code, out, err = run(
        capsys, [*argv, "--json", "--sweep", f"{SL}=1,3", "--sweep", f"{TP}=2,6", "--workers", "2"]
    )
    assert code == 0, err
    doc = json.loads(out.splitlines()[-1])
    variants = doc["variants"]
    assert len(variants) == 4
    ids = [v["id"] for v in variants]
    assert doc["sweep"] == ids[0]  # a sweep is named by its best variant's run
    assert len(set(ids)) == 4

    listed, details = asyncio.run(stored(db_url, doc["sweep"]))
    assert [r["id"] for r in listed] == ids
    assert [r["sweep_rank"] for r in listed] == [1, 2, 3, 4]
    assert {r["sweep_id"] for r in listed} == {doc["sweep"]}
    assert [r["overrides"] for r in listed] == [v["overrides"] for v in variants]
    assert [r["summary"] for r in listed] == [v["summary"] for v in variants]
    for variant, run_ in zip(variants, details, strict=True):
        assert run_["has_report"] is False
        assert run_["digest"] == variant["digest"]
        assert len(run_["trades"]) == run_["summary"]["trades"]
        params = run_["params"]
        assert params["overrides"] == variant["overrides"]
        assert params["source"] == str(data)
        assert params["start"] == 1699927200.0  # the sweep's range, not the whole file
        assert params["trading"]["stop_loss_percentage"] == variant["overrides"][SL]
        assert params["trading"]["take_profit_percentage"] == variant["overrides"][TP]
    pnls = [r["summary"]["pnl"] for r in listed]
    assert pnls == sorted(pnls, reverse=True)
    assert len({r["digest"] for r in details}) > 1  # the variants differ
    assert all(r["summary"]["trades"] > 0 for r in details)

    for variant, run_ in zip(variants, details, strict=True):
        command = shlex.split(run_["params"]["command"])
        assert command[:2] == ["crypto-monitor", "backtest"]
        assert f"--set={SL}={variant['overrides'][SL]}" in command
        code, out, err = run(capsys, [*command[1:], "--json", "--no-store"])
        assert code == 0, err
        again = json.loads(out.splitlines()[-1])
        assert json.dumps(again["summary"]) == json.dumps(variant["summary"])
        assert again["digest"] == variant["digest"]
        assert again["params"]["overrides"] == variant["overrides"]
        assert again["params"]["command"] == run_["params"]["command"]


def test_the_sweep_table_names_each_variants_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, sqlite_url: str
) -> None:
    """The printed table has each variant's run id and its overrides (``--set`` ones
    included) as ``--set`` options, and says where the sweep is listed; with --no-store
    nothing is kept and it says so."""
    data, config = candle_file(tmp_path, 720), config_file(tmp_path, sqlite_url)
    argv = ["backtest", str(data), "--config", str(config), "--sweep", f"{SL}=1,3"]
    argv += ["--set", f"{TP}=4.5"]
    code, out, err = run(capsys, [*argv, "--workers", "2"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["rank", "run"]
    rows = lines[1:3]
    runs = sorted(int(r.split()[1]) for r in rows)
    assert runs == [1, 2]
    assert {r.split("  ")[-1].strip() for r in rows} == {
        f"--set={TP}=4.5 --set={SL}=1",
        f"--set={TP}=4.5 --set={SL}=3",
    }
    best = int(rows[0].split()[1])
    assert f"sweep {best} stored" in out
    assert f"GET /api/v1/backtests?sweep={best}" in out
    assert "crypto-monitor backtest" in out  # how to re-run one (e.g. with --report)

    code, out, err = run(capsys, [*argv, "--workers", "2", "--no-store"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["rank", "run"]
    assert all(r.split()[1] == "-" for r in lines[1:3])
    assert "not stored (--no-store)" in out
    listed, _ = asyncio.run(stored(sqlite_url, best))
    assert len(listed) == 2  # the second sweep added nothing


def test_the_sweep_table_prints_the_warnings_of_its_variants(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A variant whose paper tick is above the market's price (every quote off the market:
    on the freqtrade ALT/BTC series no trade, a PnL of 0 that ranked it first) has the
    summary's warning under the table, named by its rank, as the single run's text prints
    it. The table alone said nothing."""
    data = candle_file(tmp_path, 720)
    config = config_file(tmp_path, f"sqlite+aiosqlite:///{tmp_path}/w.db")
    argv = ["backtest", str(data), "--config", str(config), "--no-store", "--workers", "1"]
    argv += ["--set", "backtest.infer_instrument=false"]
    code, out, err = run(capsys, [*argv, "--sweep", "trading.paper.tick_size=0.01,200"])
    assert code == 0, err
    lines = out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:3]}
    bad = next(rank for rank, line in rows.items() if "tick_size=200" in line)
    warned = [line for line in lines if line.startswith("warning")]
    assert len(warned) == 1, out
    assert warned[0].startswith(f"warning   rank {bad}: trading.paper.tick_size 200")
    assert "is above ALT-BTC's lowest price" in warned[0]


def test_a_command_on_a_relative_sqlite_file_names_the_folder_it_runs_in(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's worked example keeps its candles in ``sqlite+aiosqlite:///./backtest.db``:
    a relative file. A run from the database stores ``cd FOLDER && crypto-monitor backtest
    ...`` (the folder it ran in), and that command runs it again to the same digest; without
    the ``cd``, from another folder, the same options found no candles (exit 2), though the
    command is stored as the one that "runs it again from anywhere"."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    data = candle_file(work, 720)
    config = config_file(work, "sqlite+aiosqlite:///./backtest.db")
    monkeypatch.chdir(work)
    download = ["download", "--config", str(config), "--exchange", "binance", "--symbols"]
    code, _, err = run(capsys, [*download, "ALT", "--quote", "BTC", "--from-file", str(data)])
    assert code == 0, err
    argv = ["backtest", "--config", "config.yaml", "--symbols", "ALT/BTC", "--json"]
    code, out, err = run(capsys, [*argv, "--set", f"{SL}=2"])
    assert code == 0, err
    doc = json.loads(out.splitlines()[-1])
    command = doc["params"]["command"]
    assert command.startswith(f"cd {work} && crypto-monitor backtest --config {config} "), command
    folder, rest = command.removeprefix("cd ").split(" && ", 1)
    words = shlex.split(rest)

    monkeypatch.chdir(elsewhere)  # the options alone: no candles there
    code, _, err = run(capsys, [*words[1:], "--no-store"])
    assert code == 2
    assert "no stored 1m candles of ALT-BTC" in err

    monkeypatch.chdir(folder)  # what the command's cd does
    code, out, err = run(capsys, [*words[1:], "--json", "--no-store"])
    assert code == 0, err
    again = json.loads(out.splitlines()[-1])
    assert again["digest"] == doc["digest"]
    assert again["params"]["command"] == command

    # a run on files (absolute paths) needs no folder
    code, out, err = run(capsys, ["backtest", str(data), "--config", str(config), "--json"])
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["params"]["command"].startswith("crypto-monitor ")
