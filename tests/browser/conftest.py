"""Browser fixtures: one demo daemon and one chromium per module (the browser is closed
before the next module, so Playwright's own event loop never outlives these tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.browser.demo_daemon import CHROMIUM, CHROMIUM_ARGS, Demo, start_demo


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


# The tests place manual orders beside the demo's own auto-trading, and the risk check's
# default of 10 new orders a minute is shared by both: late in a module the demo's entries
# had used it up and a test's order was refused (409 "10 orders in the last minute"). The
# same holds for the position limits: the demo's entries are capped at max_position_size
# (1,000 USDT), so a test's buy on a market the demo held was refused ("position would be
# ... (max 1000)"). Its entries are sized below that instead (0.24 % of 10,000 USDT at a
# 3 % stop: ~800 USDT) and the limits leave room for the tests' orders.
MANUAL_ORDER_ROOM = (
    "trading:\n"
    "  max_orders_per_minute: 600\n"
    "  risk_percentage: 0.24\n"
    "  max_position_size: 2000\n"
    "  max_symbol_exposure: 2000\n"
    "  max_total_exposure: 8000\n"
    "  daily_loss_limit: 100000\n"  # the demo's jumpy market must not halt the tests' entries
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    d = start_demo(tmp_path_factory.mktemp("demo"), "--perpetual", yaml=MANUAL_ORDER_ROOM)
    yield d
    d.stop()


class Console:
    """Console errors and uncaught page errors seen by a page."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    p = ctx.new_page()
    p.set_default_timeout(30_000)
    p.console = Console(p)  # type: ignore[attr-defined]
    yield p
    ctx.close()


def open_dashboard(page: Page, demo: Demo, token: str | None = None, view: str = "markets") -> None:
    """Load the page, sign in with ``token`` (none: public read) and show ``view``."""
    page.goto(demo.url + "#/" + view)
    page.wait_for_selector("body[data-ready='1']")
    if token is not None:
        page.fill("#token", token)
        page.click("#login button[type=submit]")
        page.wait_for_function("() => document.getElementById('who').textContent.includes('·')")


def shot(page: Page, tmp: Path, name: str, capsys: pytest.CaptureFixture[str]) -> Path:
    """A full-page screenshot under the test's temporary directory; its path is printed."""
    path = tmp / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    with capsys.disabled():
        print(f"\nscreenshot: {path}")
    return path
