"""The order engine: signals -> risk -> orders -> broker -> fills -> positions -> protection.

``start()`` rebuilds positions from the journal's fills, re-arms the protection of open
positions, reconciles with the broker (:mod:`cryptomon.trading.reconcile`) and only then
leaves the ``reducing`` state it starts in; then it follows ``Signal`` and ``BookTop`` events
and polls open orders. ``stop()`` ends its tasks (orders stay at the venue; the next start
reconciles them).

Signals (only with ``auto_trading_enabled`` and ``strength >= min_signal_strength``): a buy
opens a long when flat, closes a short; a sell closes a long, opens a short only with
``allow_short``. Entries are sized from ``risk_percentage`` and the stop distance, capped by
``max_position_size``; every entry gets a stop-loss and take-profit, native when the venue
supports it (``MarketInfo.native_stop_loss``), else emulated here from the book.

API for the web layer (JSON-ready dicts; Decimals as strings):

- ``positions() -> list[dict]``: open positions with avg price, mark, realized/unrealized PnL.
- ``orders(symbol=None, open_only=False, limit=100) -> list[dict]``: newest first.
- ``await place_manual_order(actor=, exchange=, symbol=, side=, amount=, type="market",
  price=None, stop_loss=None, take_profit=None, reduce_only=False, request_id=None) -> dict``:
  risk-checked like every order, audited; raises ``RiskRejected`` (``.reason``, ``.check``)
  or ``ValueError`` on bad input. The same ``request_id`` never places a second order.
- ``await cancel_order(client_order_id, actor) -> dict``; ``LookupError`` when unknown.
- ``await kill_switch(actor, flatten=None) -> dict``: halt, cancel every open order and,
  with ``flatten`` (default ``kill_switch_flatten``), close every position.
- ``await resume(actor) -> str``: back to ``active`` (refused until reconciled).
- ``limits() -> dict`` / ``update_limits(actor, **fields) -> dict``: validated like the
  config (``ConfigError`` naming each bad key), audited.
- ``stats() -> dict``; ``risk_state`` (``RiskState``); ``reconciled`` (bool).

Layers: ``execution.EngineCore`` (state, risk gate, order path, fills; venue views, unknown
orders and cancels in :mod:`cryptomon.trading.settle`) <- ``control.
EngineControls`` (the API above) <- ``guard.GuardedEngine`` (SL/TP, daily loss) <- this
class (lifecycle, signals, polling). Optional broker hooks: ``set_listener(callback)`` to
push order changes (fills of resting orders) and ``restore(balances)`` for a simulated venue
that must start from the persisted state (paper).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import structlog

from cryptomon.errors import RiskRejected, backoff_delays
from cryptomon.events import BookTop, Fill, OrderIntent, OrderState, Signal
from cryptomon.trading.execution import dec
from cryptomon.trading.guard import GuardedEngine
from cryptomon.trading.orders import OrderRecord, client_order_id
from cryptomon.trading.protection import bracket, position_size
from cryptomon.trading.reconcile import reconcile
from cryptomon.trading.risk import RiskState

log = structlog.get_logger()
ZERO = Decimal(0)
S = OrderState
ENTRY_ORIGINS = frozenset({"signal", "manual"})


class TradingEngine(GuardedEngine):
    """See the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._queue: asyncio.Queue[Signal] = asyncio.Queue()
        self._subs: list[Any] = []

    async def start(self) -> None:
        stored = await self.journal.open_orders()
        last_state = getattr(self.journal, "last_risk_state", None)
        was_halted = callable(last_state) and await last_state() == RiskState.HALTED
        for so in stored:
            record = self.book.add(
                OrderRecord(
                    intent=so.intent, state=so.state, exchange_order_id=so.exchange_order_id
                )
            )
            if so.missing_fills:
                self.incomplete.append(record)
        for fill in await self.journal.fills():
            self._replay(fill)
        restore = getattr(self.broker, "restore", None)
        if callable(restore):  # a simulated venue restarts from the persisted state
            restore(self._balances(), [(r.intent, r.filled, r.state) for r in self.book.open()])
        for pos in self.portfolio.open_positions():
            self._arm_default(pos)
        await self.broker.start()
        await self._sweep_restored_dust()
        set_listener = getattr(self.broker, "set_listener", None)
        if callable(set_listener):
            set_listener(self._on_broker_update)
        if self.config.reconcile_on_start:
            try:
                await reconcile(self)
            except Exception as exc:  # the venue is unreachable: keep trying, trade nothing
                reason = f"reconciliation failed, retrying: {exc}"
                log.error("trading.reconcile_failed", error=repr(exc))
                self.state_reason = reason
                self._risk_event("state_change", reason)
                self._spawn(self._reconcile_until_done(), "trading-reconcile")
        else:
            self.reconciled = True
            self.set_risk_state(RiskState.ACTIVE, "reconciliation disabled by config")
        if was_halted:  # the kill switch stays on across restarts until someone resumes
            self.set_risk_state(RiskState.HALTED, "halted before the restart (kill switch)")
        self._subs = [
            self.hub.subscribe(Signal, self.on_signal, name="trading-engine.signal"),
            self.hub.subscribe(BookTop, self.on_top, name="trading-engine.top"),
        ]
        self._spawn(self._signal_worker(), "trading-signals-worker")
        self._spawn(self._poll(), "trading-poll")
        log.info(
            "trading.started",
            broker=self.broker.name,
            state=str(self.risk_state),
            positions=len(self.portfolio.open_positions()),
            open_orders=len(self.book.open()),
        )

    async def _sweep_restored_dust(self) -> None:
        """Replayed positions smaller than the venue's lot (base-currency fees) are dust."""
        for pos in self.portfolio.open_positions():
            try:
                await self.market_info(pos.symbol)
            except Exception as exc:  # the venue is unreachable: swept on the next exit
                log.warning("trading.market_info_failed", symbol=pos.symbol, error=repr(exc))
                continue
            self.sweep_dust(pos.exchange, pos.symbol, pos.mark or pos.avg_price, self._now())
            if pos.amount == 0:
                self.protections.pop((pos.exchange, pos.symbol), None)

    async def _reconcile_until_done(self) -> None:
        delays = backoff_delays(initial=self.config.poll_interval_s, cap=60.0)
        while not self.reconciled:
            await self.clock.sleep(next(delays))
            try:
                await reconcile(self)
            except Exception as exc:
                log.warning("trading.reconcile_failed", error=repr(exc))

    async def stop(self) -> None:
        for sub in self._subs:
            sub.close()
        await self.stop_tasks()
        await self.broker.stop()

    def _replay(self, fill: Fill) -> None:
        key = (fill.exchange, fill.trade_id)
        if key in self._trade_ids:
            return
        self._trade_ids.add(key)
        record = self.book.get(fill.client_order_id)
        if record is not None:
            record.add_fill(fill)
        self.portfolio.apply_fill(fill)

    def _balances(self) -> dict[str, Decimal]:
        out = {self.portfolio.quote: self.portfolio.cash}
        for pos in self.portfolio.open_positions():
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
                log.error("trading.signal_failed", signal_id=sig.id, error=repr(exc))

    async def handle_signal(self, sig: Signal) -> OrderRecord | None:
        """Turn one signal into an order when auto trading, strength and position allow."""
        cfg = self.config
        if not cfg.auto_trading_enabled or sig.strength < cfg.min_signal_strength:
            log.debug(
                "trading.signal_ignored",
                signal_id=sig.id,
                strength=sig.strength,
                auto=cfg.auto_trading_enabled,
            )
            return None
        key = (sig.exchange, sig.symbol)
        if (cfg.exchange is not None and cfg.exchange != sig.exchange) or (
            cfg.symbols and sig.symbol not in cfg.symbols
        ):
            return None  # not a traded market
        pos = self.portfolio.amount(*key)
        if self.book.open(*key):  # an entry or an exit of this market is still working
            return None
        if (pos > 0 and sig.side == "buy") or (pos < 0 and sig.side == "sell"):
            return None
        if pos != 0:  # opposite signal: close the position
            return await self.submit(
                self._exit_intent(key, abs(pos), "signal", ref=sig.id, leg="close", signal=sig)
            )
        if sig.side == "sell" and not cfg.allow_short:
            return None
        mid = self.mid(*key)
        if mid is None:
            return None
        info = await self.market_info(sig.symbol)
        amount = position_size(
            equity=self.portfolio.equity,
            price=mid,
            stop_pct=dec(cfg.stop_loss_percentage),
            risk_pct=dec(cfg.risk_percentage),
            max_notional=min(dec(cfg.max_position_size), dec(cfg.max_symbol_exposure)),
            lot=info.lot_size,
        )
        stop, take = bracket(
            side=sig.side,
            price=mid,
            stop_pct=dec(cfg.stop_loss_percentage),
            take_pct=dec(cfg.take_profit_percentage),
            tick=info.tick_size,
        )
        now = self._now()
        intent = OrderIntent(
            exchange=sig.exchange,
            symbol=sig.symbol,
            ts=now,
            ts_recv=now,
            client_order_id=client_order_id(sig.id, "entry", "signal"),
            side=sig.side,
            type="market",
            amount=amount,
            stop_loss=stop,
            take_profit=take,
            origin="signal",
            signal_id=sig.id,
            anomaly_id=sig.anomaly_id,
        )
        return await self.submit(intent)

    def _on_broker_update(self, bo: Any) -> None:
        record = self.book.get(bo.client_order_id)
        if record is not None:
            self._spawn(self.apply_broker_order(record, bo), f"update:{bo.client_order_id}")

    async def _poll(self) -> None:
        """Poll open orders, publish marks, watch the daily loss limit."""
        last_marks = 0.0
        last_equity = 0.0
        last_reconcile = self._now()
        while True:
            await self.clock.sleep(self.config.poll_interval_s)
            for record in self.book.open():
                if record.state == S.UNKNOWN:
                    self.settle_later(record)
                    continue
                i = record.intent
                try:
                    bo = await self.broker.fetch_order(i.symbol, i.client_order_id)
                except Exception as exc:
                    log.warning(
                        "trading.poll_failed", client_order_id=i.client_order_id, error=repr(exc)
                    )
                    continue
                if bo is not None:
                    await self.apply_broker_order(record, bo)
            now = self._now()
            if now - last_marks >= self.config.mark_interval_s:
                last_marks = now
                for pos in self.portfolio.open_positions():
                    self.publish_position(pos)
                self.portfolio.snapshot(now)
            if now - last_equity >= self.config.equity_snapshot_interval_s:
                last_equity = now
                await self.record_equity(now)
            if now - last_reconcile >= self.config.reconcile_interval_s:
                last_reconcile = now
                try:
                    await reconcile(self, periodic=True)
                except Exception as exc:
                    log.warning("trading.reconcile_failed", error=repr(exc))
            self.check_daily_loss()

    async def record_equity(self, now: float) -> None:
        """Write one equity snapshot (equity, cash, PnL, exposure) through the journal."""
        pf = self.portfolio
        positions = pf.positions.values()
        try:
            await self.journal.record_equity(
                ts=now,
                equity=pf.equity,
                cash=pf.cash,
                unrealized_pnl=sum((p.unrealized_pnl for p in positions), ZERO),
                realized_pnl=sum((p.realized_pnl for p in positions), ZERO),
                exposure=pf.exposure(),
            )
        except Exception as exc:  # a snapshot is not worth stopping the engine for
            log.warning("trading.equity_snapshot_failed", error=repr(exc))
