"""The dashboard's Alerts view against a demo whose database already holds more anomalies of
one market than a page: "Older" reaches the rest, and a filter the API refuses is not polled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import Page

from cryptomon.config import DatabaseConfig
from cryptomon.events import NotificationRecord
from cryptomon.kinds import AnomalyKind, NotificationEventType
from cryptomon.store.db import Database
from cryptomon.store.repos import insert_notifications
from tests import stubs
from tests.browser.conftest import open_dashboard
from tests.browser.demo_daemon import ADMIN_TOKEN, Demo, start_demo
from tests.integration.api.conftest import insert_anomalies

PAGE = 200  # the anomalies the view asks for at a time
STORED = PAGE + 37  # the stored anomalies of the seeded market
SYMBOL = "SEED-USDT"  # a market the demo does not feed: only the seeded rows match it
CHANNEL = "seeded"  # no channel of the demo's: only the seeded notifications match it

ROWS = "() => document.querySelectorAll('#alerts-anomalies tbody tr td:nth-child(2)').length"


async def _seed(url: str) -> None:
    """``STORED`` anomalies of ``SYMBOL``, a minute apart, the newest an hour ago, and as many
    notifications on ``CHANNEL``."""
    db = Database(DatabaseConfig(url=url))
    await db.start()
    now = time.time() - 3600
    try:
        records = [
            NotificationRecord(
                exchange="simulator",
                symbol=SYMBOL,
                ts=now - 60 * i,
                ts_recv=now - 60 * i,
                channel=CHANNEL,
                status="sent",
                title=f"notified {i}",
                attempts=1,
                event_type="anomaly",
            )
            for i in range(STORED)
        ]
        async with db.sessionmaker() as session, session.begin():
            await insert_notifications(session, records)
        await insert_anomalies(
            db,
            [
                stubs.anomaly(
                    exchange="simulator",
                    symbol=SYMBOL,
                    ts=now - 60 * i,
                    ts_recv=now - 60 * i,
                    ts_detected=now - 60 * i,
                    id=f"seed{i:05d}",
                    reasons=(f"seeded {i}",),
                )
                for i in range(STORED)
            ],
        )
    finally:
        await db.stop()


@pytest.fixture(scope="module")
def alerts_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    tmp = tmp_path_factory.mktemp("alerts-demo")
    url = f"sqlite+aiosqlite:///{tmp / 'demo.db'}"
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop may run in this thread
        pool.submit(lambda: asyncio.run(_seed(url))).result()
    d = start_demo(tmp, yaml=f'database: {{url: "{url}"}}\n')
    yield d
    d.stop()


def _reasons(page: Page) -> list[str]:
    return page.eval_on_selector_all(
        "#alerts-anomalies tbody tr td:nth-child(7)", "els => els.map((e) => e.textContent)"
    )


def test_older_anomalies_are_appended_and_kept_by_the_refresh(
    page: Page, alerts_demo: Demo
) -> None:
    """The market's newest page is listed; "Older" appends the rest by the API's cursor (then
    goes: nothing is left), and the 5 s refresh of the first page keeps the appended rows."""
    open_dashboard(page, alerts_demo, ADMIN_TOKEN, view="alerts")
    page.fill("#anomaly-filters input[name=symbol]", SYMBOL)
    page.press("#anomaly-filters input[name=symbol]", "Enter")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#alerts-anomalies tbody tr td:nth-child(2)')]"
        f".every((c) => c.textContent.endsWith('{SYMBOL}')) && ({ROWS})() === {PAGE}"
    )
    with page.expect_request(lambda r: "cursor=" in r.url):
        page.click("#anomalies-more")
    page.wait_for_function(f"() => ({ROWS})() === {STORED}")
    assert _reasons(page) == [f"seeded {i}" for i in range(STORED)]
    page.wait_for_selector("#anomalies-more", state="hidden")
    # the next refresh asks for the first page again: the older rows stay below it
    with page.expect_response(
        lambda r: "/api/v1/anomalies?" in r.url and SYMBOL in r.url and "cursor=" not in r.url
    ):
        pass
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)))")
    assert _reasons(page) == [f"seeded {i}" for i in range(STORED)]
    page.wait_for_selector("#anomalies-more", state="hidden")
    # another filter starts again from its own first page
    page.fill("#anomaly-filters input[name=symbol]", "")
    page.press("#anomaly-filters input[name=symbol]", "Enter")
    page.wait_for_function(f"() => ({ROWS})() === {PAGE}")
    page.wait_for_selector("#anomalies-more", state="visible")
    assert page.console.errors == []  # type: ignore[attr-defined]


def test_a_refused_filter_is_not_polled_again_until_it_is_changed(
    page: Page, alerts_demo: Demo
) -> None:
    """A filter the API refuses (422) is sent once, not again with every 5 s poll (the other
    table's polls go on); changing it asks again."""
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/api/v1/" in r.url else None)
    open_dashboard(page, alerts_demo, ADMIN_TOKEN, view="alerts")
    page.wait_for_selector("#alerts-anomalies tbody tr td")
    page.fill("#anomaly-filters input[name=symbol]", "BTC USDT")
    page.press("#anomaly-filters input[name=symbol]", "Enter")
    page.wait_for_selector("#anomaly-filters + .msg.err:not(:empty)")
    start = len(sent)
    asked = [u for u in sent if "symbol=BTC+USDT" in u]
    for _ in range(2):  # two polls of the notification history go by
        with page.expect_request(lambda r: "/api/v1/alerts/history?" in r.url):
            pass
    assert [u for u in sent if "symbol=BTC+USDT" in u] == asked
    assert not [u for u in sent[start:] if "/api/v1/anomalies?" in u]
    page.fill("#anomaly-filters input[name=symbol]", "BTC-USDT")
    with page.expect_response(lambda r: "symbol=BTC-USDT" in r.url) as fixed:
        page.press("#anomaly-filters input[name=symbol]", "Enter")
    assert fixed.value.status == 200
    # the same for the notification history's filter
    page.fill("#history-filters input[name=channel]", "x" * 65)
    page.press("#history-filters input[name=channel]", "Enter")
    page.wait_for_selector("#history-filters + .msg.err:not(:empty)")
    start = len(sent)
    asked = [u for u in sent if "channel=" + "x" * 65 in u]
    assert asked
    for _ in range(2):
        with page.expect_request(lambda r: "/api/v1/anomalies?" in r.url):
            pass
    assert not [u for u in sent[start:] if "/api/v1/alerts/history?" in u]
    assert [u for u in sent if "channel=" + "x" * 65 in u] == asked


HISTORY_ROWS = "() => document.querySelectorAll('#alerts-history tbody tr td:nth-child(2)').length"


def _titles(page: Page) -> list[str]:
    return page.eval_on_selector_all(
        "#alerts-history tbody tr td:nth-child(5)", "els => els.map((e) => e.textContent)"
    )


def test_older_notifications_are_appended_and_kept_by_the_refresh(
    page: Page, alerts_demo: Demo
) -> None:
    """The notification history lists a channel's newest page; "Older" appends the rest by
    the API's cursor (then goes: nothing is left), and the 5 s refresh keeps them."""
    open_dashboard(page, alerts_demo, ADMIN_TOKEN, view="alerts")
    page.fill("#history-filters input[name=channel]", CHANNEL)
    page.press("#history-filters input[name=channel]", "Enter")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#alerts-history tbody tr td:nth-child(2)')]"
        f".every((c) => c.textContent === '{CHANNEL}') && ({HISTORY_ROWS})() === {PAGE}"
    )
    page.wait_for_selector("#history-more", state="visible")
    with page.expect_request(lambda r: "/api/v1/alerts/history?" in r.url and "cursor=" in r.url):
        page.click("#history-more")
    page.wait_for_function(f"() => ({HISTORY_ROWS})() === {STORED}")
    assert _titles(page) == [f"notified {i}" for i in range(STORED)]
    page.wait_for_selector("#history-more", state="hidden")
    with page.expect_response(
        lambda r: "/api/v1/alerts/history?" in r.url and CHANNEL in r.url and "cursor=" not in r.url
    ):
        pass
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)))")
    assert _titles(page) == [f"notified {i}" for i in range(STORED)]
    # the event filter offers every type the API knows; another filter starts again from
    # its own first page
    options = "els => els.map((e) => e.value)"
    offered = page.eval_on_selector_all("#history-filters select[name=event_type] option", options)
    assert sorted(offered) == sorted(["", *(e.value for e in NotificationEventType)])
    kinds = page.eval_on_selector_all("#anomaly-filters select[name=kind] option", options)
    assert sorted(kinds) == sorted(["", *(k.value for k in AnomalyKind)])  # arbitrage was missing
    page.select_option("#history-filters select[name=event_type]", "fill")
    page.wait_for_function(f"() => ({HISTORY_ROWS})() === 0")
    assert page.text_content("#alerts-history tbody") == "no notifications match these filters"
    assert page.text_content("#history-filters + .msg") == ""
    page.wait_for_selector("#history-more", state="hidden")
    assert page.console.errors == []  # type: ignore[attr-defined]


# every filter field of the dashboard: (field, the list it filters, a value it accepts)
FILTER_FIELDS = [
    ("#anomaly-filters input[name=symbol]", "/api/v1/anomalies?", SYMBOL),
    ("#anomaly-filters input[name=exchange]", "/api/v1/anomalies?", "simulator"),
    ("#history-filters input[name=channel]", "/api/v1/alerts/history?", CHANNEL),
]


@pytest.mark.parametrize(
    ("field", "path", "value"), FILTER_FIELDS, ids=[f[0] for f in FILTER_FIELDS]
)
def test_one_enter_in_a_filter_field_sends_one_request(
    page: Page, alerts_demo: Demo, field: str, path: str, value: str
) -> None:
    """Enter in an edited filter field fires the field's change and the form's submit: each
    asked the API, so one Enter sent the request twice. Now one Enter, or one click on Apply
    after an edit, sends one request; Apply again asks afresh (one more). The page's clock
    is paused meanwhile: no 5 s refresh can add a request of its own."""
    page.clock.install()
    open_dashboard(page, alerts_demo, ADMIN_TOKEN, view="alerts")
    page.wait_for_selector("#alerts-history tbody tr td")
    page.clock.pause_at(page.evaluate("Date.now()") + 1000)
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if path in r.url else None)
    page.fill(field, value)
    with page.expect_response(lambda r: path in r.url and value in r.url):
        page.press(field, "Enter")
    assert len(sent) == 1, sent
    form = field.split(maxsplit=1)[0]
    page.fill(field, "")
    with page.expect_response(lambda r: path in r.url and value not in r.url):
        page.click(f"{form} button[type=submit]")
    assert len(sent) == 2, sent
    with page.expect_response(lambda r: path in r.url and value not in r.url):
        page.click(f"{form} button[type=submit]")
    assert len(sent) == 3, sent


def test_signed_out_the_history_says_why_it_lists_nothing_and_asks_nothing(
    page: Page, alerts_demo: Demo
) -> None:
    """Without a token the notification history (read scope) is not asked for: the panel
    says to sign in, its table says the same instead of "no notifications match" (which read
    as if none were stored), and no "Older" is offered; the polls leave it alone."""
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/api/v1/" in r.url else None)
    open_dashboard(page, alerts_demo, view="alerts")
    page.wait_for_selector("#history-filters + .msg.err:not(:empty)")
    assert "sign in" in (page.text_content("#history-filters + .msg") or "")
    assert page.text_content("#alerts-history tbody") == "sign in to list the notifications"
    for _ in range(2):  # two polls of the anomalies go by
        with page.expect_request(lambda r: "/api/v1/anomalies?" in r.url):
            pass
    assert not [u for u in sent if "/api/v1/alerts/history" in u]
    assert page.is_hidden("#history-more")
    assert page.console.errors == []  # type: ignore[attr-defined]
