"""The dashboard's Backtests view against a demo whose database holds a stored run: the
table shows what GET /api/v1/backtests lists (created, market, net PnL, trades)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import open_dashboard
from tests.browser.demo_daemon import ADMIN_TOKEN, Demo, start_demo
from tests.integration.api.test_backtests_api import stored_runs


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
    assert page.console.errors == []  # type: ignore[attr-defined]
