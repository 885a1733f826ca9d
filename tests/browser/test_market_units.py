"""The perpetual's market view says which unit its sizes are in: the top of book's sizes and
the trades' amounts are base units (the feed converts a derivative's contracts), labelled with
the base currency, as the REST order book documents its levels."""

from __future__ import annotations

import re

from playwright.sync_api import Page

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
