"""The perpetual's market view says which unit its sizes are in: the top of book's sizes and
the trades' amounts are base units (the feed converts a derivative's contracts), labelled with
the base currency, as the REST order book documents its levels; on a contract market the
venue's contracts stand beside them."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

from playwright.sync_api import Page

from cryptomon.api import ApiServer
from cryptomon.clock import LiveClock
from cryptomon.config import ApiConfig, ExchangeConfig
from cryptomon.feeds.replay import ReplayFeed, replay_feed_class
from cryptomon.hub import Hub
from cryptomon.market.inputs import MarketInputs
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.state import MarketState
from cryptomon.market.venues import specs_from_recording
from tests.browser.conftest import open_dashboard
from tests.browser.demo_daemon import Demo

PERP = "BTC-USDT-PERP"


def test_perpetual_book_and_trade_sizes_are_labelled_in_base_units(page: Page, demo: Demo) -> None:
    open_dashboard(page, demo, view=f"market/simulator/{PERP}")
    bid = page.locator("#top-of-book dd").first
    page.wait_for_function(
        "() => /×/.test(document.querySelector('#top-of-book dd')?.textContent || '')"
    )
    assert re.fullmatch(r"[\d,.]+ × [\d,.]+ BTC", bid.inner_text()), bid.inner_text()
    ask = page.locator("#top-of-book dd").nth(1).inner_text()
    assert re.fullmatch(r"[\d,.]+ × [\d,.]+ BTC", ask), ask
    header = page.locator("#market-trades th").nth(3).inner_text()
    assert header == "amount (BTC)", header
    assert not page.console.errors, page.console.errors  # type: ignore[attr-defined]


class ReplayedApi:
    """An ApiServer (public read, no store) over a replayed recording's market, on its own
    event loop in a thread: the browser tests' Playwright is synchronous."""

    def __init__(self, recording: Path, venue: str) -> None:
        self.recording, self.venue = recording, venue
        self.url = ""
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.stopped: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported by start()
            self.error = exc
            self.ready.set()

    async def _serve(self) -> None:
        self.stopped = asyncio.Event()
        registry = InstrumentRegistry()
        registry.add(specs_from_recording(self.recording / f"{self.venue}.0"))
        hub = Hub()
        market = MarketState(hub=hub, instruments=registry)
        config = ApiConfig.model_validate({"port": 0, "public_read": True})
        server = ApiServer(config=config, hub=hub, clock=LiveClock(), market=market)
        await hub.start()
        await server.start()
        files = sorted(str(p) for p in self.recording.glob(f"{self.venue}.*"))
        feed = ReplayFeed(
            ExchangeConfig(name=self.venue.lower(), source="replay", files=files, depth=20),
            feed_class=replay_feed_class(self.venue),
            hub=hub,
            clock=LiveClock(),
            market=MarketInputs(registry=registry),
        )
        await feed.start()
        await feed.done.wait()
        await feed.stop()
        assert feed.error is None, feed.error
        self.url = server.url
        self.ready.set()
        await self.stopped.wait()
        await server.stop()
        await hub.stop(1.0)

    def start(self) -> str:
        self.thread.start()
        assert self.ready.wait(120), "the replayed API did not start in 120 s"
        if self.error is not None:
            raise self.error
        return self.url

    def stop(self) -> None:
        if self.stopped is not None:
            self.loop.call_soon_threadsafe(self.stopped.set)
        self.thread.join(30)
        if not self.thread.is_alive():
            self.loop.close()


def test_contract_trades_show_the_venue_contracts_beside_base_amounts(
    page: Page, shared_data: Path
) -> None:
    """On a replayed Huobi swap market (100,000 SOS per contract) each recent trade's amount
    is in SOS with the venue's contracts beside it, as the top of book's sizes are."""
    api = ReplayedApi(shared_data, "HUOBI_SWAP")
    url = api.start()
    try:
        page.goto(url + "/#/market/huobi_swap/SOS-USDT-PERP")
        page.wait_for_selector("#market-trades tbody tr td")
        assert page.locator("#market-trades th").nth(3).inner_text() == "amount (SOS)"
        amounts = page.locator("#market-trades tbody tr td:nth-child(4)").all_inner_texts()
        assert "369,800,000 (3,698 ct)" in amounts, amounts
        assert all(re.fullmatch(r"[\d,.]+ \([\d,.]+ ct\)", a) for a in amounts), amounts
        # only the store's routes answer 404 here (no store): no script error
        errors = page.console.errors  # type: ignore[attr-defined]
        assert not [e for e in errors if "404" not in e], errors
    finally:
        api.stop()
