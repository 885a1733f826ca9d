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
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any, Literal

import structlog

from cryptomon.errors import RiskRejected, backoff_delays
from cryptomon.events import BookTop, Fill, OrderIntent, OrderState, Signal
from cryptomon.trading.control import EngineControls, fields_of
from cryptomon.trading.execution import dec
from cryptomon.trading.orders import OrderRecord, client_order_id
from cryptomon.trading.portfolio import Position
from cryptomon.trading.protection import Protection, bracket, position_size
from cryptomon.trading.reconcile import reconcile
from cryptomon.trading.risk import RiskState

log = structlog.get_logger()
ZERO = Decimal(0)
S = OrderState
ENTRY_ORIGINS = frozenset({"signal", "manual"})


class TradingEngine(EngineControls):
    """See the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._queue: asyncio.Queue[Signal] = asyncio.Queue()
        self._subs: list[Any] = []
        self._daily_day: int | None = None

    async def start(self) -> None:
        stored = await self.journal.open_orders()
        for so in stored:
            self.book.add(
                OrderRecord(
                    intent=so.intent, state=so.state, exchange_order_id=so.exchange_order_id
                )
            )
        for fill in await self.journal.fills():
            self._replay(fill)
        restore = getattr(self.broker, "restore", None)
        if callable(restore):
            restore(self._balances())
        for pos in self.portfolio.open_positions():
            self._arm_default(pos)
        await self.broker.start()
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

    def check_daily_loss(self) -> None:
        now = self._now()
        pnl = self.portfolio.daily_pnl(now)
        limit = self._limits.daily_loss_limit
        if pnl <= -limit and self.risk_state == RiskState.ACTIVE:
            self.set_risk_state(
                RiskState.REDUCING, f"daily loss {pnl} reached the limit -{limit}", kind="limit"
            )
            self._daily_day = int(now // 86400)
        elif (
            self.risk_state == RiskState.REDUCING
            and self._daily_day is not None
            and int(now // 86400) != self._daily_day
        ):
            self._daily_day = None
            self.set_risk_state(RiskState.ACTIVE, "new UTC day: daily loss limit reset")

    # ------------------------------------------------------------------ protection

    def on_fill(self, record: OrderRecord | None, fill: Fill, pos: Position) -> None:
        key = (fill.exchange, fill.symbol)
        if pos.amount == 0:
            prot = self.protections.pop(key, None)
            if prot is not None and prot.native:
                for coid in (prot.stop_order, prot.take_order):
                    other = self.book.get(coid) if coid else None
                    if other is not None and other.is_open:
                        self._spawn(self.cancel(other), f"cancel-leg:{coid}")
            self.check_daily_loss()
            return
        if (
            record is not None
            and record.intent.origin in ENTRY_ORIGINS
            and not record.intent.reduce_only
        ):
            self._arm(pos, record.intent)
        self.check_daily_loss()

    def on_order_state(self, record: OrderRecord) -> None:
        i = record.intent
        prot = self.protections.get((i.exchange, i.symbol))
        if (
            prot is not None
            and prot.exiting
            and i.origin in ("stop_loss", "take_profit")
            and record.state.is_terminal
            and not prot.native
            and self.portfolio.amount(i.exchange, i.symbol) != 0
        ):
            prot.exiting = False  # the exit did not close it: trigger again on the book
            prot.attempt += 1
        if (
            prot is not None
            and not prot.native
            and i.origin in ENTRY_ORIGINS
            and record.state == S.FILLED
            and self._infos.get(i.symbol) is not None
            and self._infos[i.symbol].native_stop_loss
        ):
            self._spawn(self._place_native(prot), f"native-legs:{i.client_order_id}")
        if (
            prot is not None
            and prot.native
            and record.client_order_id in (prot.stop_order, prot.take_order)
            and record.state in (S.CANCELED, S.REJECTED, S.EXPIRED)
            and self.portfolio.amount(i.exchange, i.symbol) != 0
        ):
            prot.native = False  # a venue leg is gone: the engine watches the book again
            log.warning(
                "trading.native_leg_lost",
                client_order_id=record.client_order_id,
                state=str(record.state),
                symbol=i.symbol,
            )

    def _arm(self, pos: Position, intent: OrderIntent) -> None:
        cfg = self.config
        long = pos.amount > 0
        stop, take = intent.stop_loss, intent.take_profit
        if stop is None or take is None:
            tick = self._infos[pos.symbol].tick_size if pos.symbol in self._infos else ZERO
            s2, t2 = bracket(
                side="buy" if long else "sell",
                price=pos.avg_price,
                stop_pct=dec(cfg.stop_loss_percentage),
                take_pct=dec(cfg.take_profit_percentage),
                tick=tick,
            )
            stop, take = stop or s2, take or t2
        trail = dec(cfg.trailing_stop_percentage) if cfg.trailing_stop_percentage else None
        self.protections[(pos.exchange, pos.symbol)] = Protection(
            exchange=pos.exchange,
            symbol=pos.symbol,
            long=long,
            stop=stop,
            take=take,
            entry_id=intent.client_order_id,
            trail_pct=trail,
            best=pos.avg_price,
        )

    def _arm_default(self, pos: Position) -> None:
        now = self._now()
        ref = f"restart:{pos.exchange}:{pos.symbol}:{pos.opened}"
        intent = OrderIntent(
            exchange=pos.exchange,
            symbol=pos.symbol,
            ts=now,
            ts_recv=now,
            client_order_id=client_order_id(ref, "entry", "reconcile"),
            side="buy" if pos.amount > 0 else "sell",
            type="market",
            amount=abs(pos.amount),
            origin="reconcile",
        )
        self._arm(pos, intent)

    async def _place_native(self, prot: Protection) -> None:
        """Venue-side stop-loss and take-profit legs (reduce-only) for a filled entry."""
        key = (prot.exchange, prot.symbol)
        amount = abs(self.portfolio.amount(*key))
        prot.native = True
        legs: list[tuple[Literal["stop_loss", "take_profit"], Decimal | None]] = [
            ("stop_loss", prot.stop),
            ("take_profit", prot.take),
        ]
        for origin, price in legs:
            if price is None:
                continue
            base = self._exit_intent(key, amount, origin, ref=prot.entry_id, leg=origin)
            intent = OrderIntent(
                **{
                    **fields_of(base),
                    "type": "stop_market" if origin == "stop_loss" else "take_profit",
                    "stop_price": price,
                }
            )
            try:
                rec = await self.submit(intent)
            except RiskRejected:
                prot.native = False  # fall back to emulation
                continue
            if origin == "stop_loss":
                prot.stop_order = rec.client_order_id
            else:
                prot.take_order = rec.client_order_id

    def on_top(self, top: BookTop) -> None:
        key = (top.exchange, top.symbol)
        pos = self.portfolio.positions.get(key)
        if pos is None or pos.amount == 0:
            return
        if top.bid > 0 and top.ask > 0:
            pos.mark = dec((top.bid + top.ask) / 2)
        prot = self.protections.get(key)
        if prot is None or prot.exiting or top.bid <= 0 or top.ask <= 0:
            return
        origin = prot.trigger(dec(top.bid), dec(top.ask))
        if origin is not None:
            prot.exiting = True
            log.info(
                "trading.protection_triggered",
                symbol=top.symbol,
                origin=origin,
                bid=top.bid,
                ask=top.ask,
                stop=str(prot.stop),
                take=str(prot.take),
            )
            self._spawn(self._exit(prot, origin), f"exit:{top.symbol}")

    async def _exit(self, prot: Protection, origin: Any) -> None:
        key = (prot.exchange, prot.symbol)
        amount = abs(self.portfolio.amount(*key))
        if amount == 0:
            return
        intent = self._exit_intent(
            key, amount, origin, ref=prot.entry_id, leg=f"{origin}:{prot.attempt}"
        )
        try:
            await self.submit(intent)
        except Exception as exc:
            log.warning("trading.exit_failed", symbol=prot.symbol, error=repr(exc))
            prot.exiting = False
            prot.attempt += 1
