"""A candle is closed only when the venue says so (or the next one starts): cryptofeed's OKX
parser fills ``closed`` from the candle's currency volume, so every OKX candle with volume was
published closed; the converter reads OKX's own ``confirm``."""

from __future__ import annotations

from typing import Any

import pytest
from cryptofeed.exchanges.okx import OKX

from cryptomon.clock import LiveClock
from cryptomon.events import Candle
from cryptomon.feeds.convert import Converter
from cryptomon.feeds.health import FeedHealth
from cryptomon.hub import Hub

MINUTE = 1597026360000


def frame(start_ms: int, close: str, *confirm: str) -> dict[str, Any]:
    """An OKX v5 ``candle1m`` push (docs' fields: ts, o, h, l, c, vol, volCcy, volCcyQuote,
    confirm; ``confirm`` left out: an older push without it)."""
    entry = [str(start_ms), "8533.02", "8553.74", "8527.17", close, "45", "0.0053", "45.2"]
    return {"arg": {"channel": "candle1m", "instId": "BTC-USDT"}, "data": [[*entry, *confirm]]}


async def parsed(*frames: dict[str, Any]) -> list[Candle]:
    """The frames through cryptofeed's own OKX candle parser into a converter (the parser
    alone: the feed object is not connected)."""
    hub = Hub()
    seen: list[Candle] = []
    hub.subscribe(Candle, seen.append)
    health = FeedHealth("okx", ["candles"], hub=hub, clock=LiveClock())
    conv = Converter("okx", hub=hub, health=health)
    feed = object.__new__(OKX)
    feed.candle_interval = "1m"
    feed.exchange_symbol_to_std_symbol = lambda symbol: symbol  # no symbol table loaded

    async def callback(channel: str, obj: Any, receipt: float) -> None:
        await conv.rare.candle(obj, receipt)

    feed.callback = callback
    for i, message in enumerate(frames):
        await feed._candle(message, MINUTE / 1000 + 10 + i)
    return seen


@pytest.mark.asyncio
async def test_okx_candles_close_on_confirm() -> None:
    """confirm 0, 0, 1, then the next minute's 0: closed once, on the venue's confirm."""
    got = await parsed(
        frame(MINUTE, "8540.1", "0"),
        frame(MINUTE, "8548.26", "0"),
        frame(MINUTE, "8548.3", "1"),
        frame(MINUTE + 60_000, "8549.0", "0"),
    )
    assert [(c.start, c.close, c.closed) for c in got] == [
        (1597026360.0, 8540.1, False),
        (1597026360.0, 8548.26, False),
        (1597026360.0, 8548.3, True),
        (1597026420.0, 8549.0, False),
    ]


@pytest.mark.asyncio
async def test_okx_candles_without_confirm_close_when_the_next_one_starts() -> None:
    """A push without ``confirm`` is open; the minute is closed (its last push) when the next
    minute starts."""
    got = await parsed(frame(MINUTE, "8540.1"), frame(MINUTE + 60_000, "8549.0"))
    assert [(c.start, c.close, c.closed) for c in got] == [
        (1597026360.0, 8540.1, False),
        (1597026360.0, 8540.1, True),
        (1597026420.0, 8549.0, False),
    ]
