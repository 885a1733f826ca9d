"""The engine's way back after a (re)start, once its journal is replayed: dust swept, and the
first reconciliation with the broker (retried with backoff until it succeeds)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import structlog

from cryptomon.errors import backoff_delays
from cryptomon.trading.context import EngineContext
from cryptomon.trading.executor import OrderExecutor
from cryptomon.trading.guard import ProtectionManager
from cryptomon.trading.reconcile import Reconciler
from cryptomon.trading.risk import RiskState

log = structlog.get_logger()
ZERO = Decimal(0)


@dataclass(kw_only=True, slots=True)
class StartupRecovery:
    """Sweeps replayed dust and agrees the replayed state with the broker."""

    context: EngineContext
    executor: OrderExecutor
    protection: ProtectionManager
    reconciler: Reconciler

    async def sweep_restored_dust(self) -> None:
        """Replayed positions smaller than the venue's lot (base-currency fees) are dust."""
        ctx = self.context
        for pos in ctx.portfolio.open_positions():
            try:
                await ctx.market_info(pos.symbol)
            except Exception as exc:  # the venue is unreachable: swept on the next exit
                log.warning("trading.market_info_failed", symbol=pos.symbol, error=repr(exc))
                continue
            self.executor.sweep_dust(pos.exchange, pos.symbol, pos.mark or pos.avg_price, ctx.now())
            if pos.amount == 0:
                self.protection.protections.pop((pos.exchange, pos.symbol), None)

    async def first_reconcile(self) -> None:
        """Reconcile once; when the venue is away, keep trying in the background (trading
        nothing until it succeeds)."""
        ctx = self.context
        if not ctx.config.reconcile_on_start:
            ctx.reconciled = True
            ctx.resume_day()
            if ctx.risk_state == RiskState.REDUCING:  # a kill switch from before stays on
                ctx.set_risk_state(RiskState.ACTIVE, "reconciliation disabled by config")
            return
        try:
            await self.reconciler.run()
        except Exception as exc:  # the venue is unreachable: keep trying, trade nothing
            reason = f"reconciliation failed, retrying: {exc}"
            log.error("trading.reconcile_failed", error=repr(exc))
            ctx.state_reason = reason
            ctx.risk_event("state_change", reason)
            ctx.spawn(self._reconcile_until_done(), "trading-reconcile")

    async def _reconcile_until_done(self) -> None:
        ctx = self.context
        delays = backoff_delays(initial=ctx.config.poll_interval_s, cap=60.0)
        while not ctx.reconciled:
            await ctx.clock.sleep(next(delays))
            try:
                await self.reconciler.run()
            except Exception as exc:
                log.warning("trading.reconcile_failed", error=repr(exc))
