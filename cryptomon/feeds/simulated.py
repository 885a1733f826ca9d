"""cryptofeed's Binance feeds pointed at the loopback simulator: class data only (endpoint
addresses and an exchange id of their own, so cryptofeed's global symbol table of the real
venue is untouched); ``plain_ws`` lets the supervisor use ``ws://`` on loopback.

- :func:`simulator_class`: the spot feed (``Binance``) at :class:`~cryptomon.sim.exchange.
  SimExchange`;
- :func:`usdm_simulator_class`: the USD-M futures feed (``BinanceFutures``) at the simulator's
  USD-M venue (REST ``/fapi/v1/...``, streams under ``/fstream``:
  :mod:`cryptomon.sim.usdm_streams`).
"""

from __future__ import annotations

from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint
from cryptofeed.exchanges import Binance, BinanceFutures
from cryptofeed.feed import Feed

from cryptomon.feeds.supervisor import Supervised


class SimulatorBinance(Binance):
    """cryptofeed's Binance spot feed pointed at :class:`~cryptomon.sim.exchange.SimExchange`."""

    id = "SIMULATOR"


def simulator_class(url: str) -> type[Feed]:
    """``SimulatorBinance`` with endpoints at ``url`` (``http://127.0.0.1:PORT``)."""
    rest = url.rstrip("/")
    host = rest.split("://", 1)[-1]
    secure = rest.startswith("https://")
    attrs = {
        "websocket_endpoints": [WebsocketEndpoint(f"wss://{host}")],
        "rest_endpoints": [
            RestEndpoint(
                rest,
                routes=Routes("/api/v3/exchangeInfo", l2book="/api/v3/depth?symbol={}&limit={}"),
            )
        ],
        "plain_ws": not secure,
    }
    return type("SimulatorBinance", (Supervised, SimulatorBinance), attrs)


class SimulatorBinanceFutures(BinanceFutures):
    """cryptofeed's Binance USD-M futures feed pointed at the simulator's USD-M venue
    (:mod:`cryptomon.sim.usdm`): its own id, so the symbol table of the real venue is untouched."""

    id = "SIMULATOR_FUTURES"


def usdm_simulator_class(url: str) -> type[Feed]:
    """``SimulatorBinanceFutures`` with endpoints at ``url`` (REST ``/fapi/v1/...``, streams
    under ``/fstream``: :mod:`cryptomon.sim.usdm_streams`)."""
    rest = url.rstrip("/")
    host = rest.split("://", 1)[-1]
    attrs = {
        "websocket_endpoints": [
            WebsocketEndpoint(f"wss://{host}/fstream", options={"compression": None})
        ],
        "rest_endpoints": [
            RestEndpoint(
                rest,
                routes=Routes(
                    "/fapi/v1/exchangeInfo",
                    l2book="/fapi/v1/depth?symbol={}&limit={}",
                    open_interest="/fapi/v1/openInterest?symbol={}",
                ),
            )
        ],
        "plain_ws": not rest.startswith("https://"),
    }
    return type("SimulatorBinanceFutures", (Supervised, SimulatorBinanceFutures), attrs)
