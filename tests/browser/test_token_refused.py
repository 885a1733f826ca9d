"""A tab signed in with a token the daemon stops accepting: the demo restarted (its
generated admin token changes). The page says so and goes on as the public sees it."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Page

from tests.browser.demo_daemon import Demo


def test_a_token_refused_after_a_restart_is_dropped_and_the_page_goes_on_public(
    page: Page, demo: Demo
) -> None:
    """Signed in by the printed link, the tab sees the daemon restart with a new generated
    token: the WebSocket cannot reopen with the old one, so the page names the 401, signs
    out, reconnects without a token and shows live market data again (it used to retry with
    the refused token for good: pill offline, the view frozen, no message, and the failed
    authentications got the address throttled)."""
    page.goto(demo.link)
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_function("() => document.getElementById('who').textContent.includes('·')")
    page.evaluate("location.hash = '#/market/simulator/BTC-USDT'")
    page.wait_for_selector("#live.ok")
    page.wait_for_selector("#market-trades tbody td.num")
    demo.stop()
    page.wait_for_selector("#live:not(.ok)")
    demo.relaunch()
    page.wait_for_selector("#banner:has-text('refused (401)')", timeout=45_000)
    page.wait_for_selector("#live.ok")
    assert page.text_content("#who") == "public read (no token)"
    assert page.is_visible("#login")
    assert page.evaluate("sessionStorage.getItem('cryptomon.token')") is None
    # live again: a trade published after the restart reaches the reloaded view
    # (the restarted daemon's trades are in memory: the first one may still be on its way)
    deadline = time.monotonic() + 30
    trades: list[dict[str, Any]] = []
    while not trades:
        path = "/api/v1/market/trades?exchange=simulator&symbol=BTC-USDT&limit=1"
        trades = demo.get(path)["trades"]
        assert trades or time.monotonic() < deadline, "no BTC-USDT trade 30 s after the restart"
        if not trades:
            time.sleep(0.1)
    ts = trades[-1]["ts"]
    page.wait_for_function(
        """(ts) => {
          const first = document.querySelector('#market-trades tbody tr td');
          return first && first.textContent > new Date(ts * 1000).toISOString().slice(11, 19);
        }""",
        arg=ts,
    )
