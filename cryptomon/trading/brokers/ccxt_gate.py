"""The venue's rate-limit gate: a 429 or 418 pauses every request to that venue.

One :class:`VenueGate` belongs to one venue (one ccxt client, shared by every caller of the
broker: placement, lookups, reconciliation, balances, the markets load). :func:`install`
hooks it into the ccxt client itself, so no request can pass it, including the ones ccxt
makes on its own: every response is seen by ccxt's ``on_rest_response`` hook, and a 429
(too many requests) or 418 (the IP is banned for a while) closes the gate for the venue's
``Retry-After`` (seconds or an HTTP date; a default when the venue sent none). Every request
waits at the gate first; a wait longer than ``max_wait_s`` is not waited for but raised as
:class:`RateLimited` before anything is sent.

ccxt's own pacing (``enableRateLimit``) is a queue with a debt: a request of weight w makes
the next one wait w x ``rateLimit`` (Binance USD-M's open orders without a symbol: 40 x 50 ms,
2 s), whoever sends it. An urgent request (:data:`~cryptomon.trading.brokers.base.URGENT`: a
protective exit) is not queued there (:func:`pace`): it goes at once and its weight is added
to the debt the next paced request waits out. The venue's gate above applies to it as to any.
"""

from __future__ import annotations

import contextlib
import time
from email.utils import parsedate_to_datetime
from typing import Any

import structlog

from cryptomon.clock import Clock
from cryptomon.errors import TemporaryError
from cryptomon.trading.brokers.base import SEND_GUARD, URGENT

log = structlog.get_logger()

LIMIT_STATUSES = frozenset({418, 429})
"""HTTP statuses that mean "stop sending for a while" (429 rate limit, 418 IP ban)."""


class RateLimited(TemporaryError):
    """A request not sent because the venue asked to wait longer than the gate waits."""

    def __init__(self, venue: str, retry_after_s: float, status: int) -> None:
        super().__init__(
            f"{venue}: not sent, the venue asked to wait {retry_after_s:.1f} s more (HTTP {status})"
        )
        self.retry_after_s = retry_after_s
        self.status = status


def parse_retry_after(value: Any, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or an HTTP date)."""
    text = str(value).strip()
    with contextlib.suppress(ValueError):
        return max(0.0, float(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


class VenueGate:
    """Closed after a 429/418 until the venue's ``Retry-After`` has passed."""

    def __init__(
        self,
        venue: str,
        *,
        clock: Clock,
        default_429_s: float = 1.0,
        default_418_s: float = 60.0,
        max_wait_s: float = 60.0,
    ) -> None:
        self.venue = venue
        self.clock = clock
        self.default_s = {429: default_429_s, 418: default_418_s}
        self.max_wait_s = max_wait_s
        self.closed_until = 0.0
        self.status = 0
        self.hits = 0
        self.last_wait_s: float | None = None

    def remaining(self) -> float:
        """Seconds until the gate opens (0 when open)."""
        return max(0.0, self.closed_until - self.clock.monotonic())

    def observe(self, status: int, headers: dict[str, Any] | None) -> None:
        """Look at one response; a 429/418 closes the gate for its ``Retry-After``."""
        if status not in LIMIT_STATUSES:
            return
        wait = None
        for key, value in (headers or {}).items():
            if str(key).lower() == "retry-after":
                wait = parse_retry_after(value, self.clock.time())
        if wait is None:
            wait = self.default_s[status]
        self.hits += 1
        self.status = status
        self.last_wait_s = wait
        self.closed_until = max(self.closed_until, self.clock.monotonic() + wait)
        log.warning("broker.rate_limited", venue=self.venue, status=status, retry_after_s=wait)

    async def wait(self) -> None:
        """Return when a request may be sent; :class:`RateLimited` if that is too far off."""
        while (left := self.remaining()) > 0:
            if left > self.max_wait_s:
                raise RateLimited(self.venue, left, self.status)
            await self.clock.sleep(left)


def install(exchange: Any, gate: VenueGate) -> None:
    """Put ``gate`` in front of every HTTP request of the ccxt client ``exchange``."""
    fetch = exchange.fetch
    on_rest_response = exchange.on_rest_response

    async def gated_fetch(*args: Any, **kwargs: Any) -> Any:
        await gate.wait()
        guard = SEND_GUARD.get()
        if guard is not None:  # e.g. the trading lease, checked now rather than before the wait
            guard()
        return await fetch(*args, **kwargs)

    def observed(code: Any, reason: Any, url: Any, method: Any, headers: Any, *rest: Any) -> Any:
        with contextlib.suppress(TypeError, ValueError):
            gate.observe(int(code), dict(headers or {}))
        return on_rest_response(code, reason, url, method, headers, *rest)

    exchange.fetch = gated_fetch
    exchange.on_rest_response = observed
    pace(exchange)


def charge(throttler: Any, cost: float | None) -> None:
    """Count a request that skipped ccxt's queue in its limiter: the leaky bucket's tokens
    go down by its weight (the next paced request waits that much longer), the rolling
    window gets its timestamp."""
    config = getattr(throttler, "config", None)
    if not isinstance(config, dict):
        return
    weight = float(config.get("cost", 1.0) if cost is None else cost)
    if config.get("algorithm") == "rollingWindow":
        throttler.timestamps.append({"timestamp": time.time() * 1000, "cost": weight})
    else:
        config["tokens"] = config.get("tokens", 0) - weight


def pace(exchange: Any) -> None:
    """Let the urgent requests of the ccxt client ``exchange`` skip ccxt's pacing queue."""
    throttle = exchange.throttle

    async def laned(cost: float | None = None) -> Any:
        if URGENT.get():
            charge(getattr(exchange, "throttler", None), cost)
            return None
        return await throttle(cost)

    exchange.throttle = laned
