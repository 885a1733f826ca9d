"""The ``simulator_futures`` feed plugin: the loopback simulator's USD-M futures venue
(:mod:`cryptomon.sim.usdm`) through cryptofeed's real ``BinanceFutures`` code, with only its
endpoint addresses changed (:func:`~cryptomon.feeds.simulated.usdm_simulator_class`)::

    exchanges:
      - name: simfutures
        plugin: simulator_futures
        url: http://127.0.0.1:8901
        symbols: [BTC-USDT-PERP]

Its instrument specs come from the venue's ``/fapi/v1/exchangeInfo`` through the instrument
loader (:func:`cryptomon.feeds.specs.spec_sources`), as for the real Binance USD-M venue.
"""

from __future__ import annotations

from cryptofeed.feed import Feed

from cryptomon.config import ExchangeConfig
from cryptomon.errors import ConfigError, Problem
from cryptomon.feeds.cryptofeed import CryptofeedPlugin
from cryptomon.feeds.simulated import usdm_simulator_class

NAME = "simulator_futures"
INFO_PATH = "/fapi/v1/exchangeInfo"


def simulator_url(config: ExchangeConfig) -> str:
    """The simulator's REST address of ``config``; ConfigError naming the key when missing."""
    if not config.url:
        raise ConfigError(
            [
                Problem(
                    f"exchanges[{config.name}].url",
                    None,
                    "the simulator's address, e.g. http://127.0.0.1:8901",
                )
            ]
        )
    return config.url


class SimulatorFuturesPlugin(CryptofeedPlugin):
    """The simulator's USD-M venue (``url`` = its REST address) through cryptofeed's
    BinanceFutures code."""

    name = NAME

    def feed_class(self, config: ExchangeConfig) -> type[Feed]:
        return usdm_simulator_class(simulator_url(config))
