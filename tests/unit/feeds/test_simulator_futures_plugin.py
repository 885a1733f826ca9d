"""The simulator_futures feed plugin: chosen by an exchange's ``plugin`` key, found even when
the installed metadata predates it, its specs loaded from the venue's USD-M exchangeInfo."""

from __future__ import annotations

import pytest

from cryptomon.config import ExchangeConfig
from cryptomon.errors import ConfigError
from cryptomon.feeds.registry import BUILTIN, load_plugins, plugin_for
from cryptomon.feeds.simulator_futures import SimulatorFuturesPlugin
from cryptomon.feeds.specs import spec_sources

URL = "http://127.0.0.1:1"


def futures(**kw: object) -> ExchangeConfig:
    fields: dict[str, object] = {
        "name": "simfutures",
        "plugin": "simulator_futures",
        "url": URL,
        "symbols": ["BTC-USDT-PERP"],
        **kw,
    }
    return ExchangeConfig.model_validate(fields)


def test_the_plugin_key_picks_the_usdm_simulator_feed() -> None:
    """``plugin: simulator_futures`` -> cryptofeed's BinanceFutures class at the simulator."""
    plugin = plugin_for(futures(), load_plugins())
    assert isinstance(plugin, SimulatorFuturesPlugin)
    cls = plugin.feed_class(futures())
    assert cls.__name__ == "SimulatorBinanceFutures"
    assert cls.rest_endpoints[0].address == URL


def test_builtins_are_found_without_their_entry_point() -> None:
    """Every built-in is found, also one the installed metadata may predate (a stale editable
    install of the package lists no simulator_futures entry point)."""
    plugins = load_plugins()
    assert set(BUILTIN) <= set(plugins)
    assert plugins["simulator_futures"] is SimulatorFuturesPlugin


def test_a_plugin_that_is_not_installed_is_a_config_error_naming_it() -> None:
    """An unknown ``plugin`` is a ConfigError naming the missing plugin."""
    with pytest.raises(ConfigError, match="an installed 'nosuch' feed plugin"):
        plugin_for(futures(plugin="nosuch"), load_plugins())


def test_without_url_the_error_names_the_key() -> None:
    """No ``url``: a ConfigError naming exchanges[simfutures].url, not a traceback."""
    with pytest.raises(ConfigError, match=r"exchanges\[simfutures\]\.url"):
        SimulatorFuturesPlugin().validate(futures(url=None))


def test_specs_come_from_the_usdm_exchange_info_loader() -> None:
    """The spec sources hold a venue loader for the exchange, nothing static."""
    sources = spec_sources([futures()])
    assert set(sources.loaders) == {"simfutures"}
    assert sources.static == []
