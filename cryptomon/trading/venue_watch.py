"""The venue's clock as the engine sees it: an alert past the bound, ``reducing`` while the
venue refuses signed requests.

The live broker exposes a ``venue_clock`` (:class:`~cryptomon.trading.brokers.ccxt_time.
VenueClock`: the measured offset and whether signing works); a broker without one (paper) is
never watched. :meth:`ClockWatch.check` runs on the engine's poll loop.
"""

from __future__ import annotations

import contextlib
from typing import Any, Literal

from cryptomon.events import Notice
from cryptomon.trading.context import EngineContext
from cryptomon.trading.risk import RiskState

PROBE_INTERVAL_S = 1.0


class ClockWatch:
    """Turns the broker's venue clock into notices and the ``reducing`` risk state."""

    def __init__(self, *, context: EngineContext) -> None:
        self.context = context
        self.alerted = False
        self.reducing = False  # this watch put the engine in reducing (and may take it out)
        self.probed = float("-inf")

    async def check(self) -> None:
        venue_clock: Any = getattr(self.context.broker, "venue_clock", None)
        if venue_clock is None:
            return
        ctx = self.context
        if not venue_clock.signing_ok:
            await self._probe()
        self._alert(venue_clock)
        if not venue_clock.signing_ok and ctx.risk_state == RiskState.ACTIVE:
            self.reducing = True
            ctx.set_risk_state(
                RiskState.REDUCING,
                f"{venue_clock.venue} refuses signed requests (clock skew): "
                f"{venue_clock.last_error[:160]}",
            )
        elif venue_clock.signing_ok and self.reducing:
            self.reducing = False
            if ctx.risk_state == RiskState.REDUCING:
                ctx.set_risk_state(RiskState.ACTIVE, f"{venue_clock.venue} signs again")

    async def _probe(self) -> None:
        """One signed request (the balances) at most every PROBE_INTERVAL_S: the broker
        re-measured the offset after the refusal; this tells whether signing works again."""
        now = self.context.clock.monotonic()
        if now - self.probed < PROBE_INTERVAL_S:
            return
        self.probed = now
        with contextlib.suppress(Exception):  # still refused: the broker noted it
            await self.context.broker.fetch_balances()

    def _alert(self, venue_clock: Any) -> None:
        skewed = venue_clock.skewed or not venue_clock.signing_ok
        if skewed == self.alerted:
            return
        self.alerted = skewed
        offset = venue_clock.offset_s
        shown = "unknown" if offset is None else f"{offset:+.3f} s"
        level: Literal["info", "error"] = "error" if skewed else "info"
        if skewed:
            code = "venue_clock_skew"
            message = (
                f"{venue_clock.venue}: clock offset {shown} (bound "
                f"{venue_clock.max_skew_s:g} s); signing ok: {venue_clock.signing_ok}"
            )
        else:
            code = "venue_clock_ok"
            message = f"{venue_clock.venue}: clock offset {shown}, signed requests accepted"
        now = self.context.now()
        self.context.hub.publish(
            Notice(
                exchange="", symbol="", ts=now, ts_recv=now, code=code, message=message, level=level
            )
        )
