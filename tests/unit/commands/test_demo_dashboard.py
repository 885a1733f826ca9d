"""demo: the dashboard URL and token, read access open, --config laid over the demo settings."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import pytest

from cryptomon.cli import main
from cryptomon.commands.demo_config import (
    DEMO_ADMIN_NAME,
    demo_scenario,
    demo_settings,
    demo_settings_data,
    demo_symbols,
)

SIM = SimpleNamespace(rest_url="http://127.0.0.1:9", port=9)


def _args(**over: object) -> argparse.Namespace:
    return argparse.Namespace(**{"json": True, "markets": 2, "event_every": 4.0, **over})


def test_demo_settings_open_reads_and_carry_an_admin_token(tmp_path: Path) -> None:
    """Reads are public on loopback, the generated token is admin, alert links use the port."""
    data = demo_settings_data(
        sim_url="http://127.0.0.1:9", db_path=tmp_path / "d.db", port=18080, token="t" * 20
    )
    assert data["api"]["public_read"] is True
    assert data["api"]["host"] == "127.0.0.1"
    (token,) = data["api"]["tokens"]
    assert (token["name"], token["scopes"]) == (DEMO_ADMIN_NAME, ["read", "trade", "admin"])
    assert data["alerts"]["api_base_url"] == "http://127.0.0.1:18080"


def test_config_file_overrides_the_demo_but_keeps_the_simulator(tmp_path: Path) -> None:
    """--config values win (tokens are added to the admin one); the exchanges stay simulated."""
    user = {
        "api": {"tokens": [{"name": "viewer", "token": "viewer-token-123", "scopes": ["read"]}]},
        "anomaly_detection": {"cooldown_s": 0.2},
        "exchanges": [{"name": "binance", "symbols": ["BTC/USDT"]}],
    }
    settings = demo_settings(
        _args(), sim=SIM, db_path=tmp_path / "d.db", port=18081, token="t" * 20, user=user
    )
    assert [t.name for t in settings.api.tokens] == ["viewer", DEMO_ADMIN_NAME]
    assert settings.anomaly_detection.cooldown_s == 0.2
    assert [e.name for e in settings.exchanges] == ["simulator"]
    assert settings.api.port == 18081
    assert settings.data_dir == tmp_path


def test_accelerated_scenario_goes_round_the_markets() -> None:
    """--markets and --event-every spread events over every market at the given pace."""
    symbols = demo_symbols(10)
    assert len(set(symbols)) == 10
    scenario = demo_scenario(every_s=0.5, symbols=symbols)
    first = scenario.injections[:10]
    assert {i.symbol for i in first} == set(symbols)
    assert first[1].at - first[0].at == pytest.approx(0.5)


def test_demo_bad_markets_event_pace_and_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Out-of-range --markets / --event-every and a missing --config exit 2 naming the problem."""
    assert main(["demo", "--markets", "11"]) == 2
    assert "--markets" in capsys.readouterr().err
    assert main(["demo", "--event-every", "0"]) == 2
    assert "--event-every" in capsys.readouterr().err
    missing = tmp_path / "nope.yaml"
    assert main(["demo", "--config", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_perpetual_adds_a_5x_perp_market_with_shorts(tmp_path: Path) -> None:
    """--perpetual streams BTC-USDT-PERP after the spot markets and trades it 5x isolated
    with shorts allowed; a --config override still wins."""
    assert demo_symbols(2, perpetual=True) == ("BTC-USDT", "ETH-USDT", "BTC-USDT-PERP")
    settings = demo_settings(
        _args(perpetual=True),
        sim=SIM,
        db_path=tmp_path / "d.db",
        port=18082,
        token="t" * 20,
        user={"trading": {"allow_short": False}},
    )
    assert settings.exchanges[0].symbols[-1] == "BTC-USDT-PERP"
    assert settings.trading.max_leverage == 5.0
    override = settings.trading.overrides["BTC-USDT-PERP"]
    assert (override.leverage, override.margin_mode) == (5.0, "isolated")
    assert settings.trading.allow_short is False
    plain = demo_settings(
        _args(), sim=SIM, db_path=tmp_path / "e.db", port=18083, token="t" * 20, user={}
    )
    assert "BTC-USDT-PERP" not in plain.exchanges[0].symbols
    assert plain.trading.overrides == {}


@pytest.mark.parametrize("markets", [1, 2, 3, 4, 6, 10])
def test_the_demo_scenario_moves_no_market_away_for_good(markets: int) -> None:
    """Each market's price jumps alternate up and down, whatever the number of markets: with
    the events going round 3 markets, the second got every +2.5 % jump and the third every
    -2.5 % (ETH 3,147 -> 7,178 in 14 minutes of the demo)."""
    symbols = demo_symbols(markets)
    scenario = demo_scenario(every_s=4.0, symbols=symbols)
    level = dict.fromkeys(symbols, 1.0)
    worst = 1.0
    for inj in scenario.injections[:600]:  # 40 minutes of the demo
        if inj.kind == "price_change":
            level[inj.symbol] *= 1 + inj.magnitude / 100
            worst = max(worst, *(max(v, 1 / v) for v in level.values()))
    assert worst < 1.06, level
