"""The engine's periodic loop: poll open orders, publish marks, snapshot equity, reconcile
and sync funding now and then, watch the daily loss limit and the venue's clock, persist the
trailed stops the throttle held back."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import structlog

from cryptomon.events import OrderState
from cryptomon.trading.brokers.base import is_protective, urgent
from cryptomon.trading.context import EngineContext
from cryptomon.trading.executor import OrderExecutor
from cryptomon.trading.funding import FundingSync
from cryptomon.trading.guard import ProtectionManager
from cryptomon.trading.reconcile import Reconciler
from cryptomon.trading.venue_watch import ClockWatch

log = structlog.get_logger()
ZERO = Decimal(0)


@dataclass(kw_only=True, slots=True)
class EnginePoller:
    """One loop on the injected clock, every ``poll_interval_s``."""

    context: EngineContext
    executor: OrderExecutor
    protection: ProtectionManager
    reconciler: Reconciler
    funding: FundingSync
    clock_watch: ClockWatch

    async def run(self) -> None:
        """Poll open orders, publish marks, watch the daily loss limit."""
        ctx = self.context
        last_marks = 0.0
        last_equity = 0.0
        last_reconcile = ctx.clock.time()
        while True:
            await ctx.clock.sleep(ctx.config.poll_interval_s)
            await self.poll_orders()
            config, now = ctx.config, ctx.clock.time()
            if now - last_marks >= config.mark_interval_s:
                last_marks = now
                for pos in ctx.portfolio.open_positions():
                    ctx.publish_position(pos)
                ctx.portfolio.snapshot(now)
            # none before the first reconciliation: until then a live engine's cash is a
            # placeholder (the starting balance, the replayed fills' sum), not the venue's,
            # and a stored snapshot of it would stay in the equity history (the drawdown, the
            # UTC day's start that daily_loss_limit counts from after a restart)
            if ctx.reconciled and now - last_equity >= config.equity_snapshot_interval_s:
                last_equity = now
                await self.record_equity(now)
            if now - last_reconcile >= config.reconcile_interval_s:
                last_reconcile = now
                await self.reconcile_step()
            self.protection.check_daily_loss()
            self.protection.save_trails()  # a trailed stop the throttle held back
            await self.clock_watch.check()

    async def reconcile_step(self) -> None:
        """The periodic funding sync, then the periodic reconciliation. In this order: the
        reconciliation takes a live venue's balance as the cash, and that balance already
        holds the funding the venue paid; booked first, the payment is realized PnL and the
        balance then agrees. The other way round the payment came in as a cash change that
        is not PnL and the sync then booked it a second time (the equity short by it until
        the next reconciliation took it back, the equity history moved twice)."""
        await self.funding.sync()
        try:
            await self.reconciler.run(periodic=True)
        except Exception as exc:
            log.warning("trading.reconcile_failed", error=repr(exc))
            return
        self.protection.cancel_orphan_legs()

    async def poll_orders(self) -> None:
        """Ask the broker about every open order; unknown ones are settled by lookup, and a
        cancel the venue has not acted on is sent again. An order whose placement is still on
        its way is left to the placement's answer: a lookup then would race the POST (the
        venue may not know the order yet, or answer about it after the placement did)."""
        for record in self.context.book.open():
            if self.executor.placing(record):
                continue
            if record.state == OrderState.UNKNOWN:
                self.executor.settle_later(record)
                continue
            intent = record.intent
            try:
                with urgent(is_protective(intent)):  # an exit in flight: its fills at once
                    answer = await self.context.broker.fetch_order(
                        intent.symbol, intent.client_order_id
                    )
            except Exception as exc:
                log.warning(
                    "trading.poll_failed",
                    client_order_id=intent.client_order_id,
                    error=repr(exc),
                )
                continue
            if answer is None:
                continue
            await self.executor.apply_broker_order(record, answer)
            if record.state == OrderState.CANCEL_PENDING and answer.state in (
                OrderState.SUBMITTED,
                OrderState.PARTIALLY_FILLED,
            ):  # the venue did not take the cancel (an error, a timeout): ask again
                await self.executor.cancel(record)

    async def record_equity(self, now: float) -> None:
        """Write one equity snapshot (equity, cash, PnL, exposure) through the journal."""
        portfolio = self.context.portfolio
        positions = portfolio.positions.values()
        try:
            await self.context.journal.record_equity(
                ts=now,
                equity=portfolio.equity,
                cash=portfolio.cash,
                unrealized_pnl=sum((p.unrealized_pnl for p in positions), ZERO),
                realized_pnl=sum((p.realized_pnl for p in positions), ZERO),
                exposure=portfolio.exposure(),
            )
        except Exception as exc:  # a snapshot is not worth stopping the engine for
            log.warning("trading.equity_snapshot_failed", error=repr(exc))
