"""Protective exits: stop-loss / take-profit (native legs or emulated from the book,
trailing) and the daily loss limit. See ``protection.py`` for the pure pieces (sizing,
bracket prices, trigger logic).

:class:`ProtectionManager` observes the executor (every fill arms or disarms the position's
protection, every state change of an exit or a native leg is followed) and the book tops the
engine forwards to :meth:`ProtectionManager.on_top`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

import structlog

from cryptomon.errors import RiskRejected
from cryptomon.events import BookTop, Fill, OrderIntent, OrderState
from cryptomon.trading.context import EngineContext, to_decimal
from cryptomon.trading.executor import OrderExecutor
from cryptomon.trading.orders import OrderRecord, client_order_id, intent_fields
from cryptomon.trading.portfolio import Position
from cryptomon.trading.protection import Protection, bracket
from cryptomon.trading.risk import RiskState
from cryptomon.trading.risk_model import daily_loss_reason

log = structlog.get_logger()
ZERO = Decimal(0)
ENTRY_ORIGINS = frozenset({"signal", "manual"})
GONE = (OrderState.CANCELED, OrderState.REJECTED, OrderState.EXPIRED)
RESTING = (OrderState.SUBMITTED, OrderState.PARTIALLY_FILLED)  # a leg the venue took
MarketKey = tuple[str, str]
EXIT_BACKOFF_S = 0.5  # a failed or refused protective exit is tried again after 0.5, 1, 2, ... s
EXIT_BACKOFF_MAX_S = 30.0


class ProtectionManager:
    """Stop-loss, take-profit and trailing stops of open positions; the daily loss limit."""

    def __init__(self, *, context: EngineContext, executor: OrderExecutor) -> None:
        self.context = context
        self.executor = executor
        self.protections: dict[MarketKey, Protection] = {}
        self._daily_day: int | None = None
        self._daily_reason = ""  # the state reason the daily loss limit set
        self._orphans: set[str] = set()  # orphan legs being canceled
        self._completing: set[MarketKey] = set()  # half pairs waiting for the reconciliation

    def check_daily_loss(self) -> None:
        """Entries stop (``reducing``) at the daily loss limit until the next UTC day."""
        ctx = self.context
        now = ctx.now()
        pnl = ctx.portfolio.daily_pnl(now)
        limit = ctx.runtime.limits.daily_loss_limit
        if pnl <= -limit and ctx.risk_state == RiskState.ACTIVE:
            reason = daily_loss_reason(pnl, limit)
            ctx.set_risk_state(RiskState.REDUCING, reason, kind="limit")
            self._daily_day = int(now // 86400)
            self._daily_reason = reason
        elif (
            ctx.risk_state == RiskState.REDUCING
            and self._daily_day is not None
            and int(now // 86400) != self._daily_day
        ):
            self._daily_day = None
            # only the loss limit is lifted: reducing for another reason since (a
            # reconciliation mismatch) stays until an operator resumes
            if ctx.state_reason == self._daily_reason:
                ctx.set_risk_state(RiskState.ACTIVE, "new UTC day: daily loss limit reset")

    # ------------------------------------------------------------------ executor observer

    def on_fill(self, record: OrderRecord | None, fill: Fill, pos: Position) -> None:
        key = (fill.exchange, fill.symbol)
        if pos.amount == 0:
            self.disarm(key)
        elif (
            record is not None
            and record.intent.origin in ENTRY_ORIGINS
            and not record.intent.reduce_only
        ):
            self._arm(pos, record.intent)
        self.check_daily_loss()

    def on_order_state(self, record: OrderRecord) -> None:
        intent = record.intent
        prot = self.protections.get((intent.exchange, intent.symbol))
        if prot is None:
            return
        still_open = self.context.portfolio.amount(intent.exchange, intent.symbol) != 0
        if (
            prot.exiting
            and intent.origin in ("stop_loss", "take_profit")
            and intent.type == "market"  # an emulated exit (a venue leg is a trigger order)
            and record.state.is_terminal
            and still_open
        ):
            prot.exiting = False  # the exit did not close it: trigger again on the book
            prot.attempt += 1
        if not prot.native and intent.origin in ENTRY_ORIGINS and record.state == OrderState.FILLED:
            ctx = self.context
            info = ctx.market_infos.get(intent.symbol)
            coid = intent.client_order_id
            if info is None or not ctx.reconciled:
                ctx.spawn(self._native_when_reconciled(prot), f"native-legs-later:{coid}")
            elif info.native_stop_loss:
                ctx.spawn(self._place_native(prot), f"native-legs:{coid}")
        if (
            prot.native
            and record.client_order_id in (prot.stop_order, prot.take_order)
            and record.state in GONE
            and still_open
        ):  # a venue leg is gone: the engine watches the book again
            self._native_lost(prot, record.client_order_id, str(record.state))
        elif (
            prot.native
            and prot.missing is not None
            and record.client_order_id == self._leg_id(prot, prot.missing)
            and record.state in RESTING
        ):  # the leg that completes a half pair rests: the venue covers that side now
            self._rests(prot)

    # ------------------------------------------------------------------ arming

    def disarm(self, key: MarketKey) -> None:
        """The position is closed: drop its protection and cancel native legs left open."""
        prot = self.protections.pop(key, None)
        if prot is not None:
            self._cancel_legs(prot)

    def _cancel_legs(self, prot: Protection) -> None:
        """Cancel the venue-side legs of ``prot`` that are still open (a placement of its
        legs still running places no further one)."""
        if not prot.native:
            return
        prot.native = False
        for coid in (prot.stop_order, prot.take_order):
            other = self.context.book.get(coid) if coid else None
            if other is not None and other.is_open:
                self.context.spawn(self.executor.cancel(other), f"cancel-leg:{coid}")

    def _arm(self, pos: Position, intent: OrderIntent) -> None:
        """Protect ``pos`` after a fill of ``intent`` (an entry). Venue legs of an earlier
        entry are canceled: they hold the old size and levels, and the entry's own pair is
        placed once it has filled (the book watch covers the gap). The entry's own legs
        already open are adopted (see :meth:`_adopt_own_legs`), never canceled by another
        fill of it."""
        old = self.protections.get((pos.exchange, pos.symbol))
        if old is not None and old.entry_id != intent.client_order_id:
            self._cancel_legs(old)
        cfg = self.context.config
        long = pos.amount > 0
        stop, take = intent.stop_loss, intent.take_profit
        if stop is None or take is None:
            info = self.context.market_infos.get(pos.symbol)
            default_stop, default_take = bracket(
                side="buy" if long else "sell",
                price=pos.avg_price,
                stop_pct=to_decimal(cfg.stop_loss_percentage),
                take_pct=to_decimal(cfg.take_profit_percentage),
                tick=info.tick_size if info is not None else ZERO,
            )
            stop, take = stop or default_stop, take or default_take
        trail = to_decimal(cfg.trailing_stop_percentage) if cfg.trailing_stop_percentage else None
        prot = Protection(
            exchange=pos.exchange,
            symbol=pos.symbol,
            long=long,
            stop=stop,
            take=take,
            entry_id=intent.client_order_id,
            trail_pct=trail,
            best=pos.avg_price,
        )
        self.protections[(pos.exchange, pos.symbol)] = prot
        self._adopt_own_legs(prot)

    def _adopt_own_legs(self, prot: Protection) -> None:
        """The venue legs of ``prot``'s entry already open in the book protect it (no second
        pair, and the book watch stays off). They exist before the entry's fill is counted
        only after a restart whose journal lacked that fill (the process died after the legs
        were sent, before the store wrote the fill): the position, and this protection, come
        back with the reconciliation, after :meth:`adopt_legs` found no position to adopt
        them for. The legs' ids are those :meth:`_place_native` gives them."""
        exits = [
            r
            for r in self.context.book.open(prot.exchange, prot.symbol)
            if r.intent.origin in ("stop_loss", "take_profit")
        ]
        if not exits:  # the usual case (an entry's legs are placed once it has filled)
            return
        own = {client_order_id(prot.entry_id, o, o) for o in ("stop_loss", "take_profit")}
        for record in exits:
            if record.client_order_id in own:
                self._adopt(prot, record)
        self._complete_later(prot)

    def arm_default(self, pos: Position) -> None:
        """Protect a position restored at startup with the configured percentages."""
        now = self.context.now()
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

    def adopt_legs(self, records: list[OrderRecord]) -> None:
        """After a restart: venue-side legs the journal still has open protect their position
        again (no second pair is placed); the reconciliation then follows them like any
        open order (a leg that fired while the daemon was down closes the position and the
        other leg is canceled). Half a pair is completed (:meth:`_complete_later`)."""
        adopted: list[Protection] = []
        for record in records:
            intent = record.intent
            prot = self.protections.get((intent.exchange, intent.symbol))
            if prot is None or intent.origin not in ("stop_loss", "take_profit"):
                continue
            self._adopt(prot, record)
            if prot not in adopted:
                adopted.append(prot)
        for prot in adopted:
            self._complete_later(prot)

    def _adopt(self, prot: Protection, record: OrderRecord) -> None:
        """``record`` (an open venue-side stop-loss or take-profit leg) protects ``prot``."""
        intent = record.intent
        if intent.type not in ("stop_market", "take_profit") or intent.stop_price is None:
            return
        prot.native = True
        if intent.origin == "stop_loss":
            prot.stop_order, prot.stop = intent.client_order_id, intent.stop_price
        else:
            prot.take_order, prot.take = intent.client_order_id, intent.stop_price
        log.info(
            "trading.native_leg_adopted",
            client_order_id=intent.client_order_id,
            symbol=intent.symbol,
            origin=intent.origin,
        )

    def cancel_orphan_legs(self) -> list[str]:
        """Once reconciled: a venue-side leg (stop-loss or take-profit) still open for a
        market with no position and no protection is an orphan (its sibling fired and closed
        the position while the daemon was down, and the journal held that fill by the restart,
        so no protection adopted the other leg): canceled. Returns the client order ids asked
        to cancel. Only after a reconciliation, whose positions are the venue's: before it a
        position whose fills the journal lacks could look flat."""
        ctx = self.context
        if not ctx.reconciled:
            return []
        asked: list[str] = []
        for record in ctx.book.open():
            intent = record.intent
            coid = intent.client_order_id
            if intent.origin not in ("stop_loss", "take_profit") or not intent.reduce_only:
                continue
            if intent.type not in ("stop_market", "take_profit") or coid in self._orphans:
                continue
            key = (intent.exchange, intent.symbol)
            if key in self.protections or ctx.portfolio.amount(*key) != 0:
                continue
            self._orphans.add(coid)
            log.warning("trading.orphan_leg_canceled", client_order_id=coid, symbol=intent.symbol)
            ctx.spawn(self._cancel_orphan(record), f"cancel-orphan-leg:{coid}")
            asked.append(coid)
        return asked

    async def _cancel_orphan(self, record: OrderRecord) -> None:
        try:
            await self.executor.cancel(record)
        finally:  # asked again at the next reconciliation if it is still open
            self._orphans.discard(record.intent.client_order_id)

    # ------------------------------------------------------------------ native legs

    async def _native_when_reconciled(self, prot: Protection) -> None:
        """Venue legs for an entry whose fill a restart's reconciliation found (the process
        died after the venue filled it, before the legs were sent): no order goes out before
        the reconciliation has finished, and the venue's metadata (whether it takes venue
        legs) is only asked then. Until they rest, or when the metadata cannot be read, the
        book watch protects the position."""
        ctx = self.context
        while not ctx.reconciled:
            await ctx.clock.sleep(ctx.config.poll_interval_s)
        try:
            info = await ctx.market_info(prot.symbol)
        except Exception as exc:
            log.warning("trading.native_legs_skipped", symbol=prot.symbol, error=repr(exc))
            return
        key = (prot.exchange, prot.symbol)
        if (
            info.native_stop_loss
            and self.protections.get(key) is prot  # not closed or re-armed since
            and not prot.native
            and not prot.exiting
        ):
            await self._place_native(prot)

    def _complete_later(self, prot: Protection) -> None:
        """``prot`` adopted only one of its pair's legs (the process died between sending the
        stop-loss and the take-profit, or the take-profit's leg is all the venue has): the
        missing side is watched on the book from now on, and once the reconciliation has
        finished (the adopted leg may have fired or gone meanwhile) the missing leg is placed.
        A protection without a take-profit price has no pair to complete."""
        if not prot.native:
            return
        # called again when a later adoption brings the other leg (a restored position's
        # protection adopts by id first, then every open leg of its market)
        prot.missing = None
        if prot.stop_order is None:
            prot.missing = "stop_loss"
        elif prot.take_order is None and prot.take is not None:
            prot.missing = "take_profit"
        key = (prot.exchange, prot.symbol)
        if prot.missing is None or key in self._completing:
            return
        log.warning(
            "trading.native_leg_missing",
            symbol=prot.symbol,
            missing=prot.missing,
            client_order_id=prot.stop_order or prot.take_order,
        )
        self._completing.add(key)
        self.context.spawn(self._complete_pair(prot), f"native-leg-complete:{prot.entry_id}")

    async def _complete_pair(self, prot: Protection) -> None:
        """Place the leg ``prot`` misses once reconciled (see :meth:`_complete_later`), with
        the id :meth:`_place_native` gives it: an earlier try whose outcome is unknown is in
        the journal under that id (written before it was sent), so it is looked up by the
        reconciliation and adopted, never sent twice, and a later restart adopts this one."""
        ctx = self.context
        key = (prot.exchange, prot.symbol)
        try:
            while not ctx.reconciled:
                await ctx.clock.sleep(ctx.config.poll_interval_s)
        finally:
            self._completing.discard(key)
        origin = prot.missing
        amount = abs(ctx.portfolio.amount(*key))
        if (
            origin is None
            or not prot.native
            or prot.exiting
            or self.protections.get(key) is not prot  # closed or re-armed since
            or amount == 0
        ):
            return
        rec = await self._place_leg(prot, origin, amount)
        if rec is not None and rec.state in RESTING and prot.native:
            self._rests(prot)

    def _rests(self, prot: Protection) -> None:
        log.info("trading.native_pair_completed", symbol=prot.symbol, leg=prot.missing)
        prot.missing = None

    @staticmethod
    def _leg_id(prot: Protection, origin: str) -> str | None:
        return prot.stop_order if origin == "stop_loss" else prot.take_order

    async def _place_native(self, prot: Protection) -> None:
        """Venue-side stop-loss and take-profit legs (reduce-only) for a filled entry. A leg
        refused (risk or venue) puts the position back on emulation and cancels the other."""
        key = (prot.exchange, prot.symbol)
        amount = abs(self.context.portfolio.amount(*key))
        prot.native = True
        for origin in ("stop_loss", "take_profit"):
            if not prot.native:
                break
            await self._place_leg(prot, origin, amount)

    async def _place_leg(
        self, prot: Protection, origin: Literal["stop_loss", "take_profit"], amount: Decimal
    ) -> OrderRecord | None:
        """One venue leg of ``prot`` for ``amount`` (its id from the entry's and the leg's).
        Refused (risk or venue): the position goes back on emulation and the other leg is
        canceled. None when nothing was placed (no take-profit price, or refused by risk)."""
        key = (prot.exchange, prot.symbol)
        price = prot.stop if origin == "stop_loss" else prot.take
        if price is None:
            return None
        base = self.executor.exit_intent(key, amount, origin, ref=prot.entry_id, leg=origin)
        intent = OrderIntent(
            **{
                **intent_fields(base),
                "type": "stop_market" if origin == "stop_loss" else "take_profit",
                "stop_price": price,
            }
        )
        # known before sending: a refusal seen during submit finds its protection
        if origin == "stop_loss":
            prot.stop_order = intent.client_order_id
        else:
            prot.take_order = intent.client_order_id
        try:
            rec = await self.executor.submit(intent)
        except RiskRejected:
            self._native_lost(prot, intent.client_order_id, "refused by the risk checks")
            return None
        if rec.state in GONE:
            self._native_lost(prot, rec.client_order_id, str(rec.state))
        return rec

    def _native_lost(self, prot: Protection, coid: str, why: str) -> None:
        """A native leg is gone while the position is open: emulate from the book again and
        cancel the other leg (it would lock the coins an emulated exit must sell)."""
        if not prot.native:
            return
        prot.native = False
        prot.missing = None
        log.warning("trading.native_leg_lost", client_order_id=coid, why=why, symbol=prot.symbol)
        for other_id in (prot.stop_order, prot.take_order):
            other = self.context.book.get(other_id) if other_id and other_id != coid else None
            if other is not None and other.is_open:
                self.context.spawn(self.executor.cancel(other), f"cancel-leg:{other_id}")

    # ------------------------------------------------------------------ emulated exits

    def on_top(self, top: BookTop) -> None:
        """Mark the position and fire an emulated exit when the book crosses its levels."""
        portfolio = self.context.portfolio
        key = (top.exchange, top.symbol)
        mid = None
        if top.bid > 0 and top.ask > 0:
            mid = to_decimal((top.bid + top.ask) / 2)  # one conversion for both (immutable)
            portfolio.observe_price(top.symbol, mid)
        pos = portfolio.positions.get(key)
        if pos is None or pos.amount == 0:
            return
        if mid is not None:
            pos.mark = mid
        prot = self.protections.get(key)
        if prot is None or prot.exiting or top.bid <= 0 or top.ask <= 0:
            return
        if prot.retry_at and self.context.clock.monotonic() < prot.retry_at:
            return  # the last attempt failed: back off instead of retrying on every book
        origin = prot.trigger(to_decimal(top.bid), to_decimal(top.ask))
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
            self.context.spawn(self._exit(prot, origin), f"exit:{top.symbol}")

    async def _exit(self, prot: Protection, origin: Any) -> None:
        ctx = self.context
        key = (prot.exchange, prot.symbol)
        held = ctx.portfolio.amount(*key)
        if self.protections.get(key) is not prot or (held != 0 and (held > 0) != prot.long):
            # disarmed since it fired (the venue liquidated or settled the position, whose
            # adoption ran first), maybe with another position opened since: not this exit's
            prot.exiting = False
            return
        pos = ctx.portfolio.positions.get(key)
        if pos is not None and pos.amount != 0:  # a leftover below the lot is dust
            self.executor.sweep_dust(
                prot.exchange, prot.symbol, pos.mark or pos.avg_price, ctx.now()
            )
            if pos.amount == 0:
                self.disarm(key)
        amount = abs(ctx.portfolio.amount(*key))
        if amount == 0:
            return
        intent = self.executor.exit_intent(
            key, amount, origin, ref=prot.entry_id, leg=f"{origin}:{prot.attempt}"
        )
        try:
            rec = await self.executor.submit(intent)
        except Exception as exc:
            self._retry_later(prot, prot.attempt, repr(exc))
            prot.exiting = False
            prot.attempt += 1
            return
        if rec.state in GONE and ctx.portfolio.amount(*key) != 0:
            # the venue refused it (on_order_state counted the attempt and re-armed the
            # trigger): backed off like a failed send, not resent on every book top
            self._retry_later(prot, prot.attempt - 1, f"{rec.state.value}: {rec.reason}")
        else:
            prot.retry_at = 0.0

    def _retry_later(self, prot: Protection, failures: int, why: str) -> None:
        """The next try of ``prot``'s exit waits ``EXIT_BACKOFF_S * 2**failures`` (capped)."""
        delay = min(EXIT_BACKOFF_S * 2 ** max(failures, 0), EXIT_BACKOFF_MAX_S)
        log.warning("trading.exit_failed", symbol=prot.symbol, error=why, retry_in_s=delay)
        prot.retry_at = self.context.clock.monotonic() + delay
