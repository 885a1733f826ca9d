"""The order engine component: signals -> risk -> orders -> broker -> fills -> protection.

``start()`` rebuilds positions from the journal's fills, re-arms the protection of open
positions, reconciles with the broker and only then leaves the ``reducing`` state it starts
in; then it follows ``Signal`` and ``BookTop`` events and polls open orders. ``stop()`` ends
its tasks (orders stay at the venue; the next start reconciles them).

:class:`TradingEngine` composes collaborators that share one
:class:`~cryptomon.trading.context.EngineContext`:

- :class:`~cryptomon.trading.executor.OrderExecutor`: risk gate, write-before-send,
  placement, unknown orders, venue updates and fills;
- :class:`~cryptomon.trading.guard.ProtectionManager`: SL/TP (native or emulated, trailing)
  and the daily loss limit;
- :class:`~cryptomon.trading.reconcile.Reconciler`: agreement with the broker;
- :class:`~cryptomon.trading.entries.SignalTrader`: a signal -> an entry or a close;
- :class:`~cryptomon.trading.control.TradingControls`: the API's methods, which the engine
  exposes under the same names (``positions``, ``orders``, ``stats``, ``limits``,
  ``update_limits``, ``place_manual_order``, ``cancel_order``, ``kill_switch``, ``resume``).

What the API may change at runtime lives in the shared
:class:`~cryptomon.trading.runtime.TradingRuntime` (pass the signal generator's). Optional
broker hooks: ``set_listener(callback)`` to push order changes (fills of resting orders) and
``restore(balances, orders)`` for a simulated venue that must start from the persisted state.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import structlog

from cryptomon.clock import Clock
from cryptomon.errors import RiskRejected, backoff_delays
from cryptomon.events import BookTop, OrderState, Signal
from cryptomon.hub import Hub
from cryptomon.market.state import MarketState
from cryptomon.trading.brokers.base import Broker, BrokerOrder
from cryptomon.trading.context import EngineContext, to_decimal
from cryptomon.trading.control import TradingControls
from cryptomon.trading.entries import SignalTrader
from cryptomon.trading.executor import OrderExecutor
from cryptomon.trading.funding import FundingSync, replay_journal
from cryptomon.trading.futures import SpecLookup
from cryptomon.trading.guard import ProtectionManager
from cryptomon.trading.journal import Journal
from cryptomon.trading.orders import OrderBook, OrderRecord
from cryptomon.trading.portfolio import Portfolio
from cryptomon.trading.reconcile import Reconciler
from cryptomon.trading.risk import RiskState
from cryptomon.trading.runtime import TradingRuntime
from cryptomon.trading.venue_watch import ClockWatch

if TYPE_CHECKING:
    from cryptomon.config import TradingConfig

log = structlog.get_logger()
ZERO = Decimal(0)


class TradingEngine:
    """See the module docstring."""

    name = "trading-engine"

    def __init__(
        self,
        *,
        config: TradingConfig,
        hub: Hub,
        clock: Clock,
        broker: Broker,
        market: MarketState,
        journal: Journal,
        runtime: TradingRuntime | None = None,
        quote_currency: str | None = None,
        starting_cash: Decimal | None = None,
        specs: SpecLookup | None = None,
    ) -> None:
        self.hub = hub
        self.clock = clock
        self.broker = broker
        self.market = market
        self.journal = journal
        self.runtime = runtime or TradingRuntime(config=config, hub=hub, clock=clock)
        quote = quote_currency or config.paper.quote_currency
        cash = (
            starting_cash
            if starting_cash is not None
            else to_decimal(config.paper.starting_balance)
        )
        self.context = EngineContext(
            runtime=self.runtime,
            hub=hub,
            clock=clock,
            broker=broker,
            market=market,
            journal=journal,
            portfolio=Portfolio(quote=quote, cash=cash),
            specs=specs,
        )
        self.context.portfolio.terms = self.context.contract_terms
        self.executor = OrderExecutor(context=self.context)
        self.protection = ProtectionManager(context=self.context, executor=self.executor)
        self.executor.observe(self.protection)
        self.reconciler = Reconciler(context=self.context, executor=self.executor)
        self.entries = SignalTrader(context=self.context, executor=self.executor)
        self.controls = TradingControls(context=self.context, executor=self.executor)
        self.funding = FundingSync(context=self.context)
        self.clock_watch = ClockWatch(context=self.context)
        self._queue: asyncio.Queue[Signal] = asyncio.Queue()
        self._subs: list[Any] = []

    # ------------------------------------------------------------------ state views

    @property
    def config(self) -> TradingConfig:
        """The current trading settings (startup config + runtime changes)."""
        return self.runtime.config

    @property
    def portfolio(self) -> Portfolio:
        return self.context.portfolio

    @property
    def book(self) -> OrderBook:
        return self.context.book

    @property
    def risk_state(self) -> RiskState:
        return self.context.risk_state

    @property
    def state_reason(self) -> str:
        return self.context.state_reason

    @property
    def reconciled(self) -> bool:
        return self.context.reconciled

    @reconciled.setter
    def reconciled(self, value: bool) -> None:
        self.context.reconciled = value

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        ctx = self.context
        last_state = getattr(self.journal, "last_risk_state", None)
        was_halted = callable(last_state) and await last_state() == RiskState.HALTED
        await self._restore()
        await self.broker.start()
        await self._sweep_restored_dust()
        set_listener = getattr(self.broker, "set_listener", None)
        if callable(set_listener):
            set_listener(self._on_broker_update)
        await self._first_reconcile()
        if was_halted:  # the kill switch stays on across restarts until someone resumes
            ctx.set_risk_state(RiskState.HALTED, "halted before the restart (kill switch)")
        self._subs = [
            self.hub.subscribe(Signal, self.on_signal, name="trading-engine.signal"),
            self.hub.subscribe(BookTop, self.protection.on_top, name="trading-engine.top"),
        ]
        ctx.spawn(self._signal_worker(), "trading-signals-worker")
        ctx.spawn(self._poll(), "trading-poll")
        log.info(
            "trading.started",
            broker=self.broker.name,
            state=str(ctx.risk_state),
            positions=len(ctx.portfolio.open_positions()),
            open_orders=len(ctx.book.open()),
        )

    async def _restore(self) -> None:
        """Orders and fills from the journal; a simulated venue restarts from them."""
        ctx = self.context
        for stored in await self.journal.open_orders():
            record = ctx.book.add(
                OrderRecord(
                    intent=stored.intent,
                    state=stored.state,
                    exchange_order_id=stored.exchange_order_id,
                )
            )
            if stored.missing_fills:
                ctx.incomplete.append(record)
        await replay_journal(self.journal, replay_fill=self.executor.replay_fill, sync=self.funding)
        restore = getattr(self.broker, "restore", None)
        if callable(restore):  # a simulated venue restarts from the persisted state
            restore(self._balances(), [(r.intent, r.filled, r.state) for r in ctx.book.open()])
        restore_positions = getattr(self.broker, "restore_positions", None)
        if callable(restore_positions):  # contracts: signed qty and entry, no coins held
            held = [p for p in ctx.portfolio.open_positions() if p.contract is not None]
            restore_positions([(p.exchange, p.symbol, p.amount, p.avg_price) for p in held])
        for pos in ctx.portfolio.open_positions():
            self.protection.arm_default(pos)
        self.protection.adopt_legs(ctx.book.open())

    async def _first_reconcile(self) -> None:
        ctx = self.context
        if not self.config.reconcile_on_start:
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

    async def _sweep_restored_dust(self) -> None:
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

    async def _reconcile_until_done(self) -> None:
        delays = backoff_delays(initial=self.config.poll_interval_s, cap=60.0)
        while not self.context.reconciled:
            await self.clock.sleep(next(delays))
            try:
                await self.reconciler.run()
            except Exception as exc:
                log.warning("trading.reconcile_failed", error=repr(exc))

    async def stop(self) -> None:
        for sub in self._subs:
            sub.close()
        await self.context.stop_tasks()
        await self.broker.stop()
        close = getattr(self.journal, "aclose", None)  # ExitJournal: stop folding
        if close is not None:
            await close()

    def _balances(self) -> dict[str, Decimal]:
        portfolio = self.context.portfolio
        out = {portfolio.quote: portfolio.cash}
        for pos in portfolio.open_positions():
            if pos.contract is not None:
                continue
            base = pos.symbol.rpartition("-")[0] or pos.symbol
            out[base] = out.get(base, ZERO) + pos.amount
        return out

    # ------------------------------------------------------------------ events in

    def on_signal(self, signal: Signal) -> None:
        self._queue.put_nowait(signal)

    async def _signal_worker(self) -> None:
        while True:
            sig = await self._queue.get()
            try:
                await self.entries.handle(sig)
            except RiskRejected:
                pass  # already published as a RiskEvent
            except Exception as exc:
                log.error("trading.signal_failed", signal_id=sig.id, error=repr(exc))

    async def handle_signal(self, sig: Signal) -> OrderRecord | None:
        """Turn one signal into an order when auto trading, strength and position allow."""
        return await self.entries.handle(sig)

    def _on_broker_update(self, answer: BrokerOrder) -> None:
        record = self.context.book.get(answer.client_order_id)
        if record is not None:
            self.context.spawn(
                self.executor.apply_broker_order(record, answer),
                f"update:{answer.client_order_id}",
            )

    async def _poll(self) -> None:
        """Poll open orders, publish marks, watch the daily loss limit."""
        last_marks = 0.0
        last_equity = 0.0
        last_reconcile = self.clock.time()
        while True:
            await self.clock.sleep(self.config.poll_interval_s)
            await self._poll_orders()
            now = self.clock.time()
            if now - last_marks >= self.config.mark_interval_s:
                last_marks = now
                for pos in self.context.portfolio.open_positions():
                    self.context.publish_position(pos)
                self.context.portfolio.snapshot(now)
            if now - last_equity >= self.config.equity_snapshot_interval_s:
                last_equity = now
                await self.record_equity(now)
            if now - last_reconcile >= self.config.reconcile_interval_s:
                last_reconcile = now
                try:
                    await self.reconciler.run(periodic=True)
                except Exception as exc:
                    log.warning("trading.reconcile_failed", error=repr(exc))
                await self.funding.sync()
            self.protection.check_daily_loss()
            await self.clock_watch.check()

    async def _poll_orders(self) -> None:
        for record in self.context.book.open():
            if record.state == OrderState.UNKNOWN:
                self.executor.settle_later(record)
                continue
            intent = record.intent
            try:
                answer = await self.broker.fetch_order(intent.symbol, intent.client_order_id)
            except Exception as exc:
                log.warning(
                    "trading.poll_failed",
                    client_order_id=intent.client_order_id,
                    error=repr(exc),
                )
                continue
            if answer is not None:
                await self.executor.apply_broker_order(record, answer)

    async def record_equity(self, now: float) -> None:
        """Write one equity snapshot (equity, cash, PnL, exposure) through the journal."""
        portfolio = self.context.portfolio
        positions = portfolio.positions.values()
        try:
            await self.journal.record_equity(
                ts=now,
                equity=portfolio.equity,
                cash=portfolio.cash,
                unrealized_pnl=sum((p.unrealized_pnl for p in positions), ZERO),
                realized_pnl=sum((p.realized_pnl for p in positions), ZERO),
                exposure=portfolio.exposure(),
            )
        except Exception as exc:  # a snapshot is not worth stopping the engine for
            log.warning("trading.equity_snapshot_failed", error=repr(exc))

    # ------------------------------------------------------------------ API (see control.py)

    def positions(self) -> list[dict[str, Any]]:
        return self.controls.positions()

    def orders(
        self, symbol: str | None = None, open_only: bool = False, limit: int = 100
    ) -> list[dict[str, Any]]:
        return self.controls.orders(symbol=symbol, open_only=open_only, limit=limit)

    def stats(self) -> dict[str, Any]:
        return self.controls.stats()

    def limits(self) -> dict[str, Any]:
        return self.controls.limits()

    def update_limits(self, actor: str, **fields: Any) -> dict[str, Any]:
        return self.controls.update_limits(actor, **fields)

    async def place_manual_order(
        self,
        *,
        actor: str,
        exchange: str,
        symbol: str,
        side: str,
        amount: Any,
        type: str = "market",
        price: Any = None,
        stop_loss: Any = None,
        take_profit: Any = None,
        reduce_only: bool = False,
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Risk-checked like every order, audited; the same ``request_id`` never places a
        second order. Raises ``RiskRejected`` or ``ValueError`` (bad input)."""
        return await self.controls.place_manual_order(
            actor=actor,
            exchange=exchange,
            symbol=symbol,
            side=side,
            amount=amount,
            type=type,
            price=price,
            stop_loss=stop_loss,
            take_profit=take_profit,
            reduce_only=reduce_only,
            request_id=request_id,
        )

    async def cancel_order(self, client_order_id: str, actor: str) -> dict[str, Any]:
        return await self.controls.cancel_order(client_order_id, actor)

    async def kill_switch(self, actor: str, flatten: bool | None = None) -> dict[str, Any]:
        return await self.controls.kill_switch(actor, flatten=flatten)

    async def resume(self, actor: str) -> str:
        return await self.controls.resume(actor)
