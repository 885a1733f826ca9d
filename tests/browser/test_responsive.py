"""The page under an accelerated demo: 10 markets, a market event every 0.1 s, short
detector cooldowns. The alerts and markets views stay bounded; the market view is kept open
for two minutes (chart updates at most one per animation frame, DOM node count and JS heap
measured through the Chrome DevTools Protocol at the start, middle and end, no console
error), then the daemon is restarted on the same port and the WebSocket reconnects."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import CDPSession, Page

from tests.browser.conftest import open_dashboard, shot
from tests.browser.demo_daemon import ADMIN_TOKEN, Demo, start_demo

RUN_S = 120.0
SAMPLE_EVERY_MS = 5000
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
# what a browser itself logs while the daemon is down (not errors of the page's code)
NETWORK_ERRORS = ("ERR_CONNECTION_REFUSED", "WebSocket connection to", "Failed to load resource")


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


def measure(page: Page, cdp: CDPSession) -> dict[str, float]:
    """DOM elements and the JS heap in use after a forced garbage collection."""
    cdp.send("HeapProfiler.collectGarbage")
    metrics: dict[str, Any] = cdp.send("Performance.getMetrics")
    by_name = {m["name"]: m["value"] for m in metrics["metrics"]}
    return {
        "elements": float(page.evaluate(COUNT_NODES)),
        "nodes": float(by_name["Nodes"]),
        "heap_mb": round(by_name["JSHeapUsedSize"] / 2**20, 2),
        "listeners": float(by_name["JSEventListeners"]),
    }


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


@pytest.mark.timeout(RUN_S + 240)  # two minutes open, then a daemon restart
def test_market_view_two_minutes_bounded_then_reconnects_after_a_restart(
    page: Page, fast_demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two minutes of a flood of trades and anomalies: at most one chart update per frame,
    DOM and heap stop growing once the bounded lists are full, no console error; after a
    daemon restart the WebSocket reconnects and the chart fills again from the new daemon."""
    open_dashboard(page, fast_demo, ADMIN_TOKEN, view="market/simulator/BTC-USDT")
    page.wait_for_selector("#chart .main-svg")
    page.evaluate(INSTRUMENT)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    samples = [measure(page, cdp)]
    start = time.monotonic()
    while time.monotonic() - start < RUN_S:
        page.wait_for_timeout(SAMPLE_EVERY_MS)  # the sampling period, not a wait for a state
        samples.append(measure(page, cdp))
    reacts, frames = page.evaluate("() => [window.__reacts, window.__frames]")
    stored = fast_demo.get("/api/v1/anomalies/stats")
    first, mid, last = samples[0], samples[len(samples) // 2], samples[-1]
    with capsys.disabled():
        print(f"\nover {RUN_S:.0f} s: start {first}, middle {mid}, end {last}")
        print("listeners per sample:", [int(s["listeners"]) for s in samples])
        print(f"chart updates {reacts} in {frames} frames; anomalies stored: {stored}")
    shot(page, tmp_path, "market-after-two-minutes", capsys)
    assert page.console.errors == []  # type: ignore[attr-defined]
    assert 0 < reacts <= frames, (reacts, frames)
    # bounded: 300 anomaly markers and 50 trades at most, one candle a minute
    assert last["elements"] < 6000, samples
    assert last["elements"] - mid["elements"] < 800, samples
    assert last["nodes"] - mid["nodes"] < 800, samples
    # the heap may grow by what the capped lists still take in, not by half again
    assert last["heap_mb"] - mid["heap_mb"] < 0.5 * mid["heap_mb"], samples
    # plotly holds extra listeners for the moment of a redraw (127, then 139, 225 and 323 seen
    # in single samples; on a slow machine most samples fall inside a redraw, so a median of
    # them moved by the machine's speed: 127 -> 182 with no leak): a leak is a floor that
    # climbs, so the second half's lowest level may not exceed the first half's by much
    half = len(samples) // 2
    floor_before = min(s["listeners"] for s in samples[:half])
    assert min(s["listeners"] for s in samples[half:]) <= floor_before + 50, samples

    # the daemon restarts on the same port: the page says offline, then reconnects
    opens = int(page.get_attribute("#live", "data-opens") or 0)
    assert opens >= 1
    fast_demo.stop()
    page.wait_for_selector("#live:not(.ok)")
    assert page.text_content("#live") == "offline"
    fast_demo.relaunch()
    page.wait_for_selector(f"#live.ok[data-opens='{opens + 1}']", timeout=60_000)
    # the view reloaded after the outage: the chart fills from the new daemon's stream
    page.wait_for_function(
        "() => Number(document.getElementById('chart').dataset.candles) > 0", timeout=60_000
    )
    errors = page.console.errors  # type: ignore[attr-defined]
    assert not [e for e in errors if not any(n in e for n in NETWORK_ERRORS)], errors
    shot(page, tmp_path, "market-after-restart", capsys)
