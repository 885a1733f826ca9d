"""The REST venue loader over real HTTP: a loopback server answers cryptofeed's own
instrument URLs with the recorded answers; the registry resolves from them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from cryptofeed.exchanges import EXCHANGE_MAP

from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.venues import (
    RecordingError,
    instrument_urls,
    read_rest_answers,
    rest_loader,
)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@pytest.mark.asyncio
@pytest.mark.parametrize("venue", ["HUOBI_SWAP", "OKX", "GATEIO_FUTURES"])
async def test_loader_fetches_cryptofeeds_instrument_urls(shared_data: Path, venue: str) -> None:
    """cryptofeed's instrument URLs for the venue, served from the recording, give specs."""
    answers = {
        path_of(url): answer for url, answer in read_rest_answers(shared_data / f"{venue}.0")
    }
    urls = instrument_urls(EXCHANGE_MAP[venue])
    assert urls
    assert {path_of(url) for url in urls} <= set(answers)

    async def serve(request: web.Request) -> web.Response:
        return web.json_response(answers[request.path_qs])

    app = web.Application()
    app.router.add_get("/{tail:.*}", serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as session:

        async def get_json(url: str) -> Any:
            async with session.get(f"http://127.0.0.1:{port}{path_of(url)}") as response:
                return json.loads(await response.text())

        try:
            loader = rest_loader(venue, venue.lower(), urls, get_json)
            registry = InstrumentRegistry(loaders={venue.lower(): loader})
            assert await registry.load(venue.lower()) > 100
        finally:
            await runner.cleanup()


def test_unknown_venue_fails_when_wired() -> None:
    """Building a loader for a venue without a format is an error at wiring time."""

    async def get_json(url: str) -> Any:
        raise AssertionError(f"no request expected, got {url}")

    with pytest.raises(RecordingError, match="no instrument format for exchange 'BITFINEX'"):
        rest_loader("BITFINEX", "bitfinex", [], get_json)
