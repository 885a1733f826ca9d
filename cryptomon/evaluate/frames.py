"""Trade messages in each exchange's own websocket format, for injection into recordings.

One :class:`TradeFrame` subclass per exchange of the shared recordings (class data and one
``render`` each, never an exchange-name branch in shared code). ``channel`` finds what the
message needs beyond the exchange's symbol (Bitfinex and Kraken address a subscription by
the channel id their subscribe reply carried); ``marker`` is a substring of that market's
recorded trade lines (to pick the websocket file of the market). ``render_book`` writes book
levels, ``shift`` rewrites a recorded trade, book or ticker message of a market with its
prices moved (a persistent price jump), ``overlay`` applies levels to a recorded whole book.

The base and the frame data are in :mod:`cryptomon.evaluate.frame_base`, each venue family's
frame in its own module (``frames_<venue>.py``); this module maps exchange names to them.
"""

from __future__ import annotations

from cryptomon.evaluate.frame_base import BookUpdate, Injected, Shift, TradeFrame
from cryptomon.evaluate.frames_binance import BinanceFrame
from cryptomon.evaluate.frames_bitfinex import BitfinexFrame
from cryptomon.evaluate.frames_gateio import GateioFrame, GateioFuturesFrame
from cryptomon.evaluate.frames_huobi import HuobiSwapFrame
from cryptomon.evaluate.frames_kraken import KrakenFrame
from cryptomon.evaluate.frames_okx import OkxFrame

__all__ = [
    "FRAMES",
    "BinanceFrame",
    "BitfinexFrame",
    "BookUpdate",
    "GateioFrame",
    "GateioFuturesFrame",
    "HuobiSwapFrame",
    "Injected",
    "KrakenFrame",
    "OkxFrame",
    "Shift",
    "TradeFrame",
    "frame_for",
]


FRAMES: dict[str, TradeFrame] = {
    name: frame()
    for frame in (
        BinanceFrame,
        OkxFrame,
        GateioFrame,
        GateioFuturesFrame,
        BitfinexFrame,
        KrakenFrame,
        HuobiSwapFrame,
    )
    for name in frame.names
}


def frame_for(exchange: str) -> TradeFrame:
    """The trade format of ``exchange`` (base frame: not injectable)."""
    return FRAMES.get(exchange.lower(), TradeFrame())
