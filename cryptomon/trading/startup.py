"""The engine's way back after a (re)start: orders and fills replayed from the journal, a
simulated venue restored from them, dust swept, protection re-armed, and the first
reconciliation with the broker (retried with backoff until it succeeds)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import structlog

from cryptomon.errors import backoff_delays
from cryptomon.trading.context import EngineContext
from cryptomon.trading.executor import OrderExecutor
from cryptomon.trading.guard import ProtectionManager
from cryptomon.trading.orders import OrderRecord
from cryptomon.trading.reconcile import Reconciler
from cryptomon.trading.risk import RiskState

log = structlog.get_logger()
ZERO = Decimal(0)


@dataclass(kw_only=True, slots=True)
class StartupRecovery:
    """Rebuilds the engine's state from its journal and agrees it with the broker."""

    context: EngineContext
    executor: OrderExecutor
    protection: ProtectionManager
    reconciler: Reconciler

    async def restore(self) -> None:
        """Orders and fills from the journal; a simulated venue restarts from them."""
        ctx = self.context
        for stored in await ctx.journal.open_orders():
            record = ctx.book.add(
                OrderRecord(
                    intent=stored.intent,
                    state=stored.state,
                    exchange_order_id=stored.exchange_order_id,
                )
            )
            if stored.missing_fills:
                ctx.incomplete.append(record)
        for fill in await ctx.journal.fills():
            self.executor.replay_fill(fill)
        restore = getattr(ctx.broker, "restore", None)
        if callable(restore):  # a simulated venue restarts from the persisted state
            restore(self.balances(), [(r.intent, r.filled, r.state) for r in ctx.book.open()])
        restore_positions = getattr(ctx.broker, "restore_positions", None)
        if callable(restore_positions):  # contracts: signed qty and entry, no coins held
            held = [p for p in ctx.portfolio.open_positions() if p.contract is not None]
            restore_positions([(p.exchange, p.symbol, p.amount, p.avg_price) for p in held])
        for pos in ctx.portfolio.open_positions():
            self.protection.arm_default(pos)

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

    def balances(self) -> dict[str, Decimal]:
        """Cash and the coins of spot positions, as a simulated venue restores them."""
        portfolio = self.context.portfolio
        out = {portfolio.quote: portfolio.cash}
        for pos in portfolio.open_positions():
            if pos.contract is not None:
                continue
            base = pos.symbol.rpartition("-")[0] or pos.symbol
            out[base] = out.get(base, ZERO) + pos.amount
        return out
