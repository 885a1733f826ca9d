"""The notifier inside the composed daemon: built by build_app, told about start and stop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from cryptomon.app import build_app
from cryptomon.config import load_settings
from tests.integration.notify_sinks import HttpSink
from tests.util import wait_until


@pytest_asyncio.fixture
async def web_sink() -> AsyncIterator[HttpSink]:
    sink = await HttpSink().start()
    yield sink
    await sink.close()


@pytest.mark.asyncio
async def test_daemon_start_and_stop_are_notified(web_sink: HttpSink, tmp_path: Path) -> None:
    """build_app wires the notifier from alerts; daemon start and stop reach the channel."""
    settings = load_settings(
        data={
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"},
            "api": {"enabled": False},
            "alerts": {
                "channels": [{"name": "ops", "url": web_sink.url("ops"), "events": ["system"]}]
            },
        }
    )
    app = build_app(settings)
    notifier = app.services.notifier
    assert notifier is not None
    assert notifier in app.components
    assert notifier.channels_redacted()[0]["url"] == "json://***"
    await app.start()
    try:
        await wait_until(lambda: any("daemon_start" in b for b in web_sink.bodies()))
    finally:
        assert await app.stop()
    assert any("daemon_stop" in b for b in web_sink.bodies())
    assert notifier.stats()["notifications"]["ops"].get("failed", 0) == 0
