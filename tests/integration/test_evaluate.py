"""``crypto-monitor evaluate``: labelled injections into real recordings and a real trade
series, through the replay feed and the detectors."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

import pytest

from cryptomon.cli import main
from cryptomon.config import AnomalyDetectionConfig
from cryptomon.evaluate import recordings as rec
from cryptomon.evaluate.frames import Injected, frame_for

REPO = Path(__file__).resolve().parents[2]
SERIES = REPO.parent / "shared" / "data" / "freqtrade-testdata" / "XRP_ETH-trades.json.gz"
SHORT = """
anomaly_detection:
  bucket_seconds: 1
  min_samples: 5
  lookback_window_minutes: 1
  cooldown_s: 5
"""


@pytest.mark.parametrize(
    "name", ["BINANCE", "BINANCE_FUTURES", "OKX", "KRAKEN", "BITFINEX", "GATEIO", "HUOBI_SWAP"]
)
def test_an_injected_trade_is_parsed_by_the_exchanges_own_parser(
    shared_data: Path, tmp_path: Path, name: str
) -> None:
    """A trade written in the exchange's format into a copy comes out of the replay feed."""
    files = sorted(shared_data.glob(f"{name}.*"))
    cfg = AnomalyDetectionConfig()
    untouched = asyncio.run(rec.replay(name, files, cfg))
    frame = frame_for(name)
    ws = [f for f in files if ".ws." in f.name]
    texts = {f: f.read_text(encoding="utf-8", errors="replace").splitlines() for f in ws}
    every = [line for lines in texts.values() for line in lines]
    symbol, native = next(
        (s, n) for s, n in sorted(untouched.natives.items()) if frame.channel(every, n)
    )
    chan = frame.channel(every, native)
    assert chan is not None
    target = next(f for f in ws if any(frame.marker(native, chan) in x for x in texts[f]))
    last = untouched.trades[symbol][-1]
    plan = rec.CopyPlan()  # the planning step, by hand
    trade = Injected(native, chan, last.price, 12345.678, True, last.ts + 0.001, 999)
    plan.lines[target] = [(last.ts_recv + 0.001, frame.render(trade))]
    copied = rec.write_copy(files, plan, tmp_path, frame)
    replayed = asyncio.run(rec.replay(name, copied, cfg))
    got = [t for t in replayed.trades[symbol] if t.amount == pytest.approx(12345.678)]
    assert len(got) == 1
    assert got[0].side == "buy"
    assert got[0].ts == pytest.approx(last.ts + 0.001, abs=1e-3)
    assert len(replayed.trades[symbol]) == len(untouched.trades[symbol]) + 1


def test_evaluate_one_exchange_reports_recall_delay_and_untouched_rates(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """BINANCE_FUTURES with short windows: labels on the two markets with >= 20 live trades,
    recall and delays per injection, no alert on historical trades."""
    cfg = tmp_path / "short.yaml"
    cfg.write_text(SHORT)
    files = [str(p) for p in sorted(shared_data.glob("BINANCE_FUTURES.*"))]
    code = main(["evaluate", *files, "--repeats", "1", "--config", str(cfg), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    result = report["recordings"]
    ex = result["exchanges"]["BINANCE_FUTURES"]
    assert ex["eligible_markets"] == ["CTK-USDT-PERP", "SUSHI-USDT-PERP"]
    assert ex["historical_alerts"] == 0
    assert 0 < ex["symbol_hours"] < 0.1
    inj = result["injections"]
    assert set(inj) == {
        "whale_50x",
        "whale_150x",
        "volume_3x",
        "volume_5x",
        "volume_10x",
        "price_change_5pct",
    }
    for name, v in inj.items():
        assert v["labels"] == 2, name
    assert inj["price_change_5pct"]["recall"] == 1.0
    assert inj["price_change_5pct"]["max_delay_s"] <= 1.0
    assert inj["whale_150x"]["detected"] >= 1


def _slice(tmp_path: Path, n: int) -> Path:
    rows = json.loads(gzip.decompress(SERIES.read_bytes()))
    out = tmp_path / "slice.json.gz"
    out.write_bytes(gzip.compress(json.dumps(rows[:n]).encode()))
    return out


def test_evaluate_a_slice_of_the_long_series_is_deterministic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first 4000 XRP/ETH trades (~19 hours) as binance:XRP/ETH: labels for whales,
    bursts and jumps; every 5% jump found; the same JSON bytes twice."""
    path = _slice(tmp_path, 4000)
    args = ["evaluate", "--trades", str(path), "--exchange", "binance", "--symbol", "XRP/ETH"]
    outs = []
    for _ in range(2):
        assert main([*args, "--seed", "7", "--json"]) == 0
        outs.append(capsys.readouterr().out.strip().splitlines()[-1])
    assert outs[0] == outs[1]
    series = json.loads(outs[0])["series"]
    assert series["input"] == {"trades_file": True, "exchange": "binance", "symbol": "XRP-ETH"}
    assert series["trades"] == 4000
    assert series["untouched"]["symbol_hours"] > 10
    inj = series["injections"]
    assert all(v["labels"] >= 3 for v in inj.values()), inj
    assert inj["price_change_5pct"]["recall"] == 1.0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "expected recordings"),
        (["--trades", "x.json"], "--exchange"),
        (["--exchange", "binance", "/nonexistent"], "--trades"),
        (["--trades", "/nonexistent", "--exchange", "b", "--symbol", "A/B"], "freqtrade"),
        (["/nonexistent/BINANCE.0"], "existing file"),
        (["--repeats", "0", "x"], "--repeats"),
    ],
)
def test_evaluate_rejects_bad_arguments(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad arguments and inputs exit 2 with a message naming what is wrong, no traceback."""
    assert main(["evaluate", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err
