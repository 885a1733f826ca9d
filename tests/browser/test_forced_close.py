"""A venue's forced close (origin liquidation / settlement) in the trading and market views of
a ``demo --perpetual``.

The demo's perpetual only streams a random walk (its injected events go to the spot markets),
so a paper liquidation at 5x cannot be produced on time from a browser. The order rows come
from the real daemon; the orders answer gets one more row shaped as the paper broker books a
liquidation (``paper_forced.ForcedCloses.force``: origin ``liquidation``, client id with code
``q``, its reason) through Playwright's route, the one thing mocked here."""

from __future__ import annotations

import json
import time

from playwright.sync_api import Page, Route

from tests.browser.conftest import open_dashboard
from tests.browser.demo_daemon import ADMIN_TOKEN, Demo

PERP = "BTC-USDT-PERP"
REASON = (
    "liquidation: mark 47950.10 reached the liquidation price 48000.00000000 of the long "
    "0.01 BTC-USDT-PERP (entry 60000, 5x isolated): closed there, losing its initial margin"
)


def _forced(origin: str, code: str, reason: str) -> dict[str, object]:
    now = time.time()
    return {
        "client_order_id": f"cm{code}0000000000000000000000000001",
        "exchange": "simulator",
        "symbol": PERP,
        "side": "sell",
        "type": "market",
        "state": "filled",
        "amount": "0.01",
        "filled": "0.01",
        "avg_price": "48000",
        "origin": origin,
        "reduce_only": True,
        "reason": reason,
        "created": now,
        "updated": now,
    }


def _with_forced_close(page: Page, *rows: dict[str, object]) -> None:
    def handle(route: Route) -> None:
        if route.request.method != "GET":
            route.continue_()
            return
        resp = route.fetch()
        body = resp.json()
        body["orders"][:0] = list(rows) or [_forced("liquidation", "q", REASON)]
        route.fulfill(response=resp, body=json.dumps(body))

    page.route("**/api/v1/trading/orders?*", handle)


def test_liquidation_order_reads_as_a_forced_close_with_its_reason(page: Page, demo: Demo) -> None:
    _with_forced_close(page)
    open_dashboard(page, demo, ADMIN_TOKEN, view="trading")
    row = page.locator("#orders tbody tr", has_text="cmq0000")
    row.wait_for()
    origin = row.locator("td").nth(8)
    assert origin.locator("strong").inner_text() == "liquidation (forced by the venue)"
    assert "reached the liquidation price 48000" in origin.inner_text()
    assert origin.locator(".forced").get_attribute("title") == REASON
    # the market view of the perpetual says it too (it had no origin column)
    page.goto(f"{demo.url}#/market/simulator/{PERP}")
    cell = page.locator("#market-orders tbody tr", has_text="cmq0000").locator(".forced strong")
    cell.wait_for()
    assert cell.inner_text() == "liquidation (forced by the venue)"
    assert not page.console.errors, page.console.errors  # type: ignore[attr-defined]


VENUE_REASON = (
    "venue order: the venue's order 5 (web_4) sell 0.01 BTC-USDT-PERP at 48000.0, fee 0.192 "
    "USDT (not sent by cryptomon: a trade by hand on the account, or the venue's own)"
)


def test_a_venue_order_and_an_auto_deleveraging_read_as_closes_not_sent_by_cryptomon(
    page: Page, demo: Demo
) -> None:
    """A live account's close by hand (origin ``venue``) and the venue's auto-deleveraging
    (origin ``adl``) read in words with their reason, not as raw codes."""
    venue = {**_forced("venue", "v", VENUE_REASON), "client_order_id": "venue-5"}
    adl = {
        **_forced("adl", "a", "auto-deleveraging: the venue's order 7 (adl_autoclose)"),
        "client_order_id": "adl_autoclose-7",
    }
    _with_forced_close(page, venue, adl)
    open_dashboard(page, demo, ADMIN_TOKEN, view="trading")
    row = page.locator("#orders tbody tr", has_text="venue-5")
    row.wait_for()
    origin = row.locator("td").nth(8)
    assert origin.locator("strong").inner_text() == "venue order (not sent by cryptomon)"
    assert "a trade by hand on the account" in origin.inner_text()
    assert origin.locator(".forced").get_attribute("title") == VENUE_REASON
    adl_origin = page.locator("#orders tbody tr", has_text="adl_autoclose-7").locator("td").nth(8)
    assert adl_origin.locator("strong").inner_text() == "auto-deleveraging (forced by the venue)"
    assert not page.console.errors, page.console.errors  # type: ignore[attr-defined]
