"""The backtest report (``--report out.html``) in headless chromium with no network: it
renders its four figures with no console error and no request leaving the file, and the
monthly returns read as months."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser

from cryptomon.backtest.report import monthly_returns, render
from cryptomon.backtest.stats import result_document
from tests.browser.conftest import Console
from tests.unit.backtest.test_stats import result


def test_the_report_opens_offline_and_its_monthly_bars_are_labelled_by_month(
    browser: Browser, tmp_path: Path
) -> None:
    """Four days of one month: one monthly bar under the tick label ``YYYY-MM``. The month
    labels were read as dates on a time axis, and the lone bar stood at sub-millisecond
    ticks (``23:59:59.9996 Oct 31, 2023`` .. ``00:00:00.0004``), its month named nowhere."""
    run = result()
    document = result_document(run)
    path = tmp_path / "report.html"
    path.write_text(render(run, document, "Backtest ALT-BTC"), encoding="utf-8")
    months, _ = monthly_returns(run)
    assert len(months) == 1

    ctx = browser.new_context(offline=True, viewport={"width": 1300, "height": 900})
    try:
        page = ctx.new_page()
        console = Console(page)
        outside: list[str] = []
        page.on(
            "request",
            lambda r: outside.append(r.url) if not r.url.startswith(("file:", "data:")) else None,
        )
        page.goto(path.as_uri())
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length === 4")
        monthly = page.locator("#chart3")
        monthly.locator(".xtick text").first.wait_for()
        ticks = [t.strip() for t in monthly.locator(".xtick text").all_text_contents()]
        assert ticks == months, ticks
        assert monthly.locator(".gtitle").text_content() == "Monthly returns (%)"
    finally:
        ctx.close()
    assert console.errors == []
    assert outside == []
