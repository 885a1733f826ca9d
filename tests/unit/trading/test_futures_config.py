"""The contract settings of the trading section: leverage, margin mode, maintenance rate and
their per-symbol overrides, capped by max_leverage."""

from __future__ import annotations

import pytest

from cryptomon.config import load_settings
from cryptomon.errors import ConfigError


def test_defaults_are_one_x_isolated() -> None:
    """Without settings a contract trades at 1x isolated with a 0.5% fallback mmr."""
    cfg = load_settings().trading
    assert cfg.leverage_for("BTC-USDT-PERP") == 1.0
    assert cfg.margin_mode_for("BTC-USDT-PERP") == "isolated"
    assert cfg.mmr_for("BTC-USDT-PERP") == 0.005


def test_overrides_apply_per_symbol() -> None:
    """A symbol override wins over the section values; other symbols keep the section's."""
    cfg = load_settings(
        data={
            "trading": {
                "max_leverage": 10,
                "leverage": 3,
                "margin_mode": "cross",
                "overrides": {"eth/usdt-perp": {"leverage": 5, "margin_mode": "isolated"}},
            }
        }
    ).trading
    assert cfg.leverage_for("ETH-USDT-PERP") == 5.0
    assert cfg.margin_mode_for("ETH-USDT-PERP") == "isolated"
    assert cfg.mmr_for("ETH-USDT-PERP") == 0.005
    assert cfg.leverage_for("BTC-USDT-PERP") == 3.0
    assert cfg.margin_mode_for("BTC-USDT-PERP") == "cross"


def test_leverage_above_the_account_cap_is_a_clear_error() -> None:
    """A leverage (section or override) above max_leverage names the key and the cap."""
    with pytest.raises(ConfigError, match=r"overrides\.BTC-USDT-PERP\.leverage \(20\.0\)"):
        load_settings(
            data={
                "trading": {
                    "max_leverage": 10,
                    "overrides": {"BTC-USDT-PERP": {"leverage": 20}},
                }
            }
        )
    with pytest.raises(ConfigError, match="max_leverage"):
        load_settings(data={"trading": {"leverage": 5}})


def test_bad_margin_mode_is_rejected() -> None:
    """A margin mode other than isolated or cross is a startup error naming the key."""
    with pytest.raises(ConfigError, match="margin_mode"):
        load_settings(data={"trading": {"margin_mode": "portfolio"}})
