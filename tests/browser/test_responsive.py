"""The page under an accelerated demo: 10 markets, a market event every 0.1 s, short
detector cooldowns. Chart updates stay at most one per animation frame and the DOM stays
bounded while anomalies pile up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import open_dashboard, shot
from tests.browser.demo_daemon import Demo, start_demo

RUN_S = 25.0
COUNT_NODES = "() => document.getElementsByTagName('*').length"
# wraps Plotly.react and counts animation frames: updates must never outnumber frames
INSTRUMENT = """() => {
  window.__reacts = 0; window.__frames = 0;
  const react = window.Plotly.react;
  window.Plotly.react = function (...args) {
    window.__reacts += 1;
    return react.apply(this, args);
  };
  const tick = () => { window.__frames += 1; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
}"""


@pytest.fixture(scope="module")
def fast_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    d = start_demo(
        tmp_path_factory.mktemp("fast"),
        "--event-every",
        "0.1",
        markets=10,
        yaml="anomaly_detection: {cooldown_s: 0.2}\n",
    )
    yield d
    d.stop()


def test_market_view_stays_bounded_and_throttled(
    page: Page, fast_demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under a flood of trades and anomalies the chart redraws at most once per frame and
    the node count stops growing once the bounded lists are full."""
    open_dashboard(page, fast_demo, fast_demo.token, view="market/simulator/BTC-USDT")
    page.wait_for_selector("#chart .main-svg")
    page.evaluate(INSTRUMENT)
    samples: list[int] = []
    start = time.monotonic()
    while time.monotonic() - start < RUN_S:
        t0 = time.monotonic()
        samples.append(page.evaluate(COUNT_NODES))
        assert time.monotonic() - t0 < 2.0, "the page did not answer within 2 s"
        page.wait_for_timeout(1000)  # the sampling period of the measurement, not a wait
    reacts, frames = page.evaluate("() => [window.__reacts, window.__frames]")
    assert 0 < reacts <= frames, (reacts, frames)
    half = samples[len(samples) // 2]
    assert samples[-1] < 6000, samples
    assert samples[-1] - half < 800, samples  # 300 markers at most; candles grow by one a minute
    stats = fast_demo.get("/api/v1/anomalies/stats")
    with capsys.disabled():
        print(
            f"\nnodes {samples[0]} -> {samples[-1]}, chart updates {reacts} in {frames} frames, "
            f"anomalies stored: {stats}"
        )
    shot(page, tmp_path, "market-under-load", capsys)


def test_alerts_and_markets_views_stay_bounded(page: Page, fast_demo: Demo) -> None:
    """The alerts tables keep at most 200 rows and the overview one row per market."""
    open_dashboard(page, fast_demo, fast_demo.token, view="alerts")
    page.wait_for_selector("#alerts-anomalies tbody tr")
    rows = page.evaluate("() => document.querySelectorAll('#alerts-anomalies tbody tr').length")
    assert 0 < rows <= 200
    page.evaluate("location.hash = '#/markets'")
    page.wait_for_function(
        "() => document.querySelectorAll('#markets-table tbody tr.link').length === 10"
    )
    assert page.console.errors == []  # type: ignore[attr-defined]
