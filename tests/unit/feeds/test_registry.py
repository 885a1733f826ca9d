"""Feed plugin registry: entry-point discovery, rejection of bad registrations, selection."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from cryptomon.config import ExchangeConfig
from cryptomon.errors import ConfigError
from cryptomon.feeds.cryptofeed import CryptofeedPlugin, SimulatorPlugin
from cryptomon.feeds.registry import GROUP, load_plugins, plugin_for
from cryptomon.feeds.replay import ReplayPlugin


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=GROUP)


def test_builtins_are_registered_through_entry_points() -> None:
    """The installed package registers cryptofeed, simulator and replay."""
    plugins = load_plugins()
    assert plugins["cryptofeed"] is CryptofeedPlugin
    assert plugins["simulator"] is SimulatorPlugin
    assert plugins["replay"] is ReplayPlugin


def test_duplicate_names_are_rejected() -> None:
    """Two plugins under one name is a ConfigError naming both."""
    with pytest.raises(ConfigError) as info:
        load_plugins(
            [
                ep("cryptofeed", "cryptomon.feeds.cryptofeed:CryptofeedPlugin"),
                ep("cryptofeed", "cryptomon.feeds.replay:ReplayPlugin"),
            ]
        )
    text = str(info.value)
    assert "unique feed name" in text
    assert "ReplayPlugin" in text


def test_wrong_type_is_rejected() -> None:
    """An entry point that is not a FeedPlugin subclass is refused with the expected type."""
    with pytest.raises(ConfigError, match=r"subclass of cryptomon\.feeds\.registry\.FeedPlugin"):
        load_plugins([ep("bogus", "cryptomon.feeds.health:FeedHealth")])


def test_unimportable_entry_point_is_rejected() -> None:
    """An entry point that cannot be imported is a clear ConfigError, not a traceback."""
    with pytest.raises(ConfigError, match="importable"):
        load_plugins([ep("gone", "cryptomon.nowhere:Plugin")])


def test_plugin_selection() -> None:
    """replay source -> replay; name of a plugin -> it; any other name -> cryptofeed."""
    plugins = load_plugins()
    replay = ExchangeConfig(name="binance", source="replay", files=["x"])
    sim = ExchangeConfig(name="simulator", symbols=["BTC-USDT"], url="http://127.0.0.1:1")
    live = ExchangeConfig(name="Kraken", symbols=["BTC-USD"])
    assert isinstance(plugin_for(replay, plugins), ReplayPlugin)
    assert isinstance(plugin_for(sim, plugins), SimulatorPlugin)
    assert type(plugin_for(live, plugins)) is CryptofeedPlugin
