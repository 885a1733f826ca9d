"""``systemctl reload``: SIGHUP re-reads the config file of a running daemon. Risk limits,
signal settings, detector thresholds and alert routing change in place (API changes reset,
audited ``reloaded``); a changed exchange entry restarts that feed only; an invalid new file
is rejected with one line and the running config stays."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from structlog.testing import capture_logs

from cryptomon.app import App, build_app
from cryptomon.config import load_settings
from cryptomon.events import AuditEntry, Trade
from cryptomon.reload import Reloader
from cryptomon.sim.exchange import SimExchange
from cryptomon.sim.market import MarketModel
from tests.integration.bus_support import CLI, NatsServer, bus_section
from tests.util import wait_until


def config(tmp_path: Path, sim: SimExchange, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'cm.db'}"},
        "data_dir": str(tmp_path),
        "api": {"enabled": False},
        "exchanges": [
            {"name": "simulator", "url": sim.rest_url, "symbols": ["BTC-USDT"], "depth": 20}
        ],
        "anomaly_detection": {"price_change_percentage": 5.0},
        # nothing listens on port 9: no retries, so an alert in flight at the stop (an anomaly
        # of a slow run) cannot hold the notifier past its stop timeout (an unclean exit 1)
        "alerts": {"retries": 0, "channels": [{"name": "hook", "url": "json://127.0.0.1:9/x"}]},
        "trading": {"auto_trading_enabled": True, "max_position_size": 1000.0},
    }
    for section, value in changes.items():
        base[section] = {**base[section], **value} if isinstance(value, dict) else value
    return base


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[SimExchange]:
    exchange = SimExchange(MarketModel(["BTC-USDT"], seed=2), interval=0.05)
    await exchange.start()
    try:
        yield exchange
    finally:
        await exchange.stop()


async def running(path: Path) -> tuple[App, asyncio.Task[int], list[AuditEntry]]:
    settings = load_settings(path)
    app = build_app(settings)
    app.reloader = Reloader(
        load=lambda: load_settings(path), settings=settings, services=app.services
    )
    audits: list[AuditEntry] = []
    app.hub.subscribe(AuditEntry, audits.append, name="test.audit")
    task = asyncio.ensure_future(app.run())
    await wait_until(lambda: app.started_at is not None, timeout=30, message="daemon started")
    return app, task, audits


@pytest.mark.asyncio
async def test_sighup_applies_the_new_file_in_place(tmp_path: Path, sim: SimExchange) -> None:
    """Limits changed by the API go back to the file's, new thresholds and routing apply, the
    changed feed is a new one; the daemon keeps running."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, sim)))
    app, task, audits = await running(path)
    services = app.services
    assert services.trading is not None
    assert services.detectors is not None
    assert services.notifier is not None
    assert services.feeds is not None
    assert app.reloader
    try:
        services.trading.runtime.update("api:test", max_position_size=5.0)
        old_feed = services.feeds.source("simulator")
        path.write_text(
            yaml.safe_dump(
                config(
                    tmp_path,
                    sim,
                    trading={"max_position_size": 2000.0, "risk_percentage": 1.0},
                    anomaly_detection={"price_change_percentage": 7.5},
                    alerts={
                        "channels": [
                            {
                                "name": "hook",
                                "url": "json://127.0.0.1:9/x",
                                "min_severity": "critical",
                            }
                        ]
                    },
                    exchanges=[
                        {
                            "name": "simulator",
                            "url": sim.rest_url,
                            "symbols": ["BTC-USDT"],
                            "depth": 10,
                        }
                    ],
                )
            )
        )
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_until(lambda: app.reloader.reloads == 1, timeout=20, message="reloaded")
        runtime = services.trading.runtime
        assert runtime.config.max_position_size == 2000.0
        assert runtime.config.risk_percentage == 1.0
        assert str(runtime.limits.max_position_size) == "2000.0"
        reloaded = [a for a in audits if a.action == "reloaded"]
        assert len(reloaded) == 1
        assert "max_position_size" in reloaded[0].payload
        assert services.detectors.config.price_change_percentage == 7.5
        assert services.notifier.channels["hook"].cfg.min_severity == "critical"
        new_feed = services.feeds.source("simulator")
        assert new_feed is not old_feed
        assert new_feed.config.depth == 10  # type: ignore[attr-defined]
        assert not task.done()
    finally:
        app.request_stop()
        assert await asyncio.wait_for(task, 30) == 0


@pytest.mark.asyncio
async def test_sighup_with_an_invalid_file_keeps_the_running_config(
    tmp_path: Path, sim: SimExchange
) -> None:
    """A new file with a bad value is rejected in one log line naming it; nothing changes."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, sim)))
    app, task, audits = await running(path)
    assert app.services.trading is not None
    assert app.reloader is not None
    try:
        path.write_text(yaml.safe_dump(config(tmp_path, sim, trading={"risk_percentage": 150})))
        with capture_logs() as logs:
            os.kill(os.getpid(), signal.SIGHUP)
            await wait_until(lambda: app.reloader.rejected == 1, timeout=20, message="rejected")
        lines = [e for e in logs if e["event"] == "config.reload_rejected"]
        assert len(lines) == 1
        assert "trading.risk_percentage" in lines[0]["problems"]
        assert app.services.trading.runtime.config.risk_percentage == 2.0
        assert not [a for a in audits if a.action == "reloaded"]
        assert not task.done()
    finally:
        app.request_stop()
        assert await asyncio.wait_for(task, 30) == 0


@pytest.mark.asyncio
async def test_sighup_disabling_then_enabling_an_exchange_stops_then_starts_its_feed(
    tmp_path: Path, sim: SimExchange
) -> None:
    """`enabled: false` on reload stops that feed (no trades come), `enabled: true` on the
    next reload starts it again; each reload completes and the daemon keeps running."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, sim)))
    app, task, _ = await running(path)
    feeds = app.services.feeds
    assert feeds is not None
    assert app.reloader
    trades: list[Trade] = []
    app.hub.subscribe(Trade, trades.append, name="test.trades")
    entry = {"name": "simulator", "url": sim.rest_url, "symbols": ["BTC-USDT"], "depth": 20}
    try:
        await wait_until(lambda: len(trades) > 0, timeout=20, message="trades")
        path.write_text(
            yaml.safe_dump(config(tmp_path, sim, exchanges=[{**entry, "enabled": False}]))
        )
        with capture_logs() as logs:
            os.kill(os.getpid(), signal.SIGHUP)
            await wait_until(lambda: app.reloader.reloads == 1, timeout=20, message="reloaded")
        assert [e["applied"] for e in logs if e["event"] == "config.reloaded"] == [["exchanges"]]
        assert [s.exchange for s in feeds.sources] == []
        path.write_text(yaml.safe_dump(config(tmp_path, sim, exchanges=[entry])))
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_until(lambda: app.reloader.reloads == 2, timeout=20, message="reloaded again")
        seen = len(trades)
        await wait_until(lambda: len(trades) > seen, timeout=20, message="trades again")
        assert [s.exchange for s in feeds.sources] == ["simulator"]
        assert app.reloader.rejected == 0
        assert not task.done()
    finally:
        app.request_stop()
        assert await asyncio.wait_for(task, 30) == 0


@pytest.mark.asyncio
async def test_sighup_with_an_exchange_entry_only_its_builder_refuses_changes_nothing(
    tmp_path: Path, sim: SimExchange
) -> None:
    """A changed exchange entry that passes the file's validation but cannot be built (a
    plugin that is not installed) rejects the reload whole, in one line naming it: the running
    feed is not stopped and the trading change in the same file is not applied."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, sim)))
    app, task, audits = await running(path)
    feeds = app.services.feeds
    assert feeds is not None
    assert app.services.trading is not None
    assert app.reloader
    old_feed = feeds.source("simulator")
    bad = {"name": "simulator", "url": sim.rest_url, "symbols": ["BTC-USDT"], "plugin": "nosuch"}
    try:
        path.write_text(
            yaml.safe_dump(config(tmp_path, sim, trading={"risk_percentage": 1.0}, exchanges=[bad]))
        )
        with capture_logs() as logs:
            os.kill(os.getpid(), signal.SIGHUP)
            await wait_until(lambda: app.reloader.rejected == 1, timeout=20, message="rejected")
        lines = [e for e in logs if e["event"] == "config.reload_rejected"]
        assert len(lines) == 1
        assert "exchanges[simulator]" in lines[0]["problems"]
        assert "nosuch" in lines[0]["problems"]
        assert feeds.source("simulator") is old_feed
        assert old_feed in feeds._started
        assert app.services.trading.runtime.config.risk_percentage == 2.0
        assert not [a for a in audits if a.action == "reloaded"]
        assert app.reloader.settings.trading.risk_percentage == 2.0
        assert not task.done()
    finally:
        app.request_stop()
        assert await asyncio.wait_for(task, 30) == 0


@pytest.mark.asyncio
async def test_sighup_keeps_the_role_given_on_the_command_line(tmp_path: Path) -> None:
    """`run --role collector` with a file that names no role: a reload of the unchanged file
    applies nothing and asks for no restart (it read the file's role, `all`, and logged
    `config.reload_needs_restart sections=['bus']`)."""
    nats = NatsServer(tmp_path)
    await nats.start()
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {"bus": bus_section(nats.url), "api": {"port": 0}, "data_dir": str(tmp_path)}
        )
    )
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "run",
        "--role",
        "collector",
        "--config",
        str(path),
        "--log-format",
        "json",
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stderr is not None
    lines: list[str] = []

    async def until(event: str) -> None:
        while not any(f'"{event}"' in ln for ln in lines):
            line = (await proc.stderr.readline()).decode()  # type: ignore[union-attr]
            assert line, "".join(lines)
            lines.append(line)

    try:
        await asyncio.wait_for(until("daemon.running"), 60)
        proc.send_signal(signal.SIGHUP)
        await asyncio.wait_for(until("config.reloaded"), 20)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await nats.stop()
    reloaded = [json.loads(ln) for ln in lines if '"config.reloaded"' in ln]
    assert reloaded[0]["applied"] == []
    assert not [ln for ln in lines if "config.reload_needs_restart" in ln], "".join(lines)


@pytest.mark.asyncio
async def test_a_change_that_needs_a_restart_is_said_at_every_reload_until_then(
    tmp_path: Path, sim: SimExchange
) -> None:
    """A storage change needs a restart: the reload that brings it says so, and so does the
    next one (which changes only trading), since the daemon still runs the old storage."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, sim)))
    app, task, _ = await running(path)
    assert app.reloader
    try:
        base = config(tmp_path, sim)
        path.write_text(yaml.safe_dump({**base, "storage": {"batch_size": 10}}))
        with capture_logs() as logs:
            os.kill(os.getpid(), signal.SIGHUP)
            await wait_until(lambda: app.reloader.reloads == 1, timeout=20, message="reloaded")
            changed = {**base, "storage": {"batch_size": 10}, "trading": {"risk_percentage": 1.0}}
            path.write_text(yaml.safe_dump(changed))
            os.kill(os.getpid(), signal.SIGHUP)
            await wait_until(lambda: app.reloader.reloads == 2, timeout=20, message="again")
        restart = [e["sections"] for e in logs if e["event"] == "config.reload_needs_restart"]
        assert restart == [["storage"], ["storage"]]
    finally:
        app.request_stop()
        assert await asyncio.wait_for(task, 30) == 0


@pytest.mark.asyncio
async def test_a_channel_or_exchange_added_is_said_to_need_a_restart_at_every_reload(
    tmp_path: Path, sim: SimExchange
) -> None:
    """An alert channel and an exchange entry added to the file need a restart: the reload
    that reads them says so, and so does the next one (which changes only trading), since
    the daemon still runs without them. They were said once, by the reload that found them
    new, and a later reload said nothing while the file and the running daemon differed."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, sim)))
    app, task, _ = await running(path)
    assert app.reloader
    try:
        base = config(tmp_path, sim)
        more = {
            **base,
            "alerts": {
                "channels": [
                    *base["alerts"]["channels"],
                    {"name": "ops", "url": "json://127.0.0.1:9/y"},
                ]
            },
            "exchanges": [*base["exchanges"], {**base["exchanges"][0], "name": "sim2"}],
        }
        path.write_text(yaml.safe_dump(more))
        with capture_logs() as logs:
            os.kill(os.getpid(), signal.SIGHUP)
            await wait_until(lambda: app.reloader.reloads == 1, timeout=20, message="reloaded")
            path.write_text(yaml.safe_dump({**more, "trading": {"risk_percentage": 1.0}}))
            os.kill(os.getpid(), signal.SIGHUP)
            await wait_until(lambda: app.reloader.reloads == 2, timeout=20, message="again")
        restart = [
            (e.get("channels"), e.get("exchanges"))
            for e in logs
            if e["event"] == "config.reload_needs_restart"
        ]
        assert restart == [(["ops"], ["sim2"]), (["ops"], ["sim2"])], logs
    finally:
        app.request_stop()
        assert await asyncio.wait_for(task, 30) == 0


@pytest.mark.asyncio
async def test_an_added_channel_needs_a_restart_said_at_every_reload(
    tmp_path: Path, sim: SimExchange
) -> None:
    """A channel added to the file is not started by a reload: the reload that brings it says
    so (`config.reload_needs_restart sections=['alerts'] channels=['more']`), and so does the
    next one, which changes only the kept channel's routing (applied)."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, sim)))
    app, task, _ = await running(path)
    assert app.reloader
    notifier = app.services.notifier
    assert notifier is not None
    try:
        hook = {"name": "hook", "url": "json://127.0.0.1:9/x"}
        more = {"name": "more", "url": "json://127.0.0.1:9/more"}
        path.write_text(yaml.safe_dump(config(tmp_path, sim, alerts={"channels": [hook, more]})))
        with capture_logs() as logs:
            os.kill(os.getpid(), signal.SIGHUP)
            await wait_until(lambda: app.reloader.reloads == 1, timeout=20, message="reloaded")
            routed = {**hook, "min_severity": "critical"}
            changed = config(tmp_path, sim, alerts={"channels": [routed, more]})
            path.write_text(yaml.safe_dump(changed))
            os.kill(os.getpid(), signal.SIGHUP)
            await wait_until(lambda: app.reloader.reloads == 2, timeout=20, message="again")
        restart = [
            (e["sections"], e.get("channels"))
            for e in logs
            if e["event"] == "config.reload_needs_restart"
        ]
        assert restart == [(["alerts"], ["more"]), (["alerts"], ["more"])]
        assert list(notifier.channels) == ["hook"]
        assert notifier.channels["hook"].cfg.min_severity == "critical"
    finally:
        app.request_stop()
        assert await asyncio.wait_for(task, 30) == 0
