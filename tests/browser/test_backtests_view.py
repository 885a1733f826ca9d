"""The dashboard's Backtests view against a demo whose database holds stored runs: the
table shows what GET /api/v1/backtests lists (created, market, net PnL, trades), a page at
a time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Page

from cryptomon.backtest.session import BacktestRequest, run_series, store_run
from tests.browser.conftest import open_dashboard, shot
from tests.browser.demo_daemon import ADMIN_TOKEN, Demo, start_demo
from tests.integration.api.test_backtests_api import stored_runs
from tests.unit.backtest.conftest import random_walk, settings

PAGE = 50  # the runs the view asks for at a time (the API's default page)


@pytest.fixture(scope="module")
def backtest_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """A demo on a SQLite file that already holds one stored backtest run."""
    tmp = tmp_path_factory.mktemp("bt-demo")
    url = f"sqlite+aiosqlite:///{tmp / 'demo.db'}"
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop may run in this thread
        pool.submit(lambda: asyncio.run(stored_runs(url, 1, report=True))).result()
    d = start_demo(tmp, yaml=f'database: {{url: "{url}"}}\n')
    yield d
    d.stop()


def test_the_stored_run_row_shows_its_time_market_pnl_and_trades(
    page: Page, backtest_demo: Demo
) -> None:
    """Every column of the run's row is filled from the API's fields (created_at, symbols,
    summary.pnl / pnl_pct / quote / trades); none is a placeholder dash."""
    [run] = backtest_demo.get("/api/v1/backtests", token=ADMIN_TOKEN)["items"]
    summary = run["summary"]
    open_dashboard(page, backtest_demo, ADMIN_TOKEN, view="backtests")
    page.wait_for_selector("#backtest-runs tbody tr")
    cells = [
        c.strip()
        for c in page.locator("#backtest-runs tbody tr").first.all_inner_texts()[0].split("\t")
    ]
    assert cells[0] == str(run["id"])
    assert cells[1] == run["created_at"].replace("T", " ")[:19]
    assert cells[2] == ", ".join(run["symbols"])
    assert summary["quote"] in cells[3]
    assert "%" in cells[3]
    assert cells[4] == f"{summary['trades']:,}"
    assert "–" not in cells
    page.click("#backtest-runs tbody tr")
    page.wait_for_selector("#backtest-report a[download]")
    # what the signals came to, with why the engine made no order of the rest
    why = ", ".join(f"{k} {n:,}" for k, n in summary["not_acted_by_reason"].items())
    assert summary["signals_not_acted"] > 0
    refused = summary["signals_refused"]
    assert page.text_content("#backtest-signals") == (
        f"Run {run['id']}: signals {summary['signals']:,} → {summary['signals_ordered']:,} "
        f"orders: {f'{refused:,} refused, ' if refused else ''}"
        f"{summary['signals_not_acted']:,} not acted on ({why})"
    )
    assert page.console.errors == []  # type: ignore[attr-defined]


def _luminance(css: str) -> float:
    """Relative luminance (WCAG 2) of a computed ``rgb(r, g, b)`` / ``rgba(...)`` colour."""
    r, g, b = (int(float(v)) for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3])

    def channel(c: int) -> float:
        x = c / 255
        return x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def test_the_report_link_is_readable_on_the_dark_panel(page: Page, backtest_demo: Demo) -> None:
    """The "Download the report" link kept the browser's default link blue (#0000ee) on the
    dark panel: a contrast of about 2:1, barely visible. Links take the accent colour now;
    WCAG AA asks 4.5:1 for text."""
    open_dashboard(page, backtest_demo, ADMIN_TOKEN, view="backtests")
    page.click("#backtest-runs tbody tr")
    link = page.wait_for_selector("#backtest-report a[download]")
    assert link is not None
    fg, bg = link.evaluate(
        """a => {
            let node = a, bg = "rgba(0, 0, 0, 0)";
            while (node && (bg === "rgba(0, 0, 0, 0)" || bg === "transparent")) {
                bg = getComputedStyle(node).backgroundColor; node = node.parentElement;
            }
            return [getComputedStyle(a).color, bg];
        }"""
    )
    light, dark = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    assert (light + 0.05) / (dark + 0.05) >= 4.5, (fg, bg)


async def _copies_of_one_run(url: str, count: int) -> None:
    """``count`` stored runs (one backtest, stored that many times: quicker than running
    each) without reports."""
    cfg = settings(min_signal_strength=0.5)
    cfg = cfg.model_copy(update={"database": cfg.database.model_copy(update={"url": url})})
    result, doc = await run_series(cfg, [random_walk(600, seed=0)], BacktestRequest())
    for _ in range(count):
        await store_run(cfg, result, doc, None)


@pytest.fixture(scope="module")
def many_runs_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """A demo whose database holds one run more than a page."""
    tmp = tmp_path_factory.mktemp("bt-many")
    url = f"sqlite+aiosqlite:///{tmp / 'demo.db'}"
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop may run in this thread
        pool.submit(lambda: asyncio.run(_copies_of_one_run(url, PAGE + 1))).result()
    d = start_demo(tmp, yaml=f'database: {{url: "{url}"}}\n')
    yield d
    d.stop()


def test_runs_past_the_first_page_are_reached_with_older_runs(
    page: Page, many_runs_demo: Demo
) -> None:
    """With one run more than a page stored, the view lists the newest page, does not call
    it every stored run, and "Older runs" appends the rest (then goes: nothing is left)."""
    open_dashboard(page, many_runs_demo, ADMIN_TOKEN, view="backtests")
    page.wait_for_function(
        f"() => document.querySelectorAll('#backtest-runs tbody tr').length === {PAGE}"
    )
    assert f"{PAGE} stored run(s)" not in (page.text_content("#backtests-msg") or "")
    page.click("#backtests-more")
    page.wait_for_function(
        f"() => document.querySelectorAll('#backtest-runs tbody tr').length === {PAGE + 1}"
    )
    ids = [
        int(t)
        for t in page.eval_on_selector_all(
            "#backtest-runs tbody tr td:first-child", "els => els.map((e) => e.textContent)"
        )
    ]
    assert ids == list(range(PAGE + 1, 0, -1))
    page.wait_for_selector("#backtests-more", state="hidden")
    assert f"{PAGE + 1} stored run(s)" in (page.text_content("#backtests-msg") or "")
    assert page.console.errors == []  # type: ignore[attr-defined]


# records the report links the page makes and those it lets go
COUNT_BLOBS = """(() => {
  const made = [], gone = [];
  window.blobs = { made, gone };
  const create = URL.createObjectURL.bind(URL), revoke = URL.revokeObjectURL.bind(URL);
  URL.createObjectURL = (b) => { const u = create(b); made.push(u); return u; };
  URL.revokeObjectURL = (u) => { gone.push(u); revoke(u); };
})()"""


def test_a_report_link_is_let_go_when_replaced_and_when_the_view_is_left(
    page: Page, backtest_demo: Demo
) -> None:
    """The report fetched for a download is held as an object URL: opening the report again
    lets the first go, and leaving the view lets the last go (no blob kept for the tab's
    lifetime)."""
    page.add_init_script(COUNT_BLOBS)
    open_dashboard(page, backtest_demo, ADMIN_TOKEN, view="backtests")
    page.wait_for_selector("#backtest-runs tbody tr.link")
    page.click("#backtest-runs tbody tr")
    page.wait_for_selector("#backtest-report a[download]")
    page.click("#backtest-runs tbody tr")
    page.wait_for_function("() => window.blobs.made.length === 2")
    page.wait_for_selector("#backtest-report a[download]")
    page.wait_for_function("() => window.blobs.gone.includes(window.blobs.made[0])")
    href = page.get_attribute("#backtest-report a[download]", "href")
    assert href == page.evaluate("() => window.blobs.made[1]")
    assert page.evaluate("() => window.blobs.gone.includes(window.blobs.made[1])") is False
    page.click("#nav a[data-view=markets]")
    page.wait_for_function("() => window.blobs.gone.includes(window.blobs.made[1])")
    assert page.console.errors == []  # type: ignore[attr-defined]


SL = "trading.stop_loss_percentage"


@pytest.fixture(scope="module")
def sweep_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """A demo whose database holds one single run and, after it, a stored sweep of three
    stop distances (no reports: a sweep stores none)."""
    from tests.integration.api.test_backtests_api import stored_sweep

    tmp = tmp_path_factory.mktemp("bt-sweep")
    url = f"sqlite+aiosqlite:///{tmp / 'demo.db'}"
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop may run in this thread
        pool.submit(
            lambda: asyncio.run(stored_sweep(url, [0.5, 1.5, 2.5], plain_before=1))
        ).result()
    d = start_demo(tmp, yaml=f'database: {{url: "{url}"}}\n')
    yield d
    d.stop()


def _texts(page: Page, selector: str) -> list[str]:
    return [
        t.strip()
        for t in page.eval_on_selector_all(selector, "els => els.map((e) => e.textContent)")
    ]


def test_a_sweep_is_one_row_whose_variants_open_ranked_with_their_parameters(
    page: Page, sweep_demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The runs table lists a sweep by its best variant (not its 3 rows among the single
    runs), saying it is one; "variants" lists them best first with their rank, run and
    overrides; a variant has no report, and opening one shows the command that runs it
    again with --report."""
    variants = sweep_demo.get("/api/v1/backtests?sweep=2", token=ADMIN_TOKEN)["items"]
    assert [v["sweep_rank"] for v in variants] == [1, 2, 3]
    best = variants[0]
    open_dashboard(page, sweep_demo, ADMIN_TOKEN, view="backtests")
    page.wait_for_function(
        "() => document.querySelectorAll('#backtest-runs tbody tr').length === 2"
    )
    assert _texts(page, "#backtest-runs tbody tr td:first-child") == [str(best["id"]), "1"]
    rows = page.locator("#backtest-runs tbody tr")
    best_params = rows.nth(0).locator("td").last.inner_text()
    assert "best of sweep 2 (by pnl)" in best_params
    assert f"{SL}={best['overrides'][SL]}" in best_params
    assert rows.nth(1).locator("td").last.inner_text().strip() == "as configured"
    assert page.is_hidden("#backtest-sweep")

    page.click("#backtest-runs button.variants")
    page.wait_for_function(
        "() => document.querySelectorAll('#backtest-sweep-runs tbody tr').length === 3"
    )
    assert "Sweep 2" in (page.text_content("#backtest-sweep h2") or "")
    assert "ranked by pnl" in (page.text_content("#backtest-sweep h2") or "")
    assert _texts(page, "#backtest-sweep-runs tbody tr td:nth-child(1)") == ["1", "2", "3"]
    assert _texts(page, "#backtest-sweep-runs tbody tr td:nth-child(2)") == [
        str(v["id"]) for v in variants
    ]
    assert _texts(page, "#backtest-sweep-runs tbody tr td:nth-child(3)") == [
        f"{SL}={v['overrides'][SL]}" for v in variants
    ]
    assert page.is_hidden("#backtest-report a[download]")  # "variants" opened no report
    shot(page, tmp_path, "sweep", capsys)

    page.click("#backtest-sweep-runs tbody tr >> nth=1")
    page.wait_for_selector("#backtest-command")
    detail = sweep_demo.get(f"/api/v1/backtests/{variants[1]['id']}", token=ADMIN_TOKEN)
    command = page.text_content("#backtest-command") or ""
    assert command.startswith(detail["params"]["command"])
    assert f"--set={SL}={variants[1]['overrides'][SL]}" in command
    assert "--report" in command
    assert "no stored report" in (page.text_content("#backtest-report") or "")
    shot(page, tmp_path, "variant-command", capsys)
    assert page.console.errors == []  # type: ignore[attr-defined]


async def _run_off_the_tick(url: str) -> None:
    """One stored run whose paper tick (1000, inference off) is above the market's prices
    (~100): its summary carries the tick warning."""
    cfg = settings(min_signal_strength=0.5, paper={"quote_currency": "BTC", "tick_size": 1000.0})
    cfg = cfg.model_copy(
        update={
            "database": cfg.database.model_copy(update={"url": url}),
            "backtest": cfg.backtest.model_copy(update={"infer_instrument": False}),
        }
    )
    result, doc = await run_series(cfg, [random_walk(300, seed=0)], BacktestRequest())
    assert doc["summary"]["warnings"], doc["summary"]
    await store_run(cfg, result, doc, None)


def test_a_runs_warnings_are_shown_on_its_row_and_an_empty_list_says_how_to_fill_it(
    page: Page, tmp_path: Path
) -> None:
    """A run whose summary has warnings (a tick off the market) is marked on its row, the
    warning's text on hover; a daemon without stored runs says which command stores one."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    with ThreadPoolExecutor(1) as pool:  # Playwright's loop may run in this thread
        pool.submit(lambda: asyncio.run(_run_off_the_tick(url))).result()
    demo = start_demo(tmp_path, yaml=f'database: {{url: "{url}"}}\n')
    try:
        [run] = demo.get("/api/v1/backtests", token=ADMIN_TOKEN)["items"]
        [warning] = run["summary"]["warnings"]
        open_dashboard(page, demo, ADMIN_TOKEN, view="backtests")
        mark = page.locator("#backtest-runs tbody tr .warn")
        mark.wait_for()
        assert mark.get_attribute("title") == warning
        assert "warning" in mark.inner_text()
        assert page.console.errors == []  # type: ignore[attr-defined]
    finally:
        demo.stop()
    empty = tmp_path / "empty"
    empty.mkdir()
    demo = start_demo(empty)
    try:
        open_dashboard(page, demo, ADMIN_TOKEN, view="backtests")
        page.wait_for_selector("#backtest-runs tbody tr")
        text = page.locator("#backtest-runs tbody").inner_text()
        assert "no stored backtests" in text
        assert "crypto-monitor backtest --config" in text
    finally:
        demo.stop()
