"""The order path: risk gate, write-before-send, placement, venue updates, fills.

:meth:`OrderExecutor.submit` runs the pure risk check, writes the intent through
``journal.record_intent`` (committed) and publishes it, then calls ``broker.place_order``.
A timeout, 5xx, 429 or dropped response makes the order ``unknown``; it is settled with
``broker.fetch_order`` by client order id (:mod:`cryptomon.trading.settle`), never resent.
Fills count once per (exchange, trade id) across the whole run and the journal's history.
An :class:`OrderObserver` (the protection manager) hears of every fill and state change.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import replace
from decimal import Decimal
from typing import Any, NoReturn, Protocol

import structlog

from cryptomon.errors import RiskRejected, TemporaryError
from cryptomon.events import Fill, OrderIntent, OrderState, Side, Signal
from cryptomon.log import info_enabled
from cryptomon.trading.brokers.base import (
    BrokerOrder,
    MarketInfo,
    OrderOutcomeUnknown,
    OrderRejectedError,
    is_protective,
    urgent,
)
from cryptomon.trading.context import EngineContext
from cryptomon.trading.deadline import within
from cryptomon.trading.futures import account_value
from cryptomon.trading.orders import IllegalTransition, OrderRecord, client_order_id
from cryptomon.trading.portfolio import Position
from cryptomon.trading.protection import round_down
from cryptomon.trading.risk import MarketView, PortfolioView, RiskState, check
from cryptomon.trading.settle import (
    apply_venue_view,
    cancel_at_venue,
    cancel_if_requested,
    settle_unknown,
)

log = structlog.get_logger()
ZERO = Decimal(0)
MarketKey = tuple[str, str]
KILL_EXIT_RETRIES = 3
"""How many times a kill switch exit that ended without closing its position is sent again."""


class OrderObserver(Protocol):
    """Told of every counted fill and every order state change."""

    def on_fill(self, record: OrderRecord | None, fill: Fill, pos: Position) -> None: ...

    def on_order_state(self, record: OrderRecord) -> None: ...


class OrderExecutor:
    """Submits orders, settles unknown ones, applies the venue's views and fills."""

    def __init__(self, *, context: EngineContext) -> None:
        self.context = context
        self._lock = asyncio.Lock()
        self._order_times: deque[float] = deque()
        self._trade_ids: set[tuple[str, str]] = set()
        self._settling: set[str] = set()
        # orders on their way to the venue (written, sent, the answer not applied yet): the
        # placement's answer decides their state, a lookup meanwhile only races the POST
        self._placing: set[str] = set()
        self._observers: list[OrderObserver] = []
        self._closing = asyncio.Lock()  # one halted close sized at a time (net of the others)
        self._kill_retries: dict[MarketKey, int] = {}  # kill switch exits sent again

    def observe(self, observer: OrderObserver) -> None:
        self._observers.append(observer)

    # ------------------------------------------------------------------ views

    def orders_last_minute(self) -> int:
        horizon = self.context.clock.monotonic() - 60.0
        while self._order_times and self._order_times[0] <= horizon:
            self._order_times.popleft()
        return len(self._order_times)

    def portfolio_view(self) -> PortfolioView:
        ctx = self.context
        positions = {k: p.amount for k, p in ctx.portfolio.positions.items() if p.amount != 0}
        pending: dict[MarketKey, Decimal] = {}
        exiting: dict[MarketKey, Decimal] = {}
        for rec in ctx.book.open():
            intent = rec.intent
            if intent.reduce_only and intent.type != "market":
                continue  # a resting stop or take-profit leg: not a close on its way
            key = (intent.exchange, intent.symbol)
            remaining = rec.remaining if intent.side == "buy" else -rec.remaining
            into = exiting if intent.reduce_only else pending
            into[key] = into.get(key, ZERO) + remaining
        marks: dict[MarketKey, Decimal] = {}  # the account-currency value of one venue unit
        account = ctx.portfolio.quote
        for key in set(positions) | set(pending):
            mid = ctx.mid(*key)
            pos = ctx.portfolio.positions.get(key)
            price = mid if mid is not None else (pos.avg_price if pos is not None else ZERO)
            spec = ctx.spec(*key)
            marks[key] = (
                account_value(spec, Decimal(1), price, account) if spec and price else price
            )
        entries = {
            k: p.avg_price
            for k, p in ctx.portfolio.positions.items()
            if p.contract is not None and p.amount != 0
        }
        equity = ctx.portfolio.equity
        return PortfolioView(
            equity=equity,
            account=account,
            entries=entries,
            daily_pnl=ctx.portfolio.daily_pnl(ctx.now(), equity),
            positions=positions,
            pending=pending,
            marks=marks,
            orders_last_minute=self.orders_last_minute(),
            exiting=exiting,
        )

    def exit_intent(
        self,
        key: MarketKey,
        amount: Decimal,
        origin: Any,
        *,
        ref: str,
        leg: str,
        signal: Signal | None = None,
    ) -> OrderIntent:
        """A reduce-only market order closing ``amount`` of the position (lot-rounded)."""
        ctx = self.context
        side: Side = "sell" if ctx.portfolio.amount(*key) > 0 else "buy"
        info = ctx.market_infos.get(key[1])
        if info is not None and info.lot_size > 0 and amount % info.lot_size != 0:
            amount = round_down(amount, info.lot_size)
        now = ctx.now()
        return OrderIntent(
            exchange=key[0],
            symbol=key[1],
            ts=now,
            ts_recv=now,
            client_order_id=client_order_id(ref, leg, origin),
            side=side,
            type="market",
            amount=amount,
            reduce_only=True,
            origin=origin,
            signal_id=signal.id if signal else None,
            anomaly_id=signal.anomaly_id if signal else None,
        )

    async def close_exposure(
        self, key: MarketKey, *, ref: str, leg: str, at_most: Decimal | None = None
    ) -> OrderRecord | None:
        """A reduce-only market exit (origin ``kill_switch``) of the position net of the
        closes already working, at most ``at_most``; None when nothing is left to close (an
        exit on its way covers it). The kill switch's flatten and the close of a fill that
        landed while halted size their exits here one at a time, so neither sells what the
        other already sells."""
        async with self._closing:
            view = self.portfolio_view()
            held = view.positions.get(key, ZERO)
            net = held + view.exiting.get(key, ZERO)
            if held == 0 or net == 0 or (net > 0) != (held > 0):
                return None
            amount = abs(net) if at_most is None else min(abs(net), at_most)
            intent = self.exit_intent(key, amount, "kill_switch", ref=ref, leg=leg)
            return await self.submit(intent)  # less than a lot: refused, naming the amount

    def _filled_while_halted(self, record: OrderRecord, fill: Fill, pos: Position) -> None:
        """An entry that filled while trading is halted (its placement's outcome was unknown
        when the kill switch canceled it, and the venue took it late; or it was still at the
        venue across a restart): reported as a ``kill_switch`` risk event and the exposure it
        added closed at once by a reduce-only market exit."""
        held = pos.amount if fill.side == "buy" else -pos.amount
        added = min(fill.amount, max(held, ZERO))
        if added <= 0:  # it reduced a position: nothing opened
            return
        ctx = self.context
        reason = (
            f"{fill.side} {fill.amount} of {record.client_order_id} filled after trading was "
            f"halted ({ctx.state_reason}): closing the {added} it opened"
        )
        log.error(
            "trading.fill_while_halted",
            client_order_id=record.client_order_id,
            trade_id=fill.trade_id,
            amount=str(fill.amount),
            added=str(added),
        )
        ctx.risk_event(
            "kill_switch",
            reason,
            exchange=fill.exchange,
            symbol=fill.symbol,
            client_order_id=record.client_order_id,
            check_name="fill_while_halted",
        )
        key = (fill.exchange, fill.symbol)
        ref = f"halted-fill:{fill.exchange}:{fill.trade_id}"
        ctx.spawn(
            self._close_when_reconciled(key, ref=ref, at_most=added),
            f"close-halted-fill:{fill.trade_id}",
        )

    async def _close_when_reconciled(
        self, key: MarketKey, *, ref: str, at_most: Decimal | None = None
    ) -> None:
        """:meth:`close_exposure` once the engine is reconciled (a fill found by the startup
        reconciliation of a halted engine: no order goes out before it has finished)."""
        ctx = self.context
        while not ctx.reconciled:
            await ctx.clock.sleep(ctx.config.poll_interval_s)
        await self.close_exposure(key, ref=ref, leg=f"{key[0]}:{key[1]}", at_most=at_most)

    # ------------------------------------------------------------------ order path

    async def submit(self, intent: OrderIntent) -> OrderRecord:
        """Risk check, write the intent, send it. Raises RiskRejected on a rejection."""
        async with self._lock:
            existing = self.context.book.get(intent.client_order_id)
            if existing is not None:
                return existing
            await self._risk_gate(intent)
            coid = intent.client_order_id
            self._placing.add(coid)
            try:
                record = await self._record(intent)
                answer = await self._place(record)
            except BaseException:
                self._placing.discard(coid)
                raise
        try:
            if answer is not None:
                await self.apply_broker_order(record, answer)
        finally:
            self._placing.discard(coid)
        return record

    def placing(self, record: OrderRecord) -> bool:
        """True while ``record``'s placement is on its way (its answer not applied yet)."""
        return record.client_order_id in self._placing

    async def placements_done(self) -> None:
        """Wait until no placement is on its way: every submit holds the lock while it sends,
        and the fills its answer carries are counted as the lock is handed over."""
        async with self._lock:
            pass

    async def _risk_gate(self, intent: OrderIntent) -> None:
        ctx = self.context
        if not ctx.reconciled:
            self._reject(intent, "not reconciled with the broker yet", "not_reconciled")
        try:
            info: MarketInfo | None = await ctx.market_info(intent.symbol)
        except Exception as exc:  # venue metadata unreachable: do not trade blind
            why = exc.reason if isinstance(exc, OrderRejectedError) else exc  # no "order  rejected"
            self._reject(intent, f"market info unavailable: {why}", "market_info")
        view = MarketView(
            mid=ctx.mid(intent.exchange, intent.symbol),
            stale=ctx.market.is_stale(intent.exchange, intent.symbol),
            info=info,
            contract=ctx.contract_terms(intent.exchange, intent.symbol),
            spec_known=ctx.market.spec_known(intent.exchange, intent.symbol),
            spec=ctx.spec(intent.exchange, intent.symbol),
            delisted=ctx.market.is_delisted(intent.exchange, intent.symbol),
            unmanaged=ctx.unmanaged.get(intent.symbol, ""),
        )
        limits = ctx.runtime.limits
        decision = check(intent, self.portfolio_view(), view, limits, ctx.risk_state)
        if not decision.approved:
            self._reject(intent, decision.reason, decision.check)

    async def _record(self, intent: OrderIntent) -> OrderRecord:
        """Add to the book and write the intent (committed) before anything is sent."""
        ctx = self.context
        spec = ctx.spec(intent.exchange, intent.symbol)
        inverse = spec is not None and spec.inverse
        record = ctx.book.add(OrderRecord(intent=intent, updated=ctx.now(), inverse=inverse))
        try:
            await ctx.journal.record_intent(intent)
        except Exception as exc:
            record.transition(
                OrderState.REJECTED, reason=f"intent not persisted: {exc}", ts=ctx.now()
            )
            ctx.hub.publish(intent)  # the stored rejection keeps its true origin
            self.publish_update(record)
            raise TemporaryError(
                f"order {intent.client_order_id} not sent: the intent could not be written ({exc})"
            ) from exc
        ctx.hub.publish(intent)
        self.publish_update(record)
        return record

    async def _place(self, record: OrderRecord) -> BrokerOrder | None:
        """Send the order; None when its outcome is already settled or unknown."""
        ctx = self.context
        intent = record.intent
        if record.cancel_requested:  # canceled (the kill switch) while its intent was written
            self.move(record, OrderState.CANCELED, "canceled before it was sent")
            return None
        self._order_times.append(ctx.clock.monotonic())
        if info_enabled():  # a filtered line still costs a logger bind per order
            log.info(
                "trading.order_send",
                client_order_id=intent.client_order_id,
                symbol=intent.symbol,
                side=intent.side,
                type=intent.type,
                amount=str(intent.amount),
                origin=intent.origin,
            )
        record.sent = ctx.now()
        try:
            # in this task, not one of its own (wait_for on 3.11): the placement takes no
            # extra loop turns; the timeout is armed once it waits (deadline.py): a venue
            # that answers at once (the paper broker) needs no timer
            # an exit's requests go ahead of the broker's paced reads (brokers.base.URGENT)
            with urgent(is_protective(intent)):
                return await within(ctx.broker.place_order(intent), ctx.config.order_timeout_s)
        except OrderRejectedError as exc:
            self.move(record, OrderState.REJECTED, exc.reason)
        except OrderOutcomeUnknown as exc:
            self._unknown(record, str(exc), exc.retry_after_s)
        except Exception as exc:  # timeout, network, a broker bug: it may have been sent
            self._unknown(record, f"placement failed: {exc!r}", None)
        return None

    def _reject(self, intent: OrderIntent, reason: str, check_name: str) -> NoReturn:
        if info_enabled():
            log.info(
                "trading.risk_rejected",
                client_order_id=intent.client_order_id,
                check=check_name,
                reason=reason,
            )
        self.context.risk_event(
            "rejected",
            reason,
            exchange=intent.exchange,
            symbol=intent.symbol,
            client_order_id=intent.client_order_id,
            check_name=check_name,
        )
        raise RiskRejected(reason, check=check_name)

    def publish_update(self, record: OrderRecord) -> None:
        now = self.context.now()
        self.context.hub.publish(record.update_event(now, now))

    def move(self, record: OrderRecord, state: OrderState, reason: str = "") -> bool:
        """Transition ``record`` (an illegal one is logged and ignored); publish the change."""
        try:
            changed = record.transition(state, reason=reason, ts=self.context.now())
        except IllegalTransition as exc:
            log.warning("trading.illegal_transition", error=str(exc))
            return False
        if changed:
            self.publish_update(record)
            for observer in self._observers:
                observer.on_order_state(record)
            if record.intent.origin == "kill_switch" and record.state.is_terminal:
                self._kill_exit_ended(record)
        return changed

    def _kill_exit_ended(self, record: OrderRecord) -> None:
        """A kill switch exit (the flatten's, or the close of a fill while halted) ended
        without closing all it was sent for (never at the venue: the process stopped between
        writing and sending it; refused; expired) while trading is still halted and the
        position open: closed again, at most :data:`KILL_EXIT_RETRIES` times per position."""
        ctx = self.context
        intent = record.intent
        key = (intent.exchange, intent.symbol)
        if (
            ctx.risk_state != RiskState.HALTED
            or record.filled >= intent.amount
            or ctx.portfolio.amount(*key) == 0
        ):
            return
        tries = self._kill_retries.get(key, 0)
        if tries >= KILL_EXIT_RETRIES:
            log.error(
                "trading.kill_exit_given_up",
                client_order_id=record.client_order_id,
                symbol=intent.symbol,
                tries=tries,
            )
            return
        self._kill_retries[key] = tries + 1
        log.warning(
            "trading.kill_exit_again",
            client_order_id=record.client_order_id,
            state=record.state.value,
            reason=record.reason,
        )
        ctx.spawn(
            self._close_when_reconciled(key, ref=f"again:{record.client_order_id}"),
            f"kill-exit-again:{record.client_order_id}",
        )

    def _unknown(self, record: OrderRecord, reason: str, retry_after: float | None) -> None:
        log.warning("trading.order_unknown", client_order_id=record.client_order_id, reason=reason)
        self.move(record, OrderState.UNKNOWN, reason)
        self.settle_later(record, retry_after)

    def settle_later(self, record: OrderRecord, retry_after: float | None = None) -> None:
        """Look an ``unknown`` order up in the background until the venue says what happened."""
        if record.client_order_id in self._settling:
            return
        self._settling.add(record.client_order_id)
        self.context.spawn(self._settle(record, retry_after), f"settle:{record.client_order_id}")

    async def _settle(self, record: OrderRecord, retry_after: float | None) -> None:
        try:
            await settle_unknown(self, record, retry_after)
        finally:
            self._settling.discard(record.client_order_id)

    async def apply_broker_order(self, record: OrderRecord, answer: BrokerOrder) -> None:
        """Bring ``record`` in line with the venue's view: fills first, then the state; an
        order canceled while the venue could not know it yet is canceled now."""
        await apply_venue_view(self, record, answer)
        await cancel_if_requested(self, record)

    async def adopt_forced(self, intent: OrderIntent, answer: BrokerOrder, reason: str) -> None:
        """An order the engine did not send (``intent.origin`` liquidation, adl or settlement:
        the venue's own; venue: a trade by hand on the account): it is written and published
        like one of ours (its intent first), then its fills are counted (the Fill and
        PositionUpdate events, the protection disarmed and its venue legs canceled when the
        position is closed) and its final state is published with ``reason`` (an exit alert,
        like a stop-loss's)."""
        ctx = self.context
        async with self._lock:  # not between another order's write and its send
            record = ctx.book.get(intent.client_order_id)
            if record is None:
                try:
                    record = await self._record(intent)
                except TemporaryError as exc:  # the fills below still count in memory
                    log.error("trading.forced_not_written", error=str(exc))
                    record = ctx.book.get(intent.client_order_id)
                    if record is None:
                        return
        log.warning(
            "trading.forced_close",
            client_order_id=intent.client_order_id,
            origin=intent.origin,
            symbol=intent.symbol,
            reason=reason,
        )
        for fill in answer.fills:
            self.apply_fill(record, fill)
        if record.state == OrderState.REJECTED:  # the intent was not written (logged)
            return
        self.move(record, answer.state, reason)

    async def cancel(self, record: OrderRecord) -> OrderRecord:
        """Cancel ``record`` at the venue (see :func:`cryptomon.trading.settle.cancel_at_venue`)."""
        return await cancel_at_venue(self, record)

    # ------------------------------------------------------------------ fills

    def replay_fill(self, fill: Fill) -> None:
        """A stored fill at startup: counted once, no events."""
        key = (fill.exchange, fill.trade_id)
        if key in self._trade_ids:
            return
        self._trade_ids.add(key)
        record = self.context.book.get(fill.client_order_id)
        if record is not None:
            record.add_fill(fill)
        self.context.portfolio.apply_fill(fill)

    def counted(self, fill: Fill) -> bool:
        """Whether ``fill`` (by venue and trade id) is counted already."""
        return (fill.exchange, fill.trade_id) in self._trade_ids

    def apply_fill(self, record: OrderRecord | None, fill: Fill) -> bool:
        """Count ``fill`` once: order, portfolio, Fill and PositionUpdate events. A fill
        without the venue's order id (a venue's trade without one) takes its order's, so the
        Fill published (WebSocket, store) names it as the REST read of the fills does."""
        key = (fill.exchange, fill.trade_id)
        if key in self._trade_ids:
            return False
        self._trade_ids.add(key)
        ctx = self.context
        if fill.exchange_order_id is None and record is not None and record.exchange_order_id:
            fill = replace(fill, exchange_order_id=record.exchange_order_id)
        if record is not None:
            record.add_fill(fill)
        ctx.portfolio.apply_fill(fill)
        self.sweep_dust(fill.exchange, fill.symbol, fill.price, fill.ts)
        pos = ctx.portfolio.position(fill.exchange, fill.symbol)
        mid = ctx.mid(fill.exchange, fill.symbol)
        if mid is not None:
            pos.mark = mid
        ctx.hub.publish(fill)
        ctx.publish_position(pos)
        if info_enabled():
            log.info(
                "trading.fill",
                client_order_id=fill.client_order_id,
                side=fill.side,
                amount=str(fill.amount),
                price=str(fill.price),
                fee=str(fill.fee),
                position=str(pos.amount),
            )
        for observer in self._observers:
            observer.on_fill(record, fill, pos)
        if pos.amount == 0:
            self._kill_retries.pop((fill.exchange, fill.symbol), None)
        if (
            ctx.risk_state == RiskState.HALTED
            and record is not None
            and not record.intent.reduce_only
        ):
            self._filled_while_halted(record, fill, pos)
        return True

    def sweep_dust(self, exchange: str, symbol: str, price: Decimal, ts: float) -> None:
        """A position left smaller than the venue's lot (a base-currency fee) cannot be
        sold: it becomes dust so the position closes (see ``Portfolio.sweep_dust``)."""
        info = self.context.market_infos.get(symbol)
        if info is not None and info.lot_size > 0:
            self.context.portfolio.sweep_dust(exchange, symbol, info.lot_size, price, ts)
