"""The notifier inside the composed daemon: built by build_app, told about start and stop."""

from __future__ import annotations

import socket
import sqlite3
import time
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


@pytest.mark.asyncio
async def test_a_dead_channel_at_stop_leaves_the_store_its_share_of_the_shutdown(
    tmp_path: Path,
) -> None:
    """A channel that refuses every delivery while the daemon stops (shutdown_timeout_s 2 <
    alerts.stop_timeout_s 5): the notifier gives up within its share, the messages it could
    not deliver are stored as failed, and the stop is clean (it took the whole budget, was
    cut off before recording them, and the store writer was left 0.05 s: exit 1)."""
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens: every delivery is refused
    db_path = tmp_path / "c.db"
    settings = load_settings(
        data={
            "database": {"url": f"sqlite+aiosqlite:///{db_path}"},
            "api": {"enabled": False},
            "data_dir": str(tmp_path),
            "shutdown_timeout_s": 2.0,
            "alerts": {
                "channels": [{"name": "ops", "url": f"json://127.0.0.1:{port}/x"}],
                "stop_timeout_s": 5.0,
            },
        }
    )
    app = build_app(settings)
    await app.start()
    started = time.monotonic()
    assert await app.stop()
    assert time.monotonic() - started < 2.5
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT channel, status, error FROM notifications").fetchall()
    assert rows
    assert {(ch, status) for ch, status, _ in rows} == {("ops", "failed")}
    assert any("not delivered before shutdown" in err for _, _, err in rows)
