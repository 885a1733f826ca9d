"""The composition root wires the order engine: paper broker, store journal, signals; it
starts reconciled and stops cleanly; a bad trading section is a clear config error."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryptomon.app import build_app
from cryptomon.config import load_settings
from cryptomon.errors import ConfigError
from cryptomon.store.journal import StoreJournal
from cryptomon.trading.brokers.paper import PaperBroker
from cryptomon.trading.exit_journal import ExitJournal
from cryptomon.trading.risk import RiskState
from cryptomon.trading.signals import SignalGenerator


@pytest.mark.asyncio
async def test_build_app_wires_and_starts_the_paper_engine(tmp_path: Path) -> None:
    """services.trading is a started, reconciled engine on the paper broker and the database;
    the signal generator shares its runtime settings."""
    settings = load_settings(
        data={
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'cm.db'}"},
            "api": {"enabled": False},
            "trading": {"auto_trading_enabled": True, "paper": {"starting_balance": 2500}},
        }
    )
    app = build_app(settings)
    engine = app.services.trading
    assert engine is not None
    assert isinstance(engine.broker, PaperBroker)
    assert isinstance(engine.journal, ExitJournal)  # exits spool to data_dir when the db is away
    assert isinstance(engine.journal.inner, StoreJournal)
    assert app.services.market is not None
    names = [c.name for c in app.components]
    assert names.index("trading-engine") > names.index("database")
    (signals,) = [c for c in app.components if isinstance(c, SignalGenerator)]
    assert signals.runtime is engine.runtime  # one runtime object: API changes reach both
    await app.start()
    try:
        assert engine.reconciled
        assert engine.risk_state == RiskState.ACTIVE
        assert engine.stats()["equity"] == "2500"
    finally:
        assert await app.stop()


def test_live_mode_without_keys_is_a_config_error() -> None:
    """mode: live without API keys fails at load time with a message naming the keys."""
    with pytest.raises(ConfigError, match=r"live\.api_key"):
        load_settings(data={"trading": {"mode": "live"}})


@pytest.mark.parametrize(
    ("trading", "path", "expected"),
    [
        ({"max_open_positions": 0}, "trading.max_open_positions", "greater than or equal to 1"),
        ({"risk_percentage": 150}, "trading.risk_percentage", "less than or equal to 100"),
        # a balance past what an equity row holds (NUMERIC(36, 18)): every snapshot refused
        (
            {"paper": {"starting_balance": 1e30}},
            "trading.paper.starting_balance",
            "less than 1000000000000000",
        ),
        # a take-profit 1e300 % away: every entry's bracket past what an order row holds,
        # each refused by PostgreSQL ("numeric field overflow")
        (
            {"take_profit_percentage": 1e300},
            "trading.take_profit_percentage",
            "less than or equal to 10000",
        ),
        (
            {"max_symbol_exposure": 5000, "max_total_exposure": 1000},
            "trading",
            "max_symbol_exposure",
        ),
        (
            {"signal_rules": [{"name": "x", "style": "sideways"}]},
            "trading.signal_rules.0.style",
            "'momentum' or 'reversion'",
        ),
        (
            {"indicators": {"sma_fast": 60, "sma_slow": 50}},
            "trading.indicators",
            "sma_fast (60) < sma_slow (50)",
        ),
        ({"paper": {"taker_fee": -1}}, "trading.paper.taker_fee", "greater than or equal to 0"),
        ({"live": {"exchange": "binance", "bogus": 1}}, "trading.live.bogus", "no such key"),
        ({"min_signal_strength": 2}, "trading.min_signal_strength", "less than or equal to 1"),
    ],
)
def test_bad_trading_config_names_the_key(trading: dict, path: str, expected: str) -> None:
    """Each bad trading value is reported with its key path and what was expected."""
    with pytest.raises(ConfigError) as err:
        load_settings(data={"trading": trading})
    text = str(err.value)
    assert path in text
    assert expected in text


def test_live_keys_from_files(tmp_path: Path) -> None:
    """api_key_file / secret_file load the secrets; they stay out of the redacted config."""
    (tmp_path / "k").write_text("KEY123\n")
    (tmp_path / "s").write_text("SECRET456\n")
    settings = load_settings(
        data={
            "trading": {
                "mode": "live",
                "live": {"api_key_file": str(tmp_path / "k"), "secret_file": str(tmp_path / "s")},
            }
        }
    )
    live = settings.trading.live
    assert live.api_key is not None
    assert live.api_key.get_secret_value() == "KEY123"
    assert "SECRET456" in settings.secret_values()
    assert settings.redacted()["trading"]["live"]["secret"] == "***"
