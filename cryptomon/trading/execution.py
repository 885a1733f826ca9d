"""Order execution core of the engine: state, risk gate, the order path, fills.

:meth:`EngineCore.submit` runs the pure risk check, writes the intent through
``journal.record_intent`` (committed) and publishes it, then calls ``broker.place_order``.
A timeout, 5xx, 429 or dropped response makes the order ``unknown``; it is settled with
``broker.fetch_order`` by client order id (:mod:`cryptomon.trading.settle`), never resent.
Fills count once per (exchange, trade id) across the whole run and the journal's history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Coroutine
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn

import structlog

from cryptomon.clock import Clock
from cryptomon.errors import RiskRejected, TemporaryError
from cryptomon.events import (
    AuditEntry,
    BookTop,
    Fill,
    OrderIntent,
    OrderState,
    RiskEvent,
    Signal,
)
from cryptomon.hub import Hub
from cryptomon.market.state import MarketState
from cryptomon.trading.brokers.base import (
    Broker,
    BrokerOrder,
    MarketInfo,
    OrderOutcomeUnknown,
    OrderRejectedError,
)
from cryptomon.trading.journal import Journal
from cryptomon.trading.orders import IllegalTransition, OrderBook, OrderRecord
from cryptomon.trading.portfolio import Portfolio, Position
from cryptomon.trading.protection import Protection
from cryptomon.trading.risk import Limits, MarketView, PortfolioView, RiskState, check
from cryptomon.trading.settle import apply_broker_order, cancel, settle

if TYPE_CHECKING:
    from cryptomon.config import TradingConfig

log = structlog.get_logger()
ZERO = Decimal(0)
S = OrderState
_Key = tuple[str, str]


def dec(x: float) -> Decimal:
    return Decimal(str(x))


class EngineCore:
    """State and the order path; :class:`TradingEngine` adds signals, protection and the API."""

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
        quote_currency: str | None = None,
        starting_cash: Decimal | None = None,
    ) -> None:
        self.config = config
        self.hub = hub
        self.clock = clock
        self.broker = broker
        self.market = market
        self.journal = journal
        self._limits = Limits.from_config(config)
        quote = quote_currency or config.paper.quote_currency
        cash = starting_cash if starting_cash is not None else dec(config.paper.starting_balance)
        self.portfolio = Portfolio(quote=quote, cash=cash)
        self.book = OrderBook()
        self.risk_state = RiskState.REDUCING
        self.state_reason = "starting: not reconciled yet"
        self.reconciled = False
        self._lock = asyncio.Lock()
        self._order_times: deque[float] = deque()
        self._trade_ids: set[tuple[str, str]] = set()
        self._infos: dict[str, MarketInfo] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._settling: set[str] = set()
        self.protections: dict[_Key, Protection] = {}
        self.last_mismatches: set[str] = set()
        self.incomplete: list[OrderRecord] = []  # terminal orders whose fills were not stored

    # ------------------------------------------------------------------ helpers

    def _now(self) -> float:
        return self.clock.time()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("trading.task_failed", task=task.get_name(), error=repr(task.exception()))

    def _risk_event(
        self,
        kind: Any,
        reason: str,
        *,
        exchange: str = "",
        symbol: str = "",
        client_order_id: str | None = None,
        check_name: str = "",
    ) -> None:
        now = self._now()
        self.hub.publish(
            RiskEvent(
                exchange=exchange,
                symbol=symbol,
                ts=now,
                ts_recv=now,
                kind=kind,
                state=str(self.risk_state),
                reason=reason,
                client_order_id=client_order_id,
                check=check_name,
            )
        )

    def set_risk_state(self, state: RiskState, reason: str, *, kind: Any = "state_change") -> None:
        """Change the risk state; every change is a RiskEvent."""
        if state == self.risk_state:
            return
        log.warning("trading.risk_state", old=str(self.risk_state), new=str(state), reason=reason)
        self.risk_state = state
        self.state_reason = reason
        self._risk_event(kind, reason)

    def audit(self, actor: str, action: str, payload: dict[str, Any]) -> None:
        now = self._now()
        self.hub.publish(
            AuditEntry(
                exchange=str(payload.get("exchange", "")),
                symbol=str(payload.get("symbol", "")),
                ts=now,
                ts_recv=now,
                actor=actor,
                action=action,
                payload=json.dumps(payload, default=str, sort_keys=True),
            )
        )

    async def market_info(self, symbol: str) -> MarketInfo:
        info = self._infos.get(symbol)
        if info is None:
            info = self._infos[symbol] = await self.broker.market(symbol)
        return info

    def mid(self, exchange: str, symbol: str) -> Decimal | None:
        m = self.market.mid(exchange, symbol)
        return dec(m) if m is not None and m > 0 else None

    def orders_last_minute(self) -> int:
        horizon = self.clock.monotonic() - 60.0
        while self._order_times and self._order_times[0] <= horizon:
            self._order_times.popleft()
        return len(self._order_times)

    def portfolio_view(self) -> PortfolioView:
        positions = {k: p.amount for k, p in self.portfolio.positions.items() if p.amount != 0}
        pending: dict[_Key, Decimal] = {}
        for rec in self.book.open():
            i = rec.intent
            if i.reduce_only:
                continue
            key = (i.exchange, i.symbol)
            rem = rec.remaining if i.side == "buy" else -rec.remaining
            pending[key] = pending.get(key, ZERO) + rem
        marks: dict[_Key, Decimal] = {}
        for key in set(positions) | set(pending):
            m = self.mid(*key)
            pos = self.portfolio.positions.get(key)
            marks[key] = m if m is not None else (pos.avg_price if pos is not None else ZERO)
        now = self._now()
        return PortfolioView(
            equity=self.portfolio.equity,
            daily_pnl=self.portfolio.daily_pnl(now),
            positions=positions,
            pending=pending,
            marks=marks,
            orders_last_minute=self.orders_last_minute(),
        )

    # ------------------------------------------------------------------ order path

    async def submit(self, intent: OrderIntent) -> OrderRecord:
        """Risk check, write the intent, send it. Raises RiskRejected on a rejection."""
        async with self._lock:
            existing = self.book.get(intent.client_order_id)
            if existing is not None:
                return existing
            if not self.reconciled:
                self._reject(intent, "not reconciled with the broker yet", "not_reconciled")
            try:
                info: MarketInfo | None = await self.market_info(intent.symbol)
            except Exception as exc:  # venue metadata unreachable: do not trade blind
                self._reject(intent, f"market info unavailable: {exc}", "market_info")
            mv = MarketView(
                mid=self.mid(intent.exchange, intent.symbol),
                stale=self.market.is_stale(intent.exchange, intent.symbol),
                info=info,
            )
            decision = check(intent, self.portfolio_view(), mv, self._limits, self.risk_state)
            if not decision.approved:
                self._reject(intent, decision.reason, decision.check)
            record = self.book.add(OrderRecord(intent=intent, updated=self._now()))
            try:
                await self.journal.record_intent(intent)
            except Exception as exc:
                record.transition(S.REJECTED, reason=f"intent not persisted: {exc}", ts=self._now())
                self._publish_update(record)
                raise TemporaryError(
                    f"order {intent.client_order_id} not sent: the intent "
                    f"could not be written ({exc})"
                ) from exc
            self.hub.publish(intent)
            self._publish_update(record)
            self._order_times.append(self.clock.monotonic())
            log.info(
                "trading.order_send",
                client_order_id=intent.client_order_id,
                symbol=intent.symbol,
                side=intent.side,
                type=intent.type,
                amount=str(intent.amount),
                origin=intent.origin,
            )
            record.sent = self._now()
            try:
                bo = await asyncio.wait_for(
                    self.broker.place_order(intent), self.config.order_timeout_s
                )
            except OrderRejectedError as exc:
                self._move(record, S.REJECTED, exc.reason)
                return record
            except OrderOutcomeUnknown as exc:
                self._unknown(record, str(exc), exc.retry_after_s)
                return record
            except Exception as exc:  # timeout, network, a broker bug: it may have been sent
                self._unknown(record, f"placement failed: {exc!r}", None)
                return record
        await self.apply_broker_order(record, bo)
        return record

    def _reject(self, intent: OrderIntent, reason: str, check_name: str) -> NoReturn:
        log.info(
            "trading.risk_rejected",
            client_order_id=intent.client_order_id,
            check=check_name,
            reason=reason,
        )
        self._risk_event(
            "rejected",
            reason,
            exchange=intent.exchange,
            symbol=intent.symbol,
            client_order_id=intent.client_order_id,
            check_name=check_name,
        )
        raise RiskRejected(reason, check=check_name)

    def _publish_update(self, record: OrderRecord) -> None:
        now = self._now()
        self.hub.publish(record.update_event(now, now))

    def _move(self, record: OrderRecord, state: OrderState, reason: str = "") -> bool:
        try:
            changed = record.transition(state, reason=reason, ts=self._now())
        except IllegalTransition as exc:
            log.warning("trading.illegal_transition", error=str(exc))
            return False
        if changed:
            self._publish_update(record)
            self.on_order_state(record)
        return changed

    def _unknown(self, record: OrderRecord, reason: str, retry_after: float | None) -> None:
        log.warning("trading.order_unknown", client_order_id=record.client_order_id, reason=reason)
        self._move(record, S.UNKNOWN, reason)
        self.settle_later(record, retry_after)

    def settle_later(self, record: OrderRecord, retry_after: float | None = None) -> None:
        if record.client_order_id in self._settling:
            return
        self._settling.add(record.client_order_id)
        self._spawn(self._settle(record, retry_after), f"settle:{record.client_order_id}")

    async def _settle(self, record: OrderRecord, retry_after: float | None) -> None:
        try:
            await settle(self, record, retry_after)
        finally:
            self._settling.discard(record.client_order_id)

    async def apply_broker_order(self, record: OrderRecord, bo: BrokerOrder) -> None:
        """Bring ``record`` in line with the venue's view: fills first, then the state."""
        await apply_broker_order(self, record, bo)

    def apply_fill(self, record: OrderRecord | None, fill: Fill) -> bool:
        """Count ``fill`` once: order, portfolio, Fill and PositionUpdate events."""
        key = (fill.exchange, fill.trade_id)
        if key in self._trade_ids:
            return False
        self._trade_ids.add(key)
        if record is not None:
            record.add_fill(fill)
        self.portfolio.apply_fill(fill)
        self.sweep_dust(fill.exchange, fill.symbol, fill.price, fill.ts)
        pos = self.portfolio.position(fill.exchange, fill.symbol)
        m = self.mid(fill.exchange, fill.symbol)
        if m is not None:
            pos.mark = m
        self.hub.publish(fill)
        self.publish_position(pos)
        log.info(
            "trading.fill",
            client_order_id=fill.client_order_id,
            side=fill.side,
            amount=str(fill.amount),
            price=str(fill.price),
            fee=str(fill.fee),
            position=str(pos.amount),
        )
        self.on_fill(record, fill, pos)
        return True

    def sweep_dust(self, exchange: str, symbol: str, price: Decimal, ts: float) -> None:
        """A position left smaller than the venue's lot (a base-currency fee) cannot be
        sold: it becomes dust so the position closes (see ``Portfolio.sweep_dust``)."""
        info = self._infos.get(symbol)
        if info is not None and info.lot_size > 0:
            self.portfolio.sweep_dust(exchange, symbol, info.lot_size, price, ts)

    def publish_position(self, pos: Position) -> None:
        now = self._now()
        self.hub.publish(pos.event(now, now))

    # hooks for the subclass
    def on_fill(self, record: OrderRecord | None, fill: Fill, pos: Position) -> None: ...

    def on_order_state(self, record: OrderRecord) -> None: ...

    def on_signal(self, signal: Signal) -> None: ...

    def on_top(self, top: BookTop) -> None: ...

    # ------------------------------------------------------------------ cancel

    async def cancel(self, record: OrderRecord) -> OrderRecord:
        return await cancel(self, record)

    async def stop_tasks(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
