"""Delivery: retries with backoff on the injected clock, attempt timeouts, failure records,
scrubbed errors, invalid URLs. Real apprise against real loopback sockets."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from cryptomon.clock import ManualClock
from cryptomon.errors import ConfigError
from cryptomon.hub import Hub
from cryptomon.notify.delivery import AppriseSender
from cryptomon.notify.router import NotificationRouter
from tests.unit.notify.factories import T0, alerts_config, anomaly, running_router
from tests.unit.notify.sinks import DeadSink, HttpSink, closed_port
from tests.util import wait_until


def _sender(url: str, clock: ManualClock, **kw: float) -> AppriseSender:
    args = {"attempt_timeout_s": 30.0, "retries": 2, "retry_backoff_s": 5.0}
    args.update(kw)
    return AppriseSender(
        name="t",
        url=url,
        clock=clock,
        attempt_timeout_s=args["attempt_timeout_s"],
        retries=int(args["retries"]),
        retry_backoff_s=args["retry_backoff_s"],
        retry_backoff_cap_s=60.0,
    )


async def _drive(clock: ManualClock, task: asyncio.Future[object], step: float) -> None:
    """Advance the clock whenever the task waits on it, until the task is done."""

    def go() -> bool:
        if not task.done() and clock.sleepers:
            clock.advance(step)
        return task.done()

    await wait_until(go, message="delivery to finish")


@pytest.mark.asyncio
async def test_retry_then_success(http_sink: HttpSink) -> None:
    """Two HTTP 500 answers, then success: sent on attempt 3 after clock-driven backoff."""
    clock = ManualClock(T0)
    http_sink.fail_next = 2
    # the attempt timeout is far beyond the clock steps: only the backoff waits are driven
    sender = _sender(http_sink.url(), clock, retries=3, attempt_timeout_s=300.0)
    task = asyncio.ensure_future(sender.send("title", "body", "text"))
    await _drive(clock, task, step=1.0)
    result = task.result()
    assert (result.ok, result.attempts) == (True, 3)
    assert http_sink.requests == 3
    assert http_sink.titles() == ["title"]
    assert clock.time() > T0  # the waits between attempts went through the clock


@pytest.mark.asyncio
async def test_sink_down_is_failed_after_all_attempts_and_recorded() -> None:
    """A refused connection: 1 + retries attempts, then a failed record with the reason."""
    url = f"json://127.0.0.1:{closed_port()}/down"
    async with running_router([{"name": "down", "url": url}], retries=2) as run:
        run.hub.publish(anomaly())

        def failed() -> bool:
            if run.clock.sleepers:
                run.clock.advance(1.0)
            return bool(run.by("down", "failed"))

        await wait_until(failed)
    rec = run.by("down", "failed")[0]
    assert rec.attempts == 3
    assert rec.error.startswith("failed after 3 attempt(s): ")
    assert "Connection error" in rec.error
    assert rec.event_type == "anomaly"
    assert rec.title == "[P1] binance BTC-USDT: volume anomaly (high)"


@pytest.mark.asyncio
async def test_attempt_timeout_on_a_hung_endpoint(dead_sink: DeadSink) -> None:
    """An endpoint that accepts and never answers fails by the attempt timeout (clock time)."""
    clock = ManualClock(T0)
    sender = _sender(dead_sink.url(), clock, retries=0, attempt_timeout_s=30.0)
    task = asyncio.ensure_future(sender.send("t", "b", "text"))
    await wait_until(lambda: dead_sink.connections >= 1 and clock.sleepers >= 1)
    assert not task.done()
    clock.advance(30)
    await wait_until(task.done)
    result = task.result()
    assert (result.ok, result.attempts) == (False, 1)
    assert "no answer within 30s" in result.error


@pytest.mark.asyncio
async def test_errors_and_logs_never_contain_url_credentials() -> None:
    """A failing channel's recorded error and log lines carry no password from its URL."""
    url = f"json://bob:supersecretpw@127.0.0.1:{closed_port()}/x"
    with capture_logs() as logs:
        async with running_router([{"name": "c", "url": url}]) as run:
            run.hub.publish(anomaly())
            await wait_until(lambda: bool(run.by("c", "failed")))
            listed = run.router.channels_redacted()
    assert "supersecretpw" not in repr(logs)
    assert "supersecretpw" not in run.by("c", "failed")[0].error
    assert "supersecretpw" not in repr(listed)


def test_url_apprise_cannot_use_is_a_config_error() -> None:
    """An unsupported apprise scheme fails at build time naming the channel, URL hidden."""
    cfg = alerts_config([{"name": "bad", "url": "nosuchscheme://token@x/y"}])
    with pytest.raises(ConfigError) as err:
        NotificationRouter(hub=Hub(), clock=ManualClock(T0), config=cfg)
    text = str(err.value)
    assert "alerts.channels.0.url" in text
    assert "channel 'bad'" in text
    assert "token@x" not in text


@pytest.mark.asyncio
async def test_shutdown_records_undelivered_messages_as_failed(dead_sink: DeadSink) -> None:
    """Stopping with a message stuck on a hung channel records it failed, within the budget."""
    async with running_router(
        [{"name": "dead", "url": dead_sink.url()}], stop_timeout_s=0.2
    ) as run:
        run.hub.publish(anomaly())
        await wait_until(lambda: dead_sink.connections >= 1)
    rec = run.by("dead", "failed")
    assert len(rec) == 1
    assert rec[0].error == "not delivered before shutdown"
