"""``crypto-monitor scorecard``: simulator scenarios through the real feed and detectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cryptomon.cli import main

FAST = """
anomaly_detection:
  bucket_seconds: 5
  lookback_window_minutes: 2
  min_samples: 10
  spread_halflife_s: 30
  cooldown_s: 60
"""


def test_scorecard_json_detects_every_labelled_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A short run (2 symbols, 1 round): every label detected, report complete."""
    cfg = tmp_path / "fast.yaml"
    cfg.write_text(FAST)
    code = main(
        [
            "scorecard",
            "--json",
            "--seed",
            "3",
            "--symbols",
            "BTC/USDT,ETH-USDT",
            "--calm-minutes",
            "2",
            "--rounds",
            "1",
            "--config",
            str(cfg),
        ]
    )
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == (0 if report["targets"]["met"] else 1)
    assert report["symbols"] == ["BTC-USDT", "ETH-USDT"]
    kinds = report["kinds"]
    assert set(kinds) == {"volume", "price_change", "whale", "book_imbalance", "spread"}
    for kind, v in kinds.items():
        assert v["labels"] == (4 if kind == "price_change" else 2), kind
        assert v["detected"] == v["labels"], (kind, v)
        assert v["missed"] == 0
        assert v["median_delay_s"] is not None
        assert 0 <= v["median_delay_s"] <= v["max_delay_s"] <= 60
    assert report["calm"]["symbol_hours"] == pytest.approx(2 * 2 / 60, rel=0.01)
    assert report["events"]["trades"] > 1000
    assert report["events"]["books"] > 1000


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--rounds", "0"], "--rounds"),
        (["--calm-minutes", "-1"], "--calm-minutes"),
        # these ran forever (a simulated baseline of infinite length, 10**11 rounds)
        (["--calm-minutes", "inf"], "--calm-minutes: expected a number of minutes from 0"),
        (["--calm-minutes", "1e300"], "--calm-minutes: expected a number of minutes from 0"),
        (["--rounds", "99999999999"], "--rounds: expected an integer from 1 to 1000"),
        (["--symbols", "BTC/USDT,??"], "--symbols"),
        (["--symbols", "BTC-USDT,BTC/USDT"], "distinct"),
    ],
)
def test_scorecard_rejects_bad_arguments(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad arguments exit 2 with a message naming the option."""
    assert main(["scorecard", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err
    assert "Traceback" not in err


def test_scorecard_json_is_the_same_bytes_for_the_same_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two runs with the same seed and config print byte-identical JSON."""
    cfg = tmp_path / "fast.yaml"
    cfg.write_text(FAST)
    args = ["scorecard", "--json", "--seed", "5", "--symbols", "BTC/USDT", "--calm-minutes"]
    outs = []
    for _ in range(2):
        main([*args, "1", "--rounds", "1", "--config", str(cfg)])
        outs.append(capsys.readouterr().out.strip().splitlines()[-1].encode())
    assert outs[0] == outs[1]
    assert b"wall" not in outs[0]
