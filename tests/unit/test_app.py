"""Lifecycle: start order, reverse stop, rollback on a failed start, notices, timeouts."""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path

import pytest

from cryptomon.app import App, StartupError, build_app
from cryptomon.app.lifecycle import GIL_SWITCH_INTERVAL_S
from cryptomon.clock import ManualClock
from cryptomon.config import load_settings
from cryptomon.events import Notice
from cryptomon.hub import Hub
from tests.util import wait_until


class Recorder:
    """A component that records start/stop calls into a shared journal."""

    def __init__(
        self, name: str, journal: list[str], *, fail_start: bool = False, hang_stop: bool = False
    ) -> None:
        self.name = name
        self.journal = journal
        self.fail_start = fail_start
        self.hang_stop = hang_stop

    async def start(self) -> None:
        if self.fail_start:
            raise RuntimeError(f"{self.name} cannot start")
        self.journal.append(f"start {self.name}")

    async def stop(self) -> None:
        if self.hang_stop:
            await asyncio.Event().wait()
        self.journal.append(f"stop {self.name}")


def make_app(components: list[Recorder], timeout: float = 5.0) -> App:
    return App(components, hub=Hub(), clock=ManualClock(), shutdown_timeout_s=timeout)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_start_in_order_and_stop_in_reverse() -> None:
    """Components start in the given order and stop in reverse."""
    journal: list[str] = []
    app = make_app([Recorder(n, journal) for n in ("db", "detect", "feeds")])
    await app.start()
    assert await app.stop() is True
    assert journal == [
        "start db",
        "start detect",
        "start feeds",
        "stop feeds",
        "stop detect",
        "stop db",
    ]


@pytest.mark.asyncio
async def test_the_daemon_runs_with_a_short_thread_switch_interval_and_restores_it() -> None:
    """While the app runs, a thread that released the GIL (the SQLite driver, every row)
    gets it back within GIL_SWITCH_INTERVAL_S instead of Python's 5 ms; stop restores the
    interpreter's own setting, also after a failed start."""
    before = sys.getswitchinterval()
    assert before != GIL_SWITCH_INTERVAL_S
    app = make_app([Recorder("db", [])])
    await app.start()
    assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL_S)
    await app.stop()
    assert sys.getswitchinterval() == before
    failing = make_app([Recorder("db", []), Recorder("feeds", [], fail_start=True)])
    with pytest.raises(StartupError):
        await failing.start()
    assert sys.getswitchinterval() == before


@pytest.mark.asyncio
async def test_the_started_daemon_freezes_its_startup_objects_out_of_the_gc() -> None:
    """Once every component has started, the objects that exist then are out of the garbage
    collector's passes (a pass over them all stops the loop for 50-100 ms); stop gives them
    back. A process that froze objects itself is left as it is."""

    def collected(obj: object) -> bool:  # in one of the generations the collector walks
        return any(o is obj for o in gc.get_objects())

    assert gc.get_freeze_count() == 0
    before = ["made before the start"]
    app = make_app([Recorder("db", [])])
    await app.start()
    after = ["made after the start"]
    assert not collected(before)
    assert collected(after)
    await app.stop()
    assert gc.get_freeze_count() == 0
    assert collected(before)
    gc.freeze()  # the process's own freeze: the app neither adds to it nor undoes it
    try:
        own = make_app([Recorder("db", [])])
        await own.start()
        assert collected(own)
        await own.stop()
        assert not collected(before)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


@pytest.mark.asyncio
async def test_failed_start_stops_the_started_ones() -> None:
    """A component that fails to start rolls back the ones already started, in reverse."""
    journal: list[str] = []
    app = make_app(
        [Recorder("a", journal), Recorder("b", journal), Recorder("c", journal, fail_start=True)]
    )
    with pytest.raises(StartupError) as exc:
        await app.start()
    assert exc.value.component == "c"
    assert "c cannot start" in str(exc.value)
    assert journal == ["start a", "start b", "stop b", "stop a"]


@pytest.mark.asyncio
async def test_run_returns_1_when_a_component_fails_to_start() -> None:
    """App.run reports a failed start with exit code 1."""
    journal: list[str] = []
    app = make_app([Recorder("a", journal), Recorder("b", journal, fail_start=True)])
    assert await app.run() == 1
    assert journal == ["start a", "stop a"]


@pytest.mark.asyncio
async def test_stop_respects_the_shutdown_timeout() -> None:
    """A hanging component is abandoned at the deadline; the others still stop."""
    journal: list[str] = []
    app = make_app([Recorder("a", journal), Recorder("hang", journal, hang_stop=True)], timeout=0.2)
    await app.start()
    assert await app.stop() is False
    assert journal[-1] == "stop a"


@pytest.mark.asyncio
async def test_start_and_stop_publish_notices() -> None:
    """The daemon announces its start and stop on the hub."""
    hub = Hub()
    notices: list[Notice] = []
    hub.subscribe(Notice, notices.append)
    app = App([], hub=hub, clock=ManualClock())
    await app.start()
    await app.stop()
    assert [n.code for n in notices] == ["daemon_start", "daemon_stop"]


@pytest.mark.asyncio
async def test_run_stops_when_requested() -> None:
    """request_stop() ends run() with exit code 0 after a clean stop."""
    journal: list[str] = []
    app = make_app([Recorder("a", journal)])
    task = asyncio.create_task(app.run())
    await wait_until(lambda: "start a" in journal, message="component started")
    app.request_stop()
    assert await asyncio.wait_for(task, 5) == 0
    assert journal == ["start a", "stop a"]


def test_duplicate_component_names_are_refused() -> None:
    """Two components with one name is a programming error caught at build time."""
    with pytest.raises(ValueError, match="unique"):
        make_app([Recorder("a", []), Recorder("a", [])])


def test_build_app_with_defaults_has_the_hub_first() -> None:
    """The composition root starts with the hub component."""
    app = build_app(load_settings())
    assert app.components[0].name == "hub"


def test_build_app_starts_in_dependency_order_with_the_feeds_last() -> None:
    """Storage, instrument specs, notifications, detection (warmed from the store), trading,
    API, then the feeds."""
    app = build_app(load_settings(), clock=ManualClock(), hub=Hub())
    assert [c.name for c in app.components] == [
        "hub",
        "database",
        "store-writer",
        "store-retention",
        "instruments",
        "notifier",
        "detectors",
        "detector-warm-start",
        "trading-signals",
        "trading-engine",
        "resources",
        "api",
        "feeds",
    ]


def test_build_app_hands_the_api_every_service_before_anything_starts() -> None:
    """Built first, started after: the API holds the feeds (started after it) at construction."""
    from cryptomon.api import ApiServer
    from cryptomon.api import services as api_services

    app = build_app(load_settings(), clock=ManualClock(), hub=Hub())
    (api,) = [c for c in app.components if isinstance(c, ApiServer)]
    services = app.services
    assert api.app[api_services.FEEDS] is services.feeds is not None
    assert api.app[api_services.TRADING] is services.trading is not None
    assert api.app[api_services.MARKET] is services.market is not None
    assert api.app[api_services.QUERIES] is services.queries is not None
    assert app.started == []


def test_services_are_fixed_once_built() -> None:
    """The services build_app made cannot be swapped afterwards (no mutable bag)."""
    import dataclasses

    app = build_app(load_settings(), clock=ManualClock(), hub=Hub())
    with pytest.raises(dataclasses.FrozenInstanceError):
        app.services.feeds = None  # type: ignore[misc]


class EndlessReload:
    """A reloader whose reload never finishes on its own (a feed replace that hangs)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def reload(self) -> bool:
        self.started.set()
        await asyncio.Event().wait()
        return True


@pytest.mark.asyncio
async def test_a_reload_still_running_is_cancelled_before_the_components_stop() -> None:
    """SIGTERM while a SIGHUP reload is still applying: the reload ends first, then the
    components stop; it was left running past the stop (and could start a feed afterwards)."""
    journal: list[str] = []
    app = make_app([Recorder("feeds", journal)])
    reloader = EndlessReload()
    app.reloader = reloader  # type: ignore[assignment]
    task = asyncio.ensure_future(app.run())
    await wait_until(lambda: app.started_at is not None, message="started")
    app._on_reload()
    await asyncio.wait_for(reloader.started.wait(), 5)
    reloading = app._reloading
    assert reloading is not None
    app.request_stop()
    assert await asyncio.wait_for(task, 5) == 0
    assert reloading.cancelled()
    assert journal == ["start feeds", "stop feeds"]


def test_the_notifier_runs_its_windows_on_the_recording_only_for_a_replay(
    shared_data: Path,
) -> None:
    """A daemon of replayed recordings routes alerts on their own times (a recording plays
    faster than it happened); one with a live exchange, or none, on its clock."""
    files = [str(shared_data / "BINANCE.0"), str(shared_data / "BINANCE.ws.1.0")]
    replay = {"name": "binance", "source": "replay", "files": files}
    live = {"name": "okx", "symbols": ["BTC-USDT"]}
    cases = [([replay], True), ([replay, live], False), ([live], False), ([], False)]
    for exchanges, event_time in cases:
        settings = load_settings(data={"exchanges": exchanges, "api": {"enabled": False}})
        app = build_app(settings, clock=ManualClock(), hub=Hub())
        notifier = app.services.notifier
        assert notifier is not None
        assert notifier.routing_time.event_time is event_time, exchanges


def test_messages_link_to_the_api_only_when_it_runs() -> None:
    """With the API off (a replay, a headless daemon) a message's link would point at a
    port nobody listens on: messages carry none. With it on, `alerts.api_base_url`'s."""
    from tests.stubs import anomaly

    for enabled, link in ((False, None), (True, "http://10.0.0.5:8080/api/v1/anomalies")):
        settings = load_settings(
            data={
                "api": {"enabled": enabled, "tokens": [{"name": "t", "token": "x" * 32}]},
                "alerts": {"api_base_url": "http://10.0.0.5:8080"},
            }
        )
        app = build_app(settings, clock=ManualClock(), hub=Hub())
        notifier = app.services.notifier
        assert notifier is not None
        alert = notifier.builder.build(anomaly())
        assert alert is not None
        got = alert.fields.get("link") or None
        assert (got or "").split("?")[0] == (link or ""), (enabled, got)
        status = notifier.builder.link("/api/v1/status")
        assert status == ("http://10.0.0.5:8080/api/v1/status" if enabled else "")
