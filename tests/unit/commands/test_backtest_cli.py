"""``crypto-monitor backtest`` and ``download`` as a user runs them: results, the stored run,
the report file, sweeps, and one clear line with exit 2 for each kind of bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from cryptomon.cli import main
from cryptomon.trading.entries import NOT_ACTED
from tests.unit.backtest.conftest import random_walk

CONFIG = """database: {{url: "sqlite+aiosqlite:///{db}"}}
trading:
  min_signal_strength: 0.5
  paper: {{quote_currency: BTC, starting_balance: 10000.0, min_notional: 1.0}}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(db=tmp_path / "db.sqlite"))
    return path


@pytest.fixture
def candles_file(tmp_path: Path) -> Path:
    """Two days of generated minutes in freqtrade's JSON layout (ms open times)."""
    s = random_walk(2880)
    rows = [
        [int(s.ts[i] * 1000), s.open[i], s.high[i], s.low[i], s.close[i], s.volume[i]]
        for i in range(len(s))
    ]
    path = tmp_path / "ALT_BTC-1m.json"
    path.write_text(json.dumps(rows))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_backtest_json_report_and_stored_run(
    capsys: pytest.CaptureFixture[str], config: Path, candles_file: Path, tmp_path: Path
) -> None:
    """--json prints summary, breakdowns, trades and the stored id; --report writes HTML."""
    report = tmp_path / "out.html"
    code, out, err = run(
        capsys,
        "backtest",
        str(candles_file),
        "--config",
        str(config),
        "--json",
        "--report",
        str(report),
    )
    assert code == 0, err
    doc = json.loads(out.splitlines()[-1])
    assert doc["id"] == 1
    assert doc["summary"]["candles"] == 2880
    assert doc["summary"]["trades"] == len(doc["trades"]) > 0
    assert {"by_symbol", "by_source", "digest", "params"} <= set(doc)
    [market] = doc["by_symbol"].items()  # per market: exchange and symbol
    assert market[0] == "binance ALT-BTC"
    assert (market[1]["exchange"], market[1]["symbol"]) == ("binance", "ALT-BTC")
    html = report.read_text()
    assert "<h2>Breakdown by market</h2>" in html
    assert "<td>binance ALT-BTC</td>" in html
    assert html.startswith("<!DOCTYPE html>")
    assert "Plotly" in html
    assert "cdn." not in html.split("<body>")[1]  # plotly.js inlined, nothing fetched


def test_backtest_from_the_database_after_import(
    capsys: pytest.CaptureFixture[str], config: Path, candles_file: Path
) -> None:
    """Imported candles backtest with --source db over a sub-range."""
    code, _, err = run(
        capsys,
        "download",
        "--from-file",
        str(candles_file),
        "--exchange",
        "binance",
        "--symbol",
        "ALT/BTC",
        "--config",
        str(config),
    )
    assert code == 0, err
    code, out, err = run(
        capsys,
        "backtest",
        "--source",
        "db",
        "--symbols",
        "ALT/BTC",
        "--config",
        str(config),
        "--start",
        "2023-11-14T12:00",
        "--json",
        "--no-store",
    )
    assert code == 0, err
    doc = json.loads(out.splitlines()[-1])
    assert 0 < doc["summary"]["candles"] < 2880
    assert "id" not in doc


def test_a_symbol_named_twice_runs_once(
    capsys: pytest.CaptureFixture[str], config: Path, candles_file: Path
) -> None:
    """``--symbols ALT/BTC,alt-btc`` loaded the market twice: twice the candles (5,760 of
    2,880), the exposure and buy and hold averaged over the copy. It is one market."""
    importing = ["--from-file", str(candles_file), "--exchange", "binance"]
    code, _, err = run(capsys, "download", *importing, "--config", str(config))
    assert code == 0, err
    docs = []
    for symbols in ("ALT/BTC", "ALT/BTC,alt-btc"):
        argv = ["--source", "db", "--symbols", symbols, "--json", "--no-store"]
        code, out, err = run(capsys, "backtest", *argv, "--config", str(config))
        assert code == 0, err
        docs.append(json.loads(out.splitlines()[-1]))
    once, twice = docs
    assert twice["summary"]["candles"] == once["summary"]["candles"] == 2880
    assert twice["params"]["symbols"] == ["ALT-BTC"]
    assert twice["digest"] == once["digest"]


def test_sweep_ranks_the_variants(
    capsys: pytest.CaptureFixture[str], config: Path, candles_file: Path
) -> None:
    """Two stop distances in worker processes, ranked by PnL with their parameters."""
    code, out, err = run(
        capsys,
        "backtest",
        str(candles_file),
        "--config",
        str(config),
        "--json",
        "--sweep",
        "trading.stop_loss_percentage=1,3",
        "--workers",
        "2",
    )
    assert code == 0, err
    doc = json.loads(out.splitlines()[-1])
    rows = doc["variants"]
    assert sorted(r["overrides"]["trading.stop_loss_percentage"] for r in rows) == [1, 3]
    assert rows[0]["summary"]["pnl"] >= rows[1]["summary"]["pnl"]


SL = "trading.stop_loss_percentage"
BAD_BACKTEST = [
    (["--timeframe", "7m"], "unknown timeframe '7m'"),
    (["--start", "2023-11-16", "--end", "2023-11-15"], "--start (2023-11-16T00:00:00Z) must be"),
    (["--start", "2020-01-01", "--end", "2020-01-02"], "no 1m candles of binance ALT-BTC in"),
    (["--sweep", "trading.stop_loss_percentage"], "--sweep: expected SECTION.KEY=V1,V2"),
    (["--sweep", "trading.nope=1,2"], "no such config key 'nope'"),
    # the config file's wording, not pydantic's dump ("{'trading...': -1}: invalid value
    # (Input should be greater than 0 [type=greater_than, input_value=-1, input_type=int])")
    (
        ["--sweep", "trading.stop_loss_percentage=-1"],
        "--sweep trading.stop_loss_percentage=-1: invalid value: "
        "trading.stop_loss_percentage: got -1; expected greater than 0",
    ),
    (
        ["--sweep", "trading.indicators.rsi_oversold=abc"],
        "--sweep trading.indicators.rsi_oversold=abc: invalid value: "
        "trading.indicators.rsi_oversold: got 'abc'; expected a valid number",
    ),
    (["--start", "yesterday"], "--start: expected a date like 2026-01-01"),
    # refused before the run, not with a traceback once it is over
    (["--report", "/nonexistent-cryptomon-qa-dir/out.html"], "no directory"),
    (["--report", "/"], "is a directory"),
    # one key on two axes ran the product with the last value winning: two rows both
    # "stop_loss_percentage=4", the 2 and the 3 never run
    (
        ["--sweep", f"{SL}=2,3", "--sweep", f"{SL}=4"],
        "--sweep trading.stop_loss_percentage: given twice; list all its values in one --sweep",
    ),
    (
        ["--sweep", "trading.stop_loss_percentage=2,3,2.0"],
        "--sweep trading.stop_loss_percentage: 2.0 is listed twice",
    ),
    # a sweep wrote no report and said nothing of it; it says how to get one
    (
        ["--sweep", "trading.stop_loss_percentage=2,3", "--report", "sweep.html"],
        "--report: a sweep writes no report; re-run the chosen variant with its --set "
        "options (the sweep's table prints them) and --report",
    ),
    # one run with overrides (how a stored sweep variant is run again)
    (["--set", SL], "--set: expected SECTION.KEY=VALUE (e.g. trading.stop_loss_percentage=2)"),
    (["--set", "trading.nope=1"], "--set trading.nope: no such config key 'nope'"),
    (
        ["--set", "trading.nope=1", "--sweep", f"{SL}=2,3"],
        "--set trading.nope: no such config key 'nope'",
    ),
    (
        ["--set", f"{SL}=-1"],
        "--set trading.stop_loss_percentage=-1: invalid value: "
        "trading.stop_loss_percentage: got -1; expected greater than 0",
    ),
    (["--set", f"{SL}=2", "--set", f"{SL}=3"], "--set trading.stop_loss_percentage: given twice"),
    (
        ["--set", f"{SL}=2", "--sweep", f"{SL}=3,4"],
        "--set trading.stop_loss_percentage: also swept by --sweep; give it in one of them",
    ),
    # a section and a key inside it: the later one won (rsi_oversold=25 dropped without a
    # word), or, the other way round, the key was said not to exist
    (
        ["--set", "trading.indicators.rsi_oversold=25", "--set", "trading.indicators={}"],
        "--set trading.indicators: also sets trading.indicators.rsi_oversold; give the "
        "section or keys inside it",
    ),
    (
        ["--set", "trading.indicators={}", "--set", "trading.indicators.rsi_oversold=25"],
        "--set trading.indicators: also sets trading.indicators.rsi_oversold; give the "
        "section or keys inside it",
    ),
    (
        ["--set", "trading.indicators={}", "--sweep", "trading.indicators.rsi_oversold=25,30"],
        "--set trading.indicators: also sets trading.indicators.rsi_oversold (swept by "
        "--sweep); give the section or keys inside it",
    ),
]


def test_a_directory_given_as_a_data_file_is_named_as_such(
    capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path
) -> None:
    """A folder (say the recordings' folder) passed to backtest or download --from-file is
    one line saying it is a directory and what is expected, not "no such file"."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    for argv in (
        ["backtest", str(folder)],
        ["download", "--exchange", "binance", "--symbol", "A/B", "--from-file", str(folder)],
    ):
        code, _, err = run(capsys, *argv, "--config", str(config))
        assert code == 2, err
        assert f"cannot read {folder}: a directory" in err
        assert "no such file" not in err
        assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("extra", "message"), BAD_BACKTEST)
def test_backtest_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    config: Path,
    candles_file: Path,
    extra: list[str],
    message: str,
) -> None:
    """Each bad argument gets one line naming it, and exit code 2."""
    code, _, err = run(capsys, "backtest", str(candles_file), "--config", str(config), *extra)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_symbol_with_no_data_and_unreadable_files(
    capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path
) -> None:
    """No stored candles for a symbol, a missing file, a file that is not data: exit 2."""
    code, _, err = run(
        capsys, "backtest", "--source", "db", "--symbols", "DOGE/USDT", "--config", str(config)
    )
    assert code == 2
    assert "no stored 1m candles" in err
    code, _, err = run(capsys, "backtest", str(tmp_path / "nope.json"), "--config", str(config))
    assert code == 2
    assert "cannot read" in err
    assert "no such file" in err
    junk = tmp_path / "ALT_BTC-junk.json"
    junk.write_text('[["x", 1]]')
    code, _, err = run(capsys, "backtest", str(junk), "--config", str(config))
    assert code == 2
    assert "row 1 is not a candle" in err
    assert len(err.strip().splitlines()) == 1


GOOD_ROW = [1509836520000, 0.00162, 0.00163, 0.00161, 0.00162, 108.1]
IMPOSSIBLE_CANDLES = [
    ([1509836580000, 0.00161, 0.00162, 0.00160, -1.0, 82.3], "negative close"),
    ([1509836580000, 0.0, 0.00162, 0.0, 0.00161, 82.3], "zero open and low"),
    ([1509836580000, 0.00161, 0.00080, 0.00160, 0.00161, 82.3], "high below low"),
    ([1509836580000, 0.00161, 0.00162, 0.00160, 0.00170, 82.3], "close above high"),
    ([1509836580000, 0.00150, 0.00162, 0.00160, 0.00161, 82.3], "open below low"),
    ([1509836580000, 0.00161, 0.00162, 0.00160, 0.00161, -5.0], "negative volume"),
]


@pytest.mark.parametrize("command", ["backtest", "download"])
@pytest.mark.parametrize(
    "row", [r for r, _ in IMPOSSIBLE_CANDLES], ids=[i for _, i in IMPOSSIBLE_CANDLES]
)
def test_a_candle_that_cannot_be_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    config: Path,
    tmp_path: Path,
    command: str,
    row: list[float],
) -> None:
    """A candle with a price <= 0, a high below its low (or below its open or close), a low
    above its open or close, or a negative volume was imported and run as it stood (a close
    of -1 stored in `candles`): one line naming the file and the row, exit 2, nothing
    stored."""
    bad = tmp_path / "ALT_BTC-1m.json"
    bad.write_text(json.dumps([GOOD_ROW, row]))
    importing = ["--from-file", str(bad), "--exchange", "binance"]
    argv = [str(bad), "--no-store"] if command == "backtest" else importing
    code, out, err = run(capsys, command, *argv, "--config", str(config))
    assert code == 2, out + err
    assert len(err.strip().splitlines()) == 1, err
    assert f"{bad}: row 2 is not a candle" in err, err
    assert "low <= open, close <= high" in err, err
    code, _, err = run(
        capsys, "backtest", "--source", "db", "--symbols", "ALT/BTC", "--config", str(config)
    )
    assert code == 2, err
    assert "no stored 1m candles" in err, err  # the import stored nothing


def test_a_candle_given_twice_with_other_values_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path
) -> None:
    """Rows out of order and repeated as they were are sorted and kept once; a minute given
    twice with different prices was silently run with the first of them: refused, naming
    both rows."""
    rows = [[GOOD_ROW[0] + 60_000 * k, *GOOD_ROW[1:]] for k in range(30)]
    shuffled = [rows[5], *rows[::-1], rows[7], rows[0]]
    same = tmp_path / "ALT_BTC-1m.json"
    same.write_text(json.dumps(shuffled))
    code, out, err = run(capsys, "backtest", str(same), "--no-store", "--config", str(config))
    assert code == 0, err
    assert "candles        30 in" in out, out
    other = tmp_path / "OTHER_BTC-1m.json"
    other.write_text(json.dumps([*rows, [rows[3][0], 0.002, 0.002, 0.002, 0.002, 1.0]]))
    importing = ["download", "--from-file", str(other), "--exchange", "binance"]
    for argv in (["backtest", str(other), "--no-store"], importing):
        code, _, err = run(capsys, *argv, "--config", str(config))
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1, err
        assert f"{other}: rows 4 and 31 open at the same time" in err, err


NOT_DATA = [
    # a JSON object (not a list of rows) was read as a CSV header: "no rows"
    ("ALT_BTC-1m.json", '{"open": 1, "close": 2}\n', "not a JSON list of rows (a JSON object"),
    # text that is not JSON in a .json file: "no rows" as well
    ("ALT_BTC-1m.json", "this is not json\n", "not valid JSON (Expecting value, line 1 column 1)"),
    ("ALT_BTC-1m.json", '\n\n  {"open": 1,\n', "not valid JSON"),
    ("ALT_BTC-1m.json", "[]", "an empty JSON list"),
    ("ALT_BTC-1m.csv", "ts,open,high,low,close,volume\n", "only a header line"),
]


@pytest.mark.parametrize(
    ("name", "content", "problem"), NOT_DATA, ids=["object", "text", "truncated", "empty", "header"]
)
def test_a_data_file_that_is_not_candles_names_the_problem(
    capsys: pytest.CaptureFixture[str],
    config: Path,
    tmp_path: Path,
    name: str,
    content: str,
    problem: str,
) -> None:
    """A data file that is not valid JSON (or holds no rows) said "no rows": one line naming
    the file, what is wrong (with the parser's line and column) and the expected format;
    exit 2."""
    bad = tmp_path / name
    bad.write_text(content)
    code, _, err = run(capsys, "backtest", str(bad), "--config", str(config), "--no-store")
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert str(bad) in err
    assert problem in err
    assert "expected candle rows [open_time_ms, open, high, low, close, volume]" in err
    if "valid JSON" in problem:
        assert "line " in err
    gz = tmp_path / (name + ".gz")
    gz.write_bytes(gzip.compress(content.encode()))
    code, _, err = run(capsys, "backtest", str(gz), "--config", str(config), "--no-store")
    assert code == 2, err
    assert problem in err


BAD_DOWNLOAD = [
    (
        ["--exchange", "nosuchex", "--symbols", "BTC/USDT", "--since", "2026-01-01"],
        "'nosuchex' is not a ccxt exchange id",
    ),
    (
        [
            "--exchange",
            "binance",
            "--symbols",
            "BTC/USDT",
            "--since",
            "2026-01-01",
            "--timeframe",
            "2m",
        ],
        "unknown timeframe '2m'",
    ),
    (
        [
            "--exchange",
            "binance",
            "--symbols",
            "BTC/USDT",
            "--since",
            "2026-01-02",
            "--until",
            "2026-01-01",
        ],
        "--since (2026-01-02T00:00:00Z) must be before --until",
    ),
    (
        ["--exchange", "binance", "--symbols", "BTC/USDT", "--since", "2999-01-01"],
        "holds no closed 1m candle",
    ),
    (
        ["--exchange", "binance", "--from-file", "/nonexistent.json", "--symbol", "A/B"],
        "cannot read /nonexistent.json",
    ),
    (
        ["--exchange", "binance", "--from-file", "/nonexistent.json", "--symbol", "ALT"],
        "give BASE/QUOTE or --quote QUOTE",
    ),
]


@pytest.mark.parametrize(("argv", "message"), BAD_DOWNLOAD)
def test_download_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], config: Path, argv: list[str], message: str
) -> None:
    """Unknown exchange or timeframe, --since after --until, an empty range, a bad file."""
    code, _, err = run(capsys, "download", *argv, "--config", str(config))
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "content",
    [
        b"open_time,open,high,low,close,volume\n1700000000000,1,2,0.5,1.5,10\n",  # plain CSV
        b"\x00\x01 not data",
    ],
    ids=["plain-csv", "junk"],
)
def test_a_gz_file_that_is_not_gzip_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path, content: bytes
) -> None:
    """A ``.gz`` file that is not gzip data (a plain file renamed) is named as such by
    ``download --from-file`` and ``backtest FILE``: exit 2, one line; the same rows gzipped
    import."""
    fake = tmp_path / "ALT_BTC-1m.csv.gz"
    fake.write_bytes(content)
    download = ("download", "--exchange", "binance", "--symbol", "ALT/BTC", "--config")
    for argv in ((*download, str(config), "--from-file"), ("backtest", "--config", str(config))):
        code, _, err = run(capsys, *argv, str(fake))
        assert code == 2, err
        assert f"cannot read {fake}: not gzip data (the name ends in .gz" in err
        assert len(err.strip().splitlines()) == 1
        assert "Traceback" not in err
    if content.startswith(b"open_time"):
        fake.write_bytes(gzip.compress(content))
        code, out, err = run(capsys, *download, str(config), "--from-file", str(fake))
        assert code == 0, err
        assert "imported candles of binance ALT-BTC" in out


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[1e30, 1, 2, 0.5, 1.5, 10]], "row 1 is not a candle"),
        ([[1700000000000, 1, 2, 0.5, 1.5, 10], [-1e20, 1, 2, 0.5, 1.5, 10]], "row 2 is not a"),
        ([[1e30, "1", None, "buy", 1.5, 2, 3]], "row 1 is not a trade"),
        ([[1700000000000, "1", None, "buy", 1.5, -2, 3]], "row 1 is not a trade"),
    ],
    ids=["candle-far-future", "candle-far-past", "trade-far-future", "trade-negative-amount"],
)
def test_a_time_out_of_range_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], config: Path, tmp_path: Path, rows: list, message: str
) -> None:
    """An open time of 1e30 ms (a garbled column) was an OverflowError traceback in the
    datetime conversion of ``download --from-file``; now the row is refused by number, naming
    the range expected, for ``download --from-file`` and ``backtest FILE``. A trade of a
    negative amount, which only ``evaluate --trades`` refused, is refused by both too."""
    path = tmp_path / "ALT_BTC-1m.json"
    path.write_text(json.dumps(rows))
    download = ("download", "--exchange", "binance", "--symbol", "ALT/BTC", "--from-file")
    for argv in ((*download, str(path)), ("backtest", str(path))):
        code, _, err = run(capsys, *argv, "--config", str(config))
        assert code == 2, err
        assert message in err
        assert "(1970..3000)" in err
        assert len(err.strip().splitlines()) == 1
        assert "Traceback" not in err


def test_a_symbol_stored_on_two_exchanges_needs_exchange(
    capsys: pytest.CaptureFixture[str], config: Path, candles_file: Path
) -> None:
    """``backtest --source db --symbols ALT/BTC`` with ALT/BTC candles stored for two
    exchanges: one line naming both and --exchange, exit 2 (it ran the alphabetically first
    exchange's and said nothing); with --exchange, that one runs."""
    for venue in ("kraken", "binance"):
        code, _, err = run(
            capsys, "download", "--from-file", str(candles_file), "--exchange", venue,
            "--symbol", "ALT/BTC", "--config", str(config),
        )  # fmt: skip
        assert code == 0, err
    base = ("backtest", "--source", "db", "--symbols", "ALT/BTC", "--config", str(config))
    code, _, err = run(capsys, *base, "--json", "--no-store")
    assert code == 2
    assert (
        "--symbols ALT-BTC: stored 1m candles on binance, kraken; name one with --exchange" in err
    )
    assert len(err.strip().splitlines()) == 1
    code, out, err = run(capsys, *base, "--exchange", "kraken", "--json", "--no-store")
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["summary"]["candles"] == 2880


def test_a_timeframe_not_stored_names_the_stored_ones(
    capsys: pytest.CaptureFixture[str], config: Path, candles_file: Path
) -> None:
    """``--timeframe 5m`` over stored 1m candles said "no stored 5m candles of ALT-BTC;
    import or download them first" to someone who had just imported them; it now names the
    timeframes that are stored (candles are not resampled)."""
    code, _, err = run(
        capsys, "download", "--from-file", str(candles_file), "--exchange", "binance",
        "--config", str(config),
    )  # fmt: skip
    assert code == 0, err
    base = ("backtest", "--symbols", "ALT/BTC", "--config", str(config), "--no-store")
    code, _, err = run(capsys, *base, "--timeframe", "5m")
    assert code == 2
    assert "no stored 5m candles of ALT-BTC" in err
    assert "stored: 1m (candles are not resampled; give --timeframe 1m)" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, *base, "--timeframe", "5m", "--exchange", "kraken")
    assert code == 2
    assert "no stored 5m candles of ALT-BTC on kraken; import or download" in err


def test_an_import_under_a_misspelt_exchange_is_refused(
    capsys: pytest.CaptureFixture[str], config: Path, candles_file: Path
) -> None:
    """``download --from-file ... --exchange binanse`` stored the candles under "binanse",
    where no backtest (default binance) would find them; a name neither ccxt nor cryptofeed
    knows is refused with the close matches. A cryptofeed name (binance_futures) imports."""
    base = ("download", "--from-file", str(candles_file), "--config", str(config))
    code, _, err = run(capsys, *base, "--exchange", "binanse")
    assert code == 2, err
    assert "--exchange 'binanse': not an exchange ccxt or cryptofeed knows" in err
    assert "did you mean binance" in err
    assert len(err.strip().splitlines()) == 1
    code, out, err = run(capsys, *base, "--exchange", "binance_futures")
    assert code == 0, err
    assert "imported candles of binance_futures ALT-BTC" in out


def test_trades_backtest_of_a_trade_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--trades runs public trades: the trade detectors see them; a wrong quote is exit 2."""
    s = random_walk(600)
    rows = []
    for i in range(len(s)):
        for j, price in enumerate((s.open[i], s.high[i], s.low[i], s.close[i])):
            side = "buy" if j % 2 == 0 else "sell"
            size = 2.0 + (i * 7 + j) % 5 + (400.0 if i % 97 == 50 and j == 0 else 0.0)
            rows.append([int((s.ts[i] + 15 * j) * 1000), f"{i}-{j}", None, side, price, size, 0])
    path = tmp_path / "ALT_ETH-trades.json"
    path.write_text(json.dumps(rows))
    cfg = tmp_path / "eth.yaml"
    cfg.write_text(CONFIG.format(db=tmp_path / "db.sqlite").replace("BTC", "ETH"))
    code, out, err = run(
        capsys, "backtest", str(path), "--trades", "--config", str(cfg), "--json", "--no-store"
    )
    assert code == 0, err
    doc = json.loads(out.splitlines()[-1])
    assert doc["summary"]["candles"] == 600
    assert doc["summary"]["anomalies"] > 0
    code, _, err = run(capsys, "backtest", str(path), "--trades", "--no-store")
    assert code == 2
    assert "ALT-ETH is quoted in ETH but the paper balance is in USDT" in err


def test_symbols_filter_several_files(
    capsys: pytest.CaptureFixture[str], config: Path, candles_file: Path, tmp_path: Path
) -> None:
    """With several files, --symbols picks the files of those markets (named by the files);
    it named every file as its one symbol, so another market's candles ran as ALT-BTC too."""
    other = tmp_path / "ETH_BTC-1m.json"
    s = random_walk(1000, seed=3)
    rows = [
        [int(s.ts[i] * 1000), s.open[i], s.high[i], s.low[i], s.close[i], s.volume[i]]
        for i in range(len(s))
    ]
    other.write_text(json.dumps(rows))
    files = (str(candles_file), str(other))
    args = ("--config", str(config), "--json", "--no-store")
    code, out, err = run(capsys, "backtest", *files, "--symbols", "ETH/BTC", *args)
    assert code == 0, err
    doc = json.loads(out.splitlines()[-1])
    assert (doc["params"]["symbols"], doc["summary"]["candles"]) == (["ETH-BTC"], 1000)
    code, out, err = run(capsys, "backtest", *files, *args)
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["params"]["symbols"] == ["ALT-BTC", "ETH-BTC"]
    code, _, err = run(capsys, "backtest", *files, "--symbols", "DOGE/BTC", *args)
    assert code == 2
    assert "--symbols: no file of DOGE-BTC" in err
    code, _, err = run(capsys, "backtest", str(candles_file), str(candles_file), *args)
    assert code == 2
    assert "give one file per market" in err


def test_a_perpetual_is_quoted_in_its_quote_currency(
    capsys: pytest.CaptureFixture[str], config: Path, candles_file: Path, tmp_path: Path
) -> None:
    """BTC-USDT-PERP runs on a USDT balance (it was refused as 'quoted in PERP', advising
    quote_currency: PERP); on a BTC balance the line names USDT."""
    cfg = tmp_path / "usdt.yaml"
    cfg.write_text(CONFIG.format(db=tmp_path / "db.sqlite").replace("BTC", "USDT"))
    args = (str(candles_file), "--symbols", "BTC-USDT-PERP", "--json", "--no-store")
    code, out, err = run(capsys, "backtest", *args, "--config", str(cfg))
    assert code == 0, err
    doc = json.loads(out.splitlines()[-1])
    assert (doc["params"]["symbols"], doc["summary"]["candles"]) == (["BTC-USDT-PERP"], 2880)
    code, _, err = run(capsys, "backtest", *args, "--config", str(config))
    assert code == 2
    assert "BTC-USDT-PERP is quoted in USDT but the paper balance is in BTC" in err


@pytest.mark.parametrize("command", ["backtest", "download"])
def test_a_time_in_milliseconds_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], config: Path, candles_file: Path, command: str
) -> None:
    """--start/--since 1700000000000 (milliseconds, as the data files count) was a
    ValueError traceback in the backtest ('year 55840 is out of range') and 'the range holds
    no closed 1m candle' in the download; now one line saying what is expected."""
    if command == "backtest":
        argv = ["backtest", str(candles_file), "--start", "1700000000000", "--no-store"]
    else:
        argv = ["download", "--exchange", "binance", "--symbols", "BTC/USDT"]
        argv += ["--since", "1700000000000"]
    code, _, err = run(capsys, *argv, "--config", str(config))
    assert code == 2
    assert "expected epoch seconds (1970..3000)" in err
    assert "(milliseconds?)" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_files_of_different_timeframes_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], config: Path, candles_file: Path, tmp_path: Path
) -> None:
    """A 1m and a 5m file in one run: refused (they ran on the first file's one-minute
    clock steps: each 5m candle closed four minutes early, its indicator interval 1m)."""
    s = random_walk(600, seed=5)
    rows = [
        [int((s.ts[0] + 300 * i) * 1000), s.open[i], s.high[i], s.low[i], s.close[i], 1.0]
        for i in range(len(s))
    ]
    other = tmp_path / "ETH_BTC-5m.json"
    other.write_text(json.dumps(rows))
    argv = ("backtest", str(candles_file), str(other), "--no-store", "--config", str(config))
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "different timeframes (1m, 5m)" in err


@pytest.mark.parametrize(
    "option", [("--symbols", "BTC/USDT"), ("--start", "2026-01-01"), ("--end", "2026-01-02")]
)
def test_a_recording_with_symbols_or_a_range_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], shared_data: Path, option: tuple[str, str]
) -> None:
    """A recording is replayed whole: --symbols, --start and --end are refused, not ignored
    (the run traded every market of the recording, over all of it, and exited 0)."""
    files = [str(p) for p in sorted(shared_data.glob("BINANCE.*"))]
    code, _, err = run(capsys, "backtest", *files, *option, "--no-store")
    assert code == 2, err
    assert f"{option[0]}: a recording is replayed whole" in err


def test_stored_params_are_the_settings_the_run_used(
    capsys: pytest.CaptureFixture[str], config: Path, candles_file: Path
) -> None:
    """The run forces auto trading on and paper mode: its params say so (they said the
    config's ``auto_trading_enabled: false``, which would not reproduce the run)."""
    code, out, err = run(capsys, "backtest", str(candles_file), "--config", str(config), "--json")
    assert code == 0, err
    trading = json.loads(out.splitlines()[-1])["params"]["trading"]
    assert trading["auto_trading_enabled"] is True
    assert trading["mode"] == "paper"
    assert trading["indicators"]["interval"] == "1m"


def test_a_timeframe_other_than_the_candle_files_is_refused(
    capsys: pytest.CaptureFixture[str], config: Path, candles_file: Path
) -> None:
    """``--timeframe 5m`` on a file of 1m candles: one line, exit 2 (it was ignored: the run
    went on the 1m candles); the file's own timeframe, or none given, runs."""
    code, out, err = run(
        capsys, "backtest", str(candles_file), "--config", str(config), "--timeframe", "5m"
    )
    assert code == 2
    assert out == ""
    [line] = err.strip().splitlines()
    assert "--timeframe 5m" in line
    assert "1m" in line
    for extra in (["--timeframe", "1m"], []):
        code, out, err = run(
            capsys, "backtest", str(candles_file), "--config", str(config), "--no-store", *extra
        )
        assert code == 0, err
        assert "candles        2880" in out


def test_help_describes_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    """`backtest --help` said "grid axis", "sweep ranking (pnl)" and "candle/trade files":
    not the KEY=V1,V2 form, not the metrics --rank accepts, not that raw recordings are read.
    It now names what the README documents for each."""
    from cryptomon.backtest.sweep import RANK_METRICS

    with pytest.raises(SystemExit) as exit_:
        main(["backtest", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for metric in RANK_METRICS:
        assert metric in text, metric
    assert "trading.stop_loss_percentage=2,3,4; repeat for more axes" in text
    assert "raw recordings of `crypto-monitor record`" in text
    assert "default: one per core" in text
    assert "--set KEY=VALUE" in text
    assert "the command a stored sweep variant names" in text


FREQTRADE_CANDLES = (
    Path(__file__).resolve().parents[3].parent
    / "shared"
    / "data"
    / "freqtrade-testdata"
    / "ALT_BTC-1m.json.gz"
)


def _summary(out: str) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(out.splitlines()[-1])["summary"]
    return summary


def test_a_run_whose_signals_are_all_refused_says_why(
    capsys: pytest.CaptureFixture[str], candles_file: Path, tmp_path: Path
) -> None:
    """Signals and no trade, every entry under trading.paper.min_notional: the summary counts
    the signals, the orders (none) and the refusals by risk check, in the text and in
    --json; the JSON is the same byte for byte on a second run."""
    config = tmp_path / "refusing.yaml"
    config.write_text(
        CONFIG.format(db=tmp_path / "db.sqlite").replace("min_notional: 1.0", "min_notional: 1e9")
    )
    args = ["backtest", str(candles_file), "--config", str(config), "--no-store"]
    code, first, err = run(capsys, *args, "--json")
    assert code == 0, err
    code, second, err = run(capsys, *args, "--json")
    assert code == 0, err
    assert first == second
    s = _summary(first)
    assert s["trades"] == s["orders"] == s["signals_ordered"] == 0
    refused, signals = s["refused"], s["signals"]
    assert 0 < refused == s["signals_refused"] <= signals
    assert s["refused_by_check"] == {"min_notional": refused}
    assert s["signals_not_acted"] == signals - refused
    by_reason = s["not_acted_by_reason"]  # why the engine made no order, most first
    assert sum(by_reason.values()) == s["signals_not_acted"]
    assert list(by_reason.values()) == sorted(by_reason.values(), reverse=True)
    assert set(by_reason) <= set(NOT_ACTED)
    reasons = ", ".join(f"{k} {n}" for k, n in by_reason.items())
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert (
        f"signals        {signals} -> 0 orders: {refused} refused, "
        f"{signals - refused} not acted on ({reasons})\n" in out
    ), out
    assert f"refused        {refused} by the risk checks (min_notional {refused})\n" in out, out
    assert "trades         0 (" in out


def test_refusals_and_rejections_of_a_real_series_in_the_text_json_and_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Ten real days (freqtrade's ALT/BTC, ~0.002 BTC) on an account of 0.5 BTC. Lots of
    1,000 it cannot afford: each entry is refused as it is sized (lot_size), in the text, the
    JSON and the report. A tick of 0.01 (the prices round up to 5x the market): every order
    placed is rejected by the paper broker for the balance. Lots of 1 and a tick of 1e-8: it
    trades, and nothing is refused or rejected."""

    def config(name: str, lot: int, tick: float) -> str:
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"database: {{url: 'sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}'}}\n"
            "backtest: {infer_instrument: false}\n"
            "trading:\n  min_signal_strength: 0.5\n"
            "  paper: {quote_currency: BTC, starting_balance: 0.5, min_notional: 0.0, "
            f"lot_size: {lot}, tick_size: {tick}}}\n"
        )
        return str(path)

    args = ["backtest", str(FREQTRADE_CANDLES), "--no-store"]
    poor, report = config("poor", 1000, 1e-8), tmp_path / "poor.html"
    code, out, err = run(capsys, *args, "--config", poor, "--json", "--report", str(report))
    assert code == 0, err
    s = _summary(out)
    refused = s["refused"]
    assert refused > 0
    assert s["trades"] == s["orders"] == s["rejected"] == 0
    assert s["refused_by_check"] == {"lot_size": refused}
    assert s["signals_refused"] == refused
    assert f"<td>lot_size {refused}</td>" in report.read_text()
    code, out, err = run(capsys, *args, "--config", poor)
    assert code == 0, err
    assert f"refused        {refused} by the risk checks (lot_size {refused})\n" in out, out

    coarse = config("coarse", 1, 0.01)
    code, out, err = run(capsys, *args, "--config", coarse, "--json")
    assert code == 0, err
    s = _summary(out)
    orders = s["orders"]
    assert orders > 0
    assert s["trades"] == s["refused"] == 0
    assert s["rejected"] == orders == s["signals_ordered"]
    assert s["rejected_by_reason"] == {"insufficient balance": orders}
    warning = "trading.paper.tick_size 0.01 is above ALT-BTC's lowest price 0.00157792:"
    assert len(s["warnings"]) == 1
    assert s["warnings"][0].startswith(warning), s["warnings"]
    assert "set trading.paper.tick_size to the market's tick" in s["warnings"][0]
    code, out, err = run(capsys, *args, "--config", coarse)
    assert code == 0, err
    assert f" -> {orders} orders: " in out
    assert "\nwarning        " + warning in out, out
    assert f"rejected       {orders} orders by the broker (insufficient balance {orders})\n" in out

    code, out, err = run(capsys, *args, "--config", config("fine", 1, 1e-8), "--json")
    assert code == 0, err
    s = _summary(out)
    assert s["refused"] == s["signals_refused"] == s["rejected"] == 0
    assert s["refused_by_check"] == s["rejected_by_reason"] == {}
    assert s["warnings"] == []  # a tick of 1e-8 is the market's
    ordered, signals = s["signals_ordered"], s["signals"]
    assert ordered > 0
    assert s["trades"] > 0
    assert s["signals_not_acted"] == signals - ordered
    by_reason = s["not_acted_by_reason"]
    assert sum(by_reason.values()) == s["signals_not_acted"], by_reason
    assert "side_held" in by_reason, by_reason


def test_an_exchange_with_no_stored_candles_names_the_stored_ones(
    capsys: pytest.CaptureFixture[str], config: Path, candles_file: Path
) -> None:
    """``--exchange krakn`` (a typo) over candles stored for binance said "no stored 1m
    candles; run crypto-monitor download first" to someone who had just imported them; it
    now names the exchange and the ones that have candles, with or without --symbols."""
    code, _, err = run(
        capsys, "download", "--from-file", str(candles_file), "--exchange", "binance",
        "--config", str(config),
    )  # fmt: skip
    assert code == 0, err
    base = ("backtest", "--config", str(config), "--no-store", "--exchange", "krakn")
    code, _, err = run(capsys, *base)
    assert code == 2
    assert err.strip() == (
        "crypto-monitor: no stored 1m candles on krakn; stored on: binance (give --exchange "
        "binance)"
    ), err
    code, _, err = run(capsys, *base, "--symbols", "ALT/BTC")
    assert code == 2
    assert err.strip() == (
        "crypto-monitor: no stored 1m candles of ALT-BTC on krakn; stored on: binance (give "
        "--exchange binance)"
    ), err
