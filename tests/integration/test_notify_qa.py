"""Notifications as a user runs them, to a real HTTP sink: template overrides whose numeric
format meets a field an event does not have, a reload of the ``alerts`` section, and a chat
service given by its https webhook address."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from cryptomon.events import Severity, Signal
from cryptomon.kinds import SignalGrade
from tests.integration.notify_sinks import HttpSink
from tests.unit.notify.factories import T0, alerts_config, anomaly, running_router
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


@pytest.mark.asyncio
async def test_reload_applies_templates_dedup_and_link_base(web_sink: HttpSink) -> None:
    """A reload (SIGHUP) that changes ``alerts.templates``, ``dedup_window_s`` and
    ``api_base_url`` takes effect: the next alerts carry the new title and link, and a repeat
    that the old window hid goes out."""
    channels = [{"name": "hook", "url": web_sink.url(), "rate_limit_per_min": 600}]
    async with running_router(channels, dedup_window_s=300) as run:
        run.hub.publish(anomaly())
        await wait_until(lambda: len(run.by("hook", "sent")) == 1)
        run.router.reload(
            alerts_config(
                channels,
                dedup_window_s=0,
                api_base_url="https://mon.example.com",
                templates={"anomaly": {"title": "NEW {symbol} {kind}"}},
            )
        )
        run.hub.publish(anomaly())  # a repeat within the old 300 s window
        await wait_until(lambda: len(web_sink.messages) == 2)
    assert web_sink.titles()[1] == "NEW BTC-USDT volume"
    assert "Link: https://mon.example.com/api/v1/anomalies?" in web_sink.bodies()[1]
    assert not run.by("hook", "suppressed")


@pytest.mark.asyncio
async def test_reload_applies_delivery_settings(web_sink: HttpSink) -> None:
    """``retries`` changed by a reload is what the next delivery uses."""
    channels = [{"name": "hook", "url": web_sink.url(), "rate_limit_per_min": 600}]
    async with running_router(channels, retries=0) as run:
        run.router.reload(alerts_config(channels, retries=2))
        web_sink.fail_next = 2
        run.hub.publish(anomaly(severity=Severity.CRITICAL))

        def sent() -> bool:
            if run.clock.sleepers:  # the retry backoff runs on the clock
                run.clock.advance(5)
            return bool(run.by("hook", "sent") or run.by("hook", "failed"))

        await wait_until(sent)
    assert [r.attempts for r in run.by("hook", "sent")] == [3]
    assert web_sink.requests == 3


@pytest.mark.asyncio
async def test_discord_https_webhook_url_is_a_chat_channel(web_sink: HttpSink) -> None:
    """Discord's own webhook URL (``https://discord.com/api/webhooks/ID/TOKEN``, which apprise
    takes as its Discord plugin) gets Markdown with ``format: auto`` like ``discord://``: the
    reasons arrive escaped, so Discord shows ``RSI*2`` and ``__init__`` as written instead of
    italics and underline."""
    url = "https://discord.com/api/webhooks/123456789012345678/AbCdEfGhIjKlMnOpQrStUvWx"
    channels = [{"name": "discord", "url": url}]
    async with running_router(channels) as run:
        run.router.channels["discord"].sender.plugin.notify_url = web_sink.url("discord").replace(
            "json://", "http://"
        )
        assert run.router.channels_redacted()[0]["format"] == "markdown"
        run.hub.publish(anomaly(kind="price_change", reasons=("RSI*2 [15m]", "__init__ *x*")))
        await wait_until(lambda: len(run.by("discord", "sent")) == 1)
    sent = repr(web_sink.messages[0])
    assert r"RSI\\*2 \\[15m\\]" in sent
    assert r"\\_\\_init\\_\\_ \\*x\\*" in sent
