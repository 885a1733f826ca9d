"""cryptofeed adapter: exchange lookup, channel and symbol validation (no network)."""

from __future__ import annotations

import pytest
from cryptofeed.exchanges import Binance, Kraken

from cryptomon.clock import LiveClock
from cryptomon.config import ExchangeConfig
from cryptomon.errors import ConfigError
from cryptomon.feeds.cryptofeed import (
    CryptofeedPlugin,
    SimulatorPlugin,
    check_symbols,
    exchange_class,
    simulator_class,
)
from cryptomon.feeds.manager import build_sources
from cryptomon.hub import Hub


def test_exchange_names_are_case_insensitive() -> None:
    """binance, BINANCE and Binance all name cryptofeed's Binance class."""
    assert exchange_class("binance") is Binance
    assert exchange_class("BINANCE") is Binance
    assert exchange_class("Kraken") is Kraken


def test_unknown_exchange_lists_valid_names_and_close_matches() -> None:
    """A typo gives a ConfigError listing the valid names and suggesting close ones."""
    with pytest.raises(ConfigError) as info:
        exchange_class("binanse")
    text = str(info.value)
    assert "exchanges[binanse].name" in text
    assert "did you mean binance" in text
    assert "kraken" in text
    assert "simulator" in text


def test_unknown_exchange_fails_the_build_with_config_error() -> None:
    """build_sources (used by _build_feeds) rejects an unknown exchange before any network."""
    cfg = ExchangeConfig(name="nosuchexchange", symbols=["BTC-USDT"])
    with pytest.raises(ConfigError, match="nosuchexchange"):
        build_sources([cfg], hub=Hub(), clock=LiveClock())


def test_unsupported_channel_is_a_config_error() -> None:
    """Subscribing to funding on Binance spot names the channels Binance supports."""
    cfg = ExchangeConfig(name="binance", symbols=["BTC-USDT"], subscriptions=["funding"])
    with pytest.raises(ConfigError) as info:
        CryptofeedPlugin().validate(cfg)
    assert "funding" in str(info.value)
    assert "trades" in str(info.value)


def test_unknown_symbol_suggests_close_matches() -> None:
    """A symbol the exchange does not list is reported with its nearest listed symbols."""
    cfg = ExchangeConfig(name="binance", symbols=["BTC-USDT", "ETH-USTD"])
    with pytest.raises(ConfigError) as info:
        check_symbols(cfg, ["BTC-USDT", "ETH-USDT", "ETH-BTC"])
    text = str(info.value)
    assert "ETH-USTD" in text
    assert "close matches: ETH-USDT" in text
    assert "BTC-USDT'" not in text


def test_simulator_needs_url() -> None:
    """The simulator exchange without a url is a ConfigError naming the key."""
    cfg = ExchangeConfig(name="simulator", symbols=["BTC-USDT"])
    with pytest.raises(ConfigError, match=r"exchanges\[simulator\]\.url"):
        SimulatorPlugin().validate(cfg)


def test_simulator_class_only_changes_endpoints() -> None:
    """The simulator class is cryptofeed's Binance with loopback endpoints as class data."""
    cls = simulator_class("http://127.0.0.1:9999")
    assert issubclass(cls, Binance)
    assert cls.websocket_channels == Binance.websocket_channels
    assert cls.rest_endpoints[0].route("instruments") == "http://127.0.0.1:9999/api/v3/exchangeInfo"
    assert cls.websocket_endpoints[0].address == "wss://127.0.0.1:9999"
    assert cls.plain_ws is True
