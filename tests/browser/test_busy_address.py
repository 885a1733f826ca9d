"""The dashboard while its address has ``api.max_inflight_per_ip`` requests in progress (429
too_many_in_progress): a sign-in link's session request refused that way keeps the token, says
why and asks again with backoff; once the address's request is answered, the page is signed in.
(Before, any failed session request was taken as a refused token: the token was forgotten.)

The address's slots are held the realistic way: requests whose body is still arriving (order
POSTs from this same address that send their headers and no body yet)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import open_dashboard
from tests.browser.demo_daemon import ADMIN_TOKEN, Demo, start_demo, wait_for

SLOTS = 8  # the address's cap; below the browser's 6 parallel loads the page itself is refused


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    d = start_demo(
        tmp_path_factory.mktemp("demo"),
        "--perpetual",
        yaml=f"  max_inflight_per_ip: {SLOTS}\n  body_timeout_s: 60\n  request_timeout_s: 90\n",
    )
    yield d
    d.stop()


def _hold_the_slot(demo: Demo) -> socket.socket:
    """An order POST with its headers sent and its body not yet: in progress until closed."""
    url = urlsplit(demo.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    sock.sendall(
        (
            f"POST /api/v1/trading/orders HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\n"
            "Content-Length: 200\r\n\r\n{"
        ).encode()
    )
    return sock


def _busy(demo: Demo) -> bool:
    try:
        demo.get("/api/v1/session")
    except OSError as exc:
        return "429" in str(exc)
    return False


def _hold_every_slot(demo: Demo, held: list[socket.socket]) -> None:
    """Wait until the ``held`` requests fill every slot of the address. One that met the
    page's own polls in progress was refused (429) and holds nothing: one more is sent at
    each look that finds a slot free. A look finding the address busy while one of the
    page's polls is in flight would pass too early, so it takes six in a row."""
    streak = 0

    def busy() -> bool:
        nonlocal streak
        if _busy(demo):
            streak += 1
        else:
            streak = 0
            held.append(_hold_the_slot(demo))
        return streak >= 6

    wait_for(busy, 10, "every slot of the address held")


def test_a_sign_in_refused_as_too_many_in_progress_keeps_the_token_and_retries(
    page: Page, demo: Demo
) -> None:
    open_dashboard(page, demo)  # the page and its scripts loaded while the address is idle
    page.wait_for_selector("#live.ok")
    held = [_hold_the_slot(demo) for _ in range(SLOTS)]
    try:
        _hold_every_slot(demo, held)
        page.evaluate(f"location.hash = '#token={ADMIN_TOKEN}'")
        page.wait_for_function(
            "() => document.getElementById('banner').textContent.includes('Retrying in')"
        )
        text = page.locator("#banner").inner_text()
        assert "(HTTP 429)" in text, text
        assert "already in progress" in text, text
        assert page.evaluate("sessionStorage.getItem('cryptomon.token')") == ADMIN_TOKEN
    finally:
        for sock in held:
            sock.close()
    page.wait_for_function(
        "() => document.getElementById('who').textContent.startsWith('operator')", timeout=45_000
    )
    page.wait_for_function("() => document.getElementById('banner').hidden")
    assert page.evaluate("sessionStorage.getItem('cryptomon.token')") == ADMIN_TOKEN


def test_the_market_view_loaded_while_the_address_is_busy_loads_once_it_is_not(
    page: Page, demo: Demo
) -> None:
    open_dashboard(page, demo)
    page.wait_for_selector("#live.ok")
    held = [_hold_the_slot(demo) for _ in range(SLOTS)]
    try:
        _hold_every_slot(demo, held)
        page.evaluate("location.hash = '#/market/simulator/BTC-USDT-PERP'")
        note = page.locator("#market-msg")
        page.wait_for_function(
            "() => document.getElementById('market-msg')?.textContent.includes('Retrying in')"
        )
        text = note.inner_text()
        assert "candles: " in text, text
        assert "(HTTP 429)" in text, text
    finally:
        for sock in held:
            sock.close()
    # the note goes only when a load answers (a live trade does not hide a failure's note)
    page.wait_for_function("() => document.getElementById('market-msg').hidden", timeout=45_000)
    page.wait_for_function("() => Number(document.getElementById('chart').dataset.candles) >= 1")
