"""The venue's clock, as the signed requests need it.

A venue refuses a signed request whose ``timestamp`` is outside its window (Binance -1021,
ccxt's ``InvalidNonce``). :class:`VenueClock` measures the offset from the venue's time
endpoint (ccxt ``load_time_difference``, which also makes ccxt sign with that offset): at
start and again after every refusal. ``signing_ok`` is False from a refusal until the next
signed request the venue accepts; the engine goes ``reducing`` meanwhile and alerts when the
measured offset is past ``max_skew_s``.
"""

from __future__ import annotations

from typing import Any

import structlog

log = structlog.get_logger()
PUBLIC_CALLS = frozenset({"load_markets", "fetch_markets", "fetch_time", "fetch_order_book"})
"""ccxt methods that sign nothing: their success says nothing about the clock."""


class VenueClock:
    """Offset of the venue's clock (venue - local, seconds) and whether signing works."""

    def __init__(self, venue: str, *, max_skew_s: float = 1.0) -> None:
        self.venue = venue
        self.max_skew_s = max_skew_s
        self.offset_s: float | None = None
        self.signing_ok = True
        self.refusals = 0
        self.syncs = 0
        self.last_error = ""  # the venue's last refusal
        self.sync_error = ""  # why the offset could not be measured last time

    @property
    def skewed(self) -> bool:
        """The last measured offset is past the bound."""
        return self.offset_s is not None and abs(self.offset_s) > self.max_skew_s

    async def sync(self, exchange: Any) -> bool:
        """Measure the offset from the venue's time endpoint; ccxt signs with it from now on.
        False when the venue has no time endpoint or it did not answer (logged)."""
        import ccxt

        try:
            difference_ms = await exchange.load_time_difference()
        except ccxt.NotSupported:
            return False
        except Exception as exc:  # the endpoint is down: signing keeps the last offset
            self.sync_error = f"time endpoint: {type(exc).__name__}: {exc}"
            log.warning("broker.clock_sync_failed", venue=self.venue, error=self.sync_error)
            return False
        self.syncs += 1
        self.sync_error = ""
        self.offset_s = -float(difference_ms) / 1000.0  # ccxt keeps local - venue
        emit = log.warning if self.skewed else log.info
        emit("broker.clock_offset", venue=self.venue, offset_s=round(self.offset_s, 3))
        return True

    def refused(self, error: str) -> None:
        """The venue refused a signed request's timestamp."""
        self.refusals += 1
        self.last_error = error
        if self.signing_ok:
            log.warning("broker.signing_refused", venue=self.venue, error=error)
        self.signing_ok = False

    def accepted(self) -> None:
        """A signed request went through."""
        if not self.signing_ok:
            log.info("broker.signing_ok", venue=self.venue, offset_s=self.offset_s)
        self.signing_ok = True

    def answered(self, call: Any) -> None:
        """The venue answered ``call`` (a bound ccxt method): a signed one proves signing."""
        if getattr(call, "__name__", "") not in PUBLIC_CALLS:
            self.accepted()

    async def refused_sync(self, exchange: Any, error: str) -> None:
        """A refusal: note it and measure the offset again for the next request."""
        self.refused(error)
        await self.sync(exchange)
