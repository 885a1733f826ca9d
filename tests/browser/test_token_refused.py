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
    # the page's requests and the 401 answers it read, in the order its own code met them
    # (the network events' order is not: a request issued before an answer was read may be
    # reported after it)
    page.add_init_script(
        """(() => {
          const real = window.fetch.bind(window);
          window.__seen = [];
          window.fetch = async (url, init = {}) => {
            const auth = (init.headers && init.headers.Authorization) || "";
            window.__seen.push(["sent", auth]);
            const resp = await real(url, init);
            if (resp.status === 401) window.__seen.push(["401", auth]);
            return resp;
          };
        })()"""
    )
    page.goto(demo.link)
    page.wait_for_selector("body[data-ready='1']")
    page.wait_for_function("() => document.getElementById('who').textContent.includes('·')")
    page.evaluate("location.hash = '#/market/simulator/BTC-USDT'")
    page.wait_for_selector("#live.ok")
    page.wait_for_selector("#market-trades tbody td.num")
    refused = f"Bearer {demo.token}"
    demo.stop()
    page.wait_for_selector("#live:not(.ok)")
    demo.relaunch()
    page.wait_for_selector("#banner:has-text('refused (401)')", timeout=45_000)
    page.wait_for_selector("#live.ok")
    assert page.text_content("#who") == "public read (no token)"
    assert page.is_visible("#login")
    assert page.evaluate("sessionStorage.getItem('cryptomon.token')") is None
    # the token is forgotten at its first refusal: no request carries it after that (each
    # would count as a failed authentication; api.auth_fail_limit of them throttle the
    # address, public reads too: the view's polls used to go on with it until the socket's
    # backoff asked again, and sometimes reached the limit)
    seen = [tuple(event) for event in page.evaluate("window.__seen")]
    first = seen.index(("401", refused))
    later = [i for i, event in enumerate(seen) if event == ("sent", refused) and i > first]
    assert not later, f"{len(later)} requests sent with the refused token after its first 401"
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
