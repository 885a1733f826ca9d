"""A dashboard tab whose WebSocket the daemon refuses for being one too many from the address
(429 too_many_clients_from_address past ``api.ws_max_anonymous_per_ip``) says so and keeps
retrying; once a slot is free it connects and the message goes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.browser.demo_daemon import Demo, start_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    d = start_demo(
        tmp_path_factory.mktemp("demo"), "--perpetual", yaml="  ws_max_anonymous_per_ip: 1\n"
    )
    yield d
    d.stop()


def _tab(browser: Browser, demo: Demo, view: str):  # type: ignore[no-untyped-def]
    ctx = browser.new_context(viewport={"width": 390, "height": 844})
    page = ctx.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{demo.url}#/{view}")
    page.wait_for_selector("body[data-ready='1']")
    return ctx, page


def test_a_tab_refused_by_the_address_cap_says_so_and_connects_when_a_slot_frees(
    browser: Browser, demo: Demo, tmp_path: Path
) -> None:
    first_ctx, first = _tab(browser, demo, "markets")
    first.wait_for_selector("#live.ok")  # the address's one anonymous socket
    ctx, page = _tab(browser, demo, "market/simulator/BTC-USDT-PERP")
    banner = page.locator("#banner")
    page.wait_for_function("() => document.getElementById('banner').textContent.includes('429')")
    text = banner.inner_text()
    assert "ws_max_anonymous_per_ip" in text, text
    assert "Retrying in" in text, text
    assert "Close another tab" in text, text
    assert page.locator("#live").inner_text() == "offline"
    first_ctx.close()  # the slot frees: the retry connects, the banner goes
    page.wait_for_selector("#live.ok", timeout=45_000)
    page.wait_for_function("() => document.getElementById('banner').hidden")
    # the live trades flow into the market view again
    before = page.locator("#market-trades tbody tr").first.inner_text()
    page.wait_for_function(
        "(b) => document.querySelector('#market-trades tbody tr').innerText !== b", arg=before
    )
    ctx.close()
