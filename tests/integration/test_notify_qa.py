"""Notifications as a user runs them, to a real HTTP sink: template overrides whose numeric
format meets a field an event does not have, and a reload of the ``alerts`` section."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from cryptomon.events import Signal
from cryptomon.kinds import SignalGrade
from tests.integration.notify_sinks import HttpSink
from tests.unit.notify.factories import T0, anomaly, running_router
from tests.util import wait_until


@pytest_asyncio.fixture
async def web_sink() -> AsyncIterator[HttpSink]:
    sink = await HttpSink().start()
    yield sink
    await sink.close()


@pytest.mark.asyncio
async def test_numeric_template_override_renders_a_missing_value_as_a_dash(
    web_sink: HttpSink,
) -> None:
    """``{z_score:.2f}`` passes check-config; a whale anomaly has no z-score and a signal may
    have no price: the override still renders (``-`` for the missing value) instead of the
    message falling back to the built-in template."""
    templates = {
        "anomaly": {"title": "{symbol} {kind} z={z_score:.2f} move={price_change_pct:+.1f}%"},
        "signal": {"title": "{symbol} {side} at {price:,.2f}"},
    }
    channels = [{"name": "hook", "url": web_sink.url(), "rate_limit_per_min": 600}]
    with capture_logs() as logs:
        async with running_router(channels, templates=templates) as run:
            run.hub.publish(anomaly(kind="whale", z_score=None, price_change_pct=None))
            run.hub.publish(anomaly(kind="volume", z_score=4.5, price_change_pct=1.25))
            run.hub.publish(
                Signal(
                    exchange="binance",
                    symbol="ETH-USDT",
                    ts=T0,
                    ts_recv=T0,
                    side="buy",
                    strength=0.9,
                    source="rule:x",
                    grade=SignalGrade.STRONG,
                )
            )
            await wait_until(lambda: len(run.by("hook", "sent")) == 3)
    assert sorted(web_sink.titles()) == [
        "BTC-USDT volume z=4.50 move=+1.2%",
        "BTC-USDT whale z=- move=-%",
        "ETH-USDT buy at -",
    ]
    assert not [e for e in logs if e["event"] == "notify.template_failed"]
