"""Delivery: retries with backoff on the injected clock, attempt timeouts, failure records,
invalid URLs. apprise builds the plugins; the attempts go to an in-process inbox (the real
sockets are in tests/integration/test_notify_delivery.py)."""

from __future__ import annotations

import asyncio

import apprise
import pytest

from cryptomon.clock import ManualClock
from cryptomon.errors import ConfigError
from cryptomon.hub import Hub
from cryptomon.notify.delivery import AppriseSender
from cryptomon.notify.router import NotificationRouter
from cryptomon.notify.transport import MockTransport, NotifyRequest
from tests.unit.notify.factories import T0, alerts_config, anomaly, running_router
from tests.unit.notify.inbox import Inbox
from tests.util import wait_until


def _sender(inbox: Inbox, clock: ManualClock, **kw: float) -> AppriseSender:
    args = {"attempt_timeout_s": 30.0, "retries": 2, "retry_backoff_s": 5.0}
    args.update(kw)
    return AppriseSender(
        name="t",
        url=inbox.url(),
        clock=clock,
        attempt_timeout_s=args["attempt_timeout_s"],
        retries=int(args["retries"]),
        retry_backoff_s=args["retry_backoff_s"],
        retry_backoff_cap_s=60.0,
        transport=inbox.transport,
    )


async def _drive(clock: ManualClock, task: asyncio.Future[object], step: float) -> None:
    """Advance the clock whenever the task waits on it, until the task is done."""

    def go() -> bool:
        if not task.done() and clock.sleepers:
            clock.advance(step)
        return task.done()

    await wait_until(go, message="delivery to finish")


@pytest.mark.asyncio
async def test_retry_then_success(inbox: Inbox) -> None:
    """Two HTTP 500 answers, then success: sent on attempt 3 after clock-driven backoff."""
    clock = ManualClock(T0)
    inbox.fail_next = 2
    # the attempt timeout is far beyond the clock steps: only the backoff waits are driven
    sender = _sender(inbox, clock, retries=3, attempt_timeout_s=300.0)
    task = asyncio.ensure_future(sender.send("title", "body", "text"))
    await _drive(clock, task, step=1.0)
    result = task.result()
    assert (result.ok, result.attempts) == (True, 3)
    assert inbox.requests == 3
    assert inbox.titles() == ["title"]
    assert clock.time() > T0  # the waits between attempts went through the clock


@pytest.mark.asyncio
async def test_refusing_channel_is_failed_after_all_attempts_and_recorded(inbox: Inbox) -> None:
    """A channel that answers every attempt with an error: 1 + retries attempts, then a failed
    record carrying the channel's reason."""
    inbox.fail_always = True
    channel = {"name": "down", "url": inbox.url("down")}
    async with running_router([channel], transport=inbox.transport, retries=2) as run:
        run.hub.publish(anomaly())

        def failed() -> bool:
            if run.clock.sleepers:
                run.clock.advance(1.0)
            return bool(run.by("down", "failed"))

        await wait_until(failed)
    rec = run.by("down", "failed")[0]
    assert (rec.attempts, inbox.requests) == (3, 3)
    assert rec.error == "failed after 3 attempt(s): HTTP 500 from down: try later"
    assert rec.event_type == "anomaly"
    assert rec.title == "[P1] binance BTC-USDT: volume anomaly (high)"


@pytest.mark.asyncio
async def test_attempt_timeout_on_a_hung_endpoint(inbox: Inbox) -> None:
    """An endpoint that never answers fails by the attempt timeout (clock time)."""
    clock = ManualClock(T0)
    inbox.hang = True
    sender = _sender(inbox, clock, retries=0, attempt_timeout_s=30.0)
    task = asyncio.ensure_future(sender.send("t", "b", "text"))
    await wait_until(lambda: inbox.waiting >= 1 and clock.sleepers >= 1)
    assert not task.done()
    clock.advance(30)
    await wait_until(task.done)
    result = task.result()
    assert (result.ok, result.attempts) == (False, 1)
    assert "no answer within 30s" in result.error


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
async def test_shutdown_records_undelivered_messages_as_failed(inbox: Inbox) -> None:
    """Stopping with a message stuck on a hung channel records it failed, within the budget."""
    inbox.hang = True
    channels = [{"name": "dead", "url": inbox.url("dead")}]
    async with running_router(channels, transport=inbox.transport, stop_timeout_s=0.2) as run:
        run.hub.publish(anomaly())
        await wait_until(lambda: inbox.waiting >= 1)
    rec = run.by("dead", "failed")
    assert len(rec) == 1
    assert rec[0].error == "not delivered before shutdown"


@pytest.mark.asyncio
async def test_plain_transport_handler_sees_the_request_and_its_reason_is_scrubbed() -> None:
    """A sync MockTransport handler gets title, format and type; its failure reason reaches the
    result without the URL's password."""
    url = "json://bob:supersecretpw@inbox.invalid/x"
    seen: list[NotifyRequest] = []

    def refuse(request: NotifyRequest) -> str:
        seen.append(request)
        return f"refused by {url}"

    sender = AppriseSender(
        name="t",
        url=url,
        clock=ManualClock(T0),
        attempt_timeout_s=30.0,
        retries=0,
        retry_backoff_s=1.0,
        retry_backoff_cap_s=1.0,
        transport=MockTransport(refuse),
    )
    result = await sender.send("title", "body", "markdown", "P0")
    assert (result.ok, result.attempts) == (False, 1)
    assert "supersecretpw" not in result.error
    assert "refused by" in result.error
    (request,) = seen
    assert (request.channel, request.title, request.body) == ("t", "title", "body")
    assert request.body_format == apprise.NotifyFormat.MARKDOWN
    assert request.notify_type == apprise.NotifyType.FAILURE
