"""The order engine component: signals -> risk -> orders -> broker -> fills -> protection.

``start()`` rebuilds positions from the journal's fills, re-arms the protection of open
positions, reconciles with the broker and only then leaves the ``reducing`` state it starts
in; then it follows ``Signal`` and ``BookTop`` events and polls open orders. ``stop()`` ends
its tasks (orders stay at the venue; the next start reconciles them) after publishing every
trailed stop not persisted yet (the next start protects at it).

:class:`TradingEngine` composes collaborators that share one
:class:`~cryptomon.trading.context.EngineContext`:

- :class:`~cryptomon.trading.executor.OrderExecutor`: risk gate, write-before-send,
  placement, unknown orders, venue updates and fills;
- :class:`~cryptomon.trading.guard.ProtectionManager`: SL/TP (native or emulated, trailing)
  and the daily loss limit;
- :class:`~cryptomon.trading.reconcile.Reconciler`: agreement with the broker;
- :class:`~cryptomon.trading.entries.SignalTrader`: a signal -> an entry or a close;
- :class:`~cryptomon.trading.startup.StartupRecovery`: after the journal replay, the dust
  sweep and the first reconciliation (retried until it succeeds);
- :class:`~cryptomon.trading.poller.EnginePoller`: the periodic loop (orders, marks, equity,
  reconciliation, funding, daily loss, venue clock);
- :class:`~cryptomon.trading.control.TradingControls`: the API's methods, which the engine
  exposes under the same names (``positions``, ``orders``, ``stats``, ``limits``,
  ``update_limits``, ``place_manual_order``, ``cancel_order``, ``kill_switch``, ``resume``).

What the API may change at runtime lives in the shared
:class:`~cryptomon.trading.runtime.TradingRuntime` (pass the signal generator's). Optional
broker hooks: ``set_listener(callback)`` to push order changes (fills of resting orders) and
``restore(balances, orders)`` for a simulated venue that must start from the persisted state;
``set_forced_listener(callback)`` for the orders the venue places itself (a liquidation, a dated
future's settlement), adopted by :meth:`OrderExecutor.adopt_forced`.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import structlog

from cryptomon.clock import Clock
from cryptomon.errors import RiskRejected
from cryptomon.events import BookTop, Fill, OrderIntent, Signal
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
from cryptomon.trading.journal import EquityJournal, HaltJournal, Journal
from cryptomon.trading.orders import OrderBook, OrderRecord
from cryptomon.trading.poller import EnginePoller
from cryptomon.trading.portfolio import Portfolio
from cryptomon.trading.reconcile import Reconciler
from cryptomon.trading.risk import RiskState
from cryptomon.trading.runtime import TradingRuntime
from cryptomon.trading.startup import StartupRecovery
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
        self.controls = TradingControls(
            context=self.context,
            executor=self.executor,
            protections=self.protection.protections,
            not_acted=self.entries.not_acted,
        )
        # The API's methods are the controls' own (see control.py), under the same names.
        self.positions = self.controls.positions
        self.orders = self.controls.orders
        self.stats = self.controls.stats
        self.limits = self.controls.limits
        self.update_limits = self.controls.update_limits
        self.place_manual_order = self.controls.place_manual_order
        self.cancel_order = self.controls.cancel_order
        self.kill_switch = self.controls.kill_switch
        self.resume = self.controls.resume
        self.funding = FundingSync(context=self.context)
        self.clock_watch = ClockWatch(context=self.context)
        self.recovery = StartupRecovery(
            context=self.context,
            executor=self.executor,
            protection=self.protection,
            reconciler=self.reconciler,
        )
        self.poller = EnginePoller(
            context=self.context,
            executor=self.executor,
            protection=self.protection,
            reconciler=self.reconciler,
            funding=self.funding,
            clock_watch=self.clock_watch,
        )
        self._queue: asyncio.Queue[Signal] = asyncio.Queue()
        self._subs: list[Any] = []
        self.forced_pending = 0  # venue closes told by the broker, not adopted yet
        self._adopted = asyncio.Event()  # set while no forced close waits for its adoption
        self._adopted.set()

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
        # the switch asked to flatten: the process may have stopped before it closed all
        flatten = (
            was_halted
            and isinstance(self.journal, HaltJournal)
            and await self.journal.halt_flatten()
        )
        if was_halted:  # from the start: a fill the reconciliation finds is one while halted
            ctx.set_risk_state(RiskState.HALTED, "halted before the restart (kill switch)")
        grew = await self._restore()
        if isinstance(self.journal, EquityJournal):  # today's start, for daily_loss_limit
            now = ctx.now()
            ctx.day_start_equity = await self.journal.first_equity_since(now - now % 86400)
        await self.broker.start()
        await self.recovery.sweep_restored_dust()
        # armed once the broker is up: the levels are rounded to the market's tick (asked of
        # the venue; before start, unknown: a level off the tick a venue leg could be refused at)
        await self.protection.arm_restored(ctx.portfolio.open_positions(), grew)
        self.protection.adopt_legs(ctx.book.open())
        set_listener = getattr(self.broker, "set_listener", None)
        if callable(set_listener):
            set_listener(self._on_broker_update)
        set_forced = getattr(self.broker, "set_forced_listener", None)
        if callable(set_forced):
            set_forced(self._on_forced_close)
        await self.recovery.first_reconcile()
        self.protection.cancel_orphan_legs()  # a venue leg whose sibling fired while down
        if was_halted:  # the kill switch stays on across restarts until someone resumes
            # the switch's cancels may not all have gone out before the process stopped
            await self.controls.cancel_entries("restart")
        if flatten:  # a flatten asked before the restart ends flat (net of exits working)
            ctx.spawn(self.controls.flatten_when_reconciled("restart"), "trading-flatten-restart")
        self._subs = [
            self.hub.subscribe(Signal, self.on_signal, name="trading-engine.signal"),
            self.hub.subscribe(BookTop, self.protection.on_top, name="trading-engine.top"),
        ]
        ctx.spawn(self._signal_worker(), "trading-signals-worker")
        ctx.spawn(self.poller.run(), "trading-poll")
        log.info(
            "trading.started",
            broker=self.broker.name,
            state=str(ctx.risk_state),
            positions=len(ctx.portfolio.open_positions()),
            open_orders=len(ctx.book.open()),
        )

    async def _restore(self) -> dict[tuple[str, str], list[str]]:
        """Orders and fills from the journal; a simulated venue restarts from them. Returns
        the client order ids whose fills opened or added to each position, oldest first."""
        ctx = self.context
        for stored in await self.journal.open_orders():
            spec = ctx.spec(stored.intent.exchange, stored.intent.symbol)
            record = ctx.book.add(
                OrderRecord(
                    intent=stored.intent,
                    state=stored.state,
                    exchange_order_id=stored.exchange_order_id,
                    inverse=spec is not None and spec.inverse,
                )
            )
            if stored.missing_fills:
                ctx.incomplete.append(record)
        # the fills that opened or added to each position, newest last: its entry's intent
        # (own stop-loss and take-profit) protects it again
        grew: dict[tuple[str, str], list[str]] = {}

        def replay_fill(fill: Fill) -> None:
            key = (fill.exchange, fill.symbol)
            before = ctx.portfolio.amount(*key)
            self.executor.replay_fill(fill)
            after = ctx.portfolio.amount(*key)
            if after == 0 or (before != 0 and (before > 0) != (after > 0)):
                grew.pop(key, None)  # flat, or flipped: a new position from here
            if after != 0 and (abs(after) > abs(before) or key not in grew):
                grew.setdefault(key, []).append(fill.client_order_id)

        await replay_journal(self.journal, replay_fill=replay_fill, sync=self.funding)
        restore = getattr(self.broker, "restore", None)
        if callable(restore):  # a simulated venue restarts from the persisted state
            restore(self._balances(), [(r.intent, r.filled, r.state) for r in ctx.book.open()])
        restore_positions = getattr(self.broker, "restore_positions", None)
        if callable(restore_positions):  # contracts: signed qty and entry, no coins held
            held = [p for p in ctx.portfolio.open_positions() if p.contract is not None]
            restore_positions([(p.exchange, p.symbol, p.amount, p.avg_price) for p in held])
        return grew

    async def stop(self) -> None:
        for sub in self._subs:
            sub.close()
        # every trailed stop not persisted yet, before the store writer (stopped after the
        # engine) drains its durable queue
        self.protection.save_trails(final=True)
        await self.context.stop_tasks()
        await self.broker.stop()
        close = getattr(self.journal, "aclose", None)  # ExitJournal: stop folding
        if close is not None:
            await close()

    def _balances(self) -> dict[str, Decimal]:
        """The simulated venue's balances from the engine's books: the cash in the quote; the
        extra starting balances (``paper.balances``, e.g. the coin of inverse contracts) plus
        the spot coins held and, per settle coin, the contracts' realized PnL, funding and
        fees in it (the cash already holds those of contracts settled in the quote)."""
        portfolio = self.context.portfolio
        out = {portfolio.quote: portfolio.cash}
        for currency, amount in self.context.config.paper.balances.items():
            if currency != portfolio.quote:
                out[currency] = out.get(currency, ZERO) + to_decimal(amount)
        for pos in portfolio.positions.values():
            if pos.contract is not None:
                settle = pos.contract.settle
                if settle != portfolio.quote:
                    out[settle] = out.get(settle, ZERO) + pos.realized_pnl - pos.fees
                continue
            if pos.amount == 0:
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
                await self.handle_signal(sig)
            except RiskRejected:
                pass  # already published as a RiskEvent
            except Exception as exc:
                self.entries.not_acted["failed"] += 1
                log.error("trading.signal_failed", signal_id=sig.id, error=repr(exc))

    async def handle_signal(self, sig: Signal) -> OrderRecord | None:
        """Turn one signal into an order when auto trading, strength and position allow.

        A position the venue has closed itself (liquidation, settlement) whose close is not
        adopted yet is gone: the signal waits for the adoption instead of being judged
        against it (it was taken for a close of that position and dropped)."""
        await self._adopted.wait()
        return await self.entries.handle(sig)

    def _on_broker_update(self, answer: BrokerOrder) -> None:
        record = self.context.book.get(answer.client_order_id)
        if record is not None:
            self.context.spawn(
                self.executor.apply_broker_order(record, answer),
                f"update:{answer.client_order_id}",
            )

    def _on_forced_close(self, intent: OrderIntent, answer: BrokerOrder, reason: str) -> None:
        """The venue closed a position itself (liquidation, settlement): adopt its order."""
        self.forced_pending += 1
        self._adopted.clear()
        self.context.spawn(self._adopt(intent, answer, reason), f"forced:{intent.client_order_id}")

    async def _adopt(self, intent: OrderIntent, answer: BrokerOrder, reason: str) -> None:
        try:
            await self.executor.adopt_forced(intent, answer, reason)
        finally:
            self.forced_pending -= 1
            if self.forced_pending == 0:
                self._adopted.set()

    async def record_equity(self, now: float) -> None:
        """Write one equity snapshot (equity, cash, PnL, exposure) through the journal."""
        await self.poller.record_equity(now)
