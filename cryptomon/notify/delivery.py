"""Delivery to one apprise URL: per-attempt timeout and retries with capped backoff, all
waiting done on the injected Clock; the I/O itself goes through an injected
:class:`~cryptomon.notify.transport.Transport` (apprise's own by default).

apprise runs each service's blocking ``send()`` in its own worker thread pool; ``async_notify``
awaits that. The attempt timeout races the call against ``clock.sleep``; the service's socket
timeouts are set to the attempt timeout too, so an abandoned worker thread ends about when we
stop waiting for it. apprise's per-service throttle is switched off: the channel's token
bucket does the spacing. Error texts are scrubbed of the URL's credentials before they are logged
or recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from cryptomon.clock import Clock
from cryptomon.errors import backoff_delays
from cryptomon.log import REDACTED, Redactor
from cryptomon.notify.templates import Format
from cryptomon.notify.transport import AppriseTransport, NotifyRequest, Transport

log = structlog.get_logger()

# apprise (~3 MB with its imports) is imported by the first channel, not by the notifier: a
# daemon without notification channels never loads it. These name its NotifyFormat and
# NotifyType members, looked up when a message is sent.
BODY_FORMATS: Mapping[str, str] = {"markdown": "MARKDOWN", "text": "TEXT"}
NOTIFY_TYPES: Mapping[str, str] = {"P0": "FAILURE", "P1": "WARNING", "P2": "INFO"}
_SPLIT = re.compile(r"[/:@?&=,]+")
MIN_SPLIT_BODY = 1000
"""Services whose messages hold fewer characters (SMS) truncate a long message, not split it."""


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    ok: bool
    attempts: int
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "attempts": self.attempts, "error": self.error}


class InvalidChannelURL(ValueError):
    """apprise does not understand the URL (the message never contains the URL)."""


class AppriseSender:
    """Sends titled messages to one apprise URL."""

    def __init__(
        self,
        *,
        name: str,
        url: str,
        clock: Clock,
        attempt_timeout_s: float,
        retries: int,
        retry_backoff_s: float,
        retry_backoff_cap_s: float,
        rng: random.Random | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.name = name
        self.transport: Transport = transport or AppriseTransport()
        self.clock = clock
        self._rng = rng
        # the scheme only: apprise keeps secrets anywhere in its URLs (opsgenie://APIKEY, a
        # Slack or Discord https webhook path), not only in the schemes the log redactor knows
        self.redacted_url = f"{url.partition('://')[0]}://{REDACTED}"
        import apprise  # lazy: see BODY_FORMATS

        with _apprise_log_scrubbed(url) as said:
            plugin = apprise.Apprise.instantiate(url)
        if plugin is None:  # apprise's reason (its first warning, else error) in the one line
            found = [r for r in said if r.levelno == logging.WARNING] or said
            why = f"apprise: {found[0].getMessage()}; " if found else ""
            raise InvalidChannelURL(
                f"channel {name!r}: {url.partition('://')[0]}://*** is not a URL apprise supports "
                f"({why}see https://github.com/caronc/apprise/wiki for the URL forms)"
            )
        alog = logging.getLogger("apprise")
        for record in said:  # a usable URL's remarks go to the log as before
            alog.handle(record)
        # Spacing is the channel's token bucket; apprise's own throttle would time.sleep() in a
        # shared worker thread, outside the injected clock (5.5 s per email by default).
        plugin.request_rate_per_sec = 0
        # A long digest must arrive whole: split it at the service's size limit (Telegram 4096)
        # instead of letting the service reject it, unless the URL chose its own ?overflow=.
        # Not on SMS-sized services (160 characters): there a split turns each alert into
        # several texts and one digest into dozens, outside the rate limit; one truncated
        # message each (the title first) instead.
        if "overflow=" not in url:
            small = int(plugin.body_maxlen) < MIN_SPLIT_BODY
            mode = apprise.common.OverflowMode
            plugin.overflow_mode = mode.TRUNCATE if small else mode.SPLIT
        self.plugin = plugin
        self._connect_timeout_s = float(plugin.socket_connect_timeout)  # the service's own
        self.configure(
            attempt_timeout_s=attempt_timeout_s,
            retries=retries,
            retry_backoff_s=retry_backoff_s,
            retry_backoff_cap_s=retry_backoff_cap_s,
        )
        # apprise reports why a send failed through its logger; a logger quieter than WARNING
        # (e.g. --log-level ERROR) would leave our error text empty.
        alog = logging.getLogger("apprise")
        if alog.getEffectiveLevel() > logging.WARNING:
            alog.setLevel(logging.WARNING)
        self._redactor = Redactor(_secret_parts(plugin, url))

    def configure(
        self,
        *,
        attempt_timeout_s: float,
        retries: int,
        retry_backoff_s: float,
        retry_backoff_cap_s: float,
    ) -> None:
        """The attempt timeout (the service's socket timeouts too), retries and backoff; a
        reload calls it again with the file's values."""
        self.attempt_timeout_s = attempt_timeout_s
        self.retries = retries
        self.retry_backoff_s = retry_backoff_s
        self.retry_backoff_cap_s = retry_backoff_cap_s
        self.plugin.socket_connect_timeout = min(self._connect_timeout_s, attempt_timeout_s)
        self.plugin.socket_read_timeout = attempt_timeout_s

    def scrub(self, text: str) -> str:
        return self._redactor.scrub(text)

    async def attempt(self, title: str, body: str, fmt: Format, priority: str = "P2") -> str | None:
        """One try; None on success, else the (scrubbed) reason."""
        import apprise  # imported by __init__ already: a dict lookup

        request = NotifyRequest(
            channel=self.name,
            plugin=self.plugin,
            title=title,
            body=body,
            body_format=apprise.NotifyFormat[BODY_FORMATS[fmt]],
            notify_type=apprise.NotifyType[NOTIFY_TYPES.get(priority, "INFO")],
            priority=priority,
        )
        call = asyncio.ensure_future(self.transport.send(request))
        timer = asyncio.ensure_future(self.clock.sleep(self.attempt_timeout_s))
        try:
            done, _ = await asyncio.wait({call, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not call.done():
                call.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await call
        if call not in done:
            return f"no answer within {self.attempt_timeout_s:g}s"
        try:
            reason = call.result()
        except Exception as exc:  # transports report failures as a reason; this is a crash
            return self.scrub(f"apprise error: {exc!r}")
        return None if reason is None else self.scrub(reason)

    async def send(
        self, title: str, body: str, fmt: Format, priority: str = "P2", *, attempts: int = 0
    ) -> DeliveryResult:
        """Try up to ``attempts`` times (default ``1 + retries``), backing off in between."""
        total = attempts or 1 + self.retries
        delays = backoff_delays(
            initial=self.retry_backoff_s, cap=self.retry_backoff_cap_s, rng=self._rng
        )
        error = ""
        for n in range(1, total + 1):
            failed = await self.attempt(title, body, fmt, priority)
            if failed is None:
                return DeliveryResult(ok=True, attempts=n)
            error = failed
            log.warning(
                "notify.attempt_failed",
                channel=self.name,
                url=self.redacted_url,
                attempt=n,
                of=total,
                error=error,
            )
            if n < total:
                await self.clock.sleep(next(delays))
        return DeliveryResult(
            ok=False, attempts=total, error=f"failed after {total} attempt(s): {error}"
        )


class _ScrubURL(logging.Filter):
    """Hides every part of one URL in the apprise log records it is attached for."""

    def __init__(self, url: str) -> None:
        super().__init__()
        parts = {p for p in _SPLIT.split(url.partition("://")[2]) if len(p) >= 3}
        self._parts = sorted(parts, key=len, reverse=True)
        self._thread = threading.get_ident()
        self.said: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        for part in self._parts:
            text = text.replace(part, REDACTED)
        record.msg, record.args = text, None
        if record.thread == self._thread and record.levelno >= logging.WARNING:
            self.said.append(record)  # held: the caller says it in its error, or logs it
            return False
        return True


@contextlib.contextmanager
def _apprise_log_scrubbed(url: str) -> Iterator[list[logging.LogRecord]]:
    """While apprise parses ``url``: its log lines name the URL with only the parts it takes
    for secrets shortened (a mistyped Slack webhook kept its workspace and channel ids), and
    the log redactor cannot know the parts of a URL apprise does not understand. Its warnings
    and errors from this thread are held (scrubbed) in the list yielded: a URL it refuses is
    one line naming apprise's reason, not its log lines and then ours."""
    alog = logging.getLogger("apprise")
    scrub = _ScrubURL(url)
    alog.addFilter(scrub)
    try:
        yield scrub.said
    finally:
        alog.removeFilter(scrub)


def _secret_parts(plugin: Any, url: str) -> list[str]:
    """Tokens of the URL that apprise itself hides in its privacy form (tokens, passwords)."""
    try:
        full = str(plugin.url(privacy=False))
        private = str(plugin.url(privacy=True))
    except Exception:  # a plugin that cannot print itself: hide the whole URL only
        return [url]
    public = set(_SPLIT.split(private))
    parts = {p for p in _SPLIT.split(full) if p and p not in public}
    parts |= {p for p in _SPLIT.split(url.partition("://")[2]) if p and p not in public}
    # the URL itself, then the parts (short parts would only mangle unrelated text)
    return [url, *(p for p in parts if len(p) >= 6)]
