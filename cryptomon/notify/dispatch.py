"""Delivery side of the notifier: one worker per channel outbox, digests, test messages and
the record of every outcome (sent / failed / digested). The router decides *what* goes to a
channel; the dispatcher gets it there and writes down what happened."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import structlog

from cryptomon.clock import Clock
from cryptomon.notify.alerts import iso
from cryptomon.notify.channel import ChannelState, Outgoing
from cryptomon.notify.delivery import DeliveryResult
from cryptomon.notify.records import Recorder
from cryptomon.notify.templates import DigestItem, Renderer, render_digest
from cryptomon.tasks import cancel_and_wait

log = structlog.get_logger()


class Dispatcher:
    """Runs each channel's outbox worker and records each delivery's outcome."""

    def __init__(
        self,
        *,
        channels: Mapping[str, ChannelState],
        records: Recorder,
        clock: Clock,
        renderer: Renderer,
    ) -> None:
        self.channels = channels
        self.records = records
        self.clock = clock
        self.renderer = renderer

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for ch in self.channels.values():
            ch.task = loop.create_task(self._worker(ch), name=f"notify:{ch.name}")

    async def drain(self, timeout_s: float) -> None:
        """Flush pending digests, deliver within ``timeout_s``; what is left is recorded as
        failed."""
        for ch in self.channels.values():
            if ch.digest:
                self.flush_digest(ch)
        joins = [ch.outbox.join() for ch in self.channels.values() if ch.task is not None]
        if joins:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*joins), max(0.0, timeout_s))
        for ch in self.channels.values():
            await cancel_and_wait(ch.task)
            ch.task = None
            self._abandon(ch)

    def _abandon(self, ch: ChannelState) -> None:
        left = [ch.in_flight] if ch.in_flight is not None else []
        ch.in_flight = None
        while not ch.outbox.empty():
            left.append(ch.outbox.get_nowait())
            ch.outbox.task_done()
        for msg in left:
            self._finish(ch, msg, DeliveryResult(False, 0, "not delivered before shutdown"))

    def flush_digest(self, ch: ChannelState) -> None:
        """Queue the channel's collected alerts as one digest message."""
        items, ch.digest, ch.digest_due = ch.digest, [], None
        top = min((a.priority for a, _ in items), default="P2")
        title, body = render_digest(
            ch.name,
            [
                DigestItem(
                    a.priority,
                    iso(a.ts),
                    a.market,
                    r,
                    a.kind if a.category == "anomaly" else a.event_type,
                    a.severity.rank,
                )
                for a, r in items
            ],
            ch.format,
            ch.cfg.digest_interval_s,
            max_items=ch.cfg.digest_max_items,
            max_chars=ch.digest_max_chars,
        )
        ch.outbox.put_nowait(Outgoing(title, body, top, "digest", None, items))

    async def _worker(self, ch: ChannelState) -> None:
        while True:
            msg = await ch.outbox.get()
            ch.in_flight = msg
            try:
                result = await ch.sender.send(msg.title, msg.body, ch.format, msg.priority)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                result = DeliveryResult(False, 1, ch.sender.scrub(f"delivery crashed: {exc!r}"))
            ch.in_flight = None
            self._finish(ch, msg, result)
            ch.outbox.task_done()

    def _finish(self, ch: ChannelState, msg: Outgoing, result: DeliveryResult) -> None:
        status = "sent" if result.ok else "failed"
        if msg.alert is not None:
            self.records.alert(
                ch.name,
                msg.alert,
                status,
                msg.title,
                msg.body,
                error=result.error,
                attempts=result.attempts,
            )
            return
        self._record_plain(
            ch.name,
            title=msg.title,
            body=msg.body,
            result=result,
            priority=msg.priority,
            event_type="digest",
        )
        err = "" if result.ok else f"digest not delivered: {result.error}"
        status = "digested" if result.ok else "failed"  # a dead channel's digest failed
        for alert, r in msg.digest:  # a failed digest is logged once, below, not per alert
            self.records.alert(
                ch.name, alert, status, r.title, r.body, error=err, log_failure=False
            )
        if not result.ok:
            log.error("notify.digest_failed", channel=ch.name, items=len(msg.digest), error=err)

    def _record_plain(
        self,
        channel: str,
        *,
        title: str,
        body: str,
        result: DeliveryResult,
        priority: str,
        event_type: str,
        ts: float | None = None,
    ) -> None:
        """Record a message that is not one alert (a digest, a test message)."""
        self.records.publish(
            channel=channel,
            status="sent" if result.ok else "failed",
            title=title,
            body=body,
            attempts=result.attempts,
            error=result.error,
            priority=priority,
            event_type=event_type,
            ref_id=None,
            exchange="",
            symbol="",
            ts=self.clock.time() if ts is None else ts,
        )

    async def send_test(self, targets: list[ChannelState]) -> dict[str, dict[str, Any]]:
        """Send one test message (one attempt) to each of ``targets``."""
        now = self.clock.time()

        async def one(ch: ChannelState) -> DeliveryResult:
            fields = {
                "event_type": "test",
                "priority": "P2",
                "severity": "low",
                "exchange": "",
                "symbol": "",
                "kind": "test",
                "time": iso(now),
                "link": "",
                "channel_name": ch.name,
                "message": "If you can read this, the channel works.",
            }
            r = self.renderer.render("test", fields, ch.format)
            try:
                res = await ch.sender.send(r.title, r.body, ch.format, "P2", attempts=1)
            except Exception as exc:
                res = DeliveryResult(False, 1, ch.sender.scrub(f"delivery crashed: {exc!r}"))
            self._record_plain(
                ch.name,
                title=r.title,
                body=r.body,
                result=res,
                priority="P2",
                event_type="test",
                ts=now,
            )
            return res

        results = await asyncio.gather(*(one(ch) for ch in targets))
        return {ch.name: res.as_dict() for ch, res in zip(targets, results, strict=True)}
