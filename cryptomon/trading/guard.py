"""Protective exits: stop-loss / take-profit (native legs or emulated from the book,
trailing) and the daily loss limit. See ``protection.py`` for the pure pieces (sizing,
bracket prices, trigger logic) and ``legs.py`` for the venue-side legs.

:class:`ProtectionManager` observes the executor (every fill arms or disarms the position's
protection, every state change of an exit or a native leg is followed) and the book tops the
engine forwards to :meth:`ProtectionManager.on_top`.

A stop that trails on the book is persisted (a ``ProtectionUpdate`` on the hub, written by the
store's durable writer) once it has moved by a tick or more since the last write, at most once
per ``trading.trailing_stop_save_interval_s`` per position (a move held back is written by a
later book top or the engine's poll), and always at the engine's stop. A restart protects the
position at the persisted level when it belongs to the same entry and side, never looser than
the entry's own stop. A stop resting at the venue as a leg never trails (the venue keeps its
price) and is not persisted: after a restart the adopted leg's price is the stop again.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import structlog

from cryptomon.decimals import half_sum
from cryptomon.events import BookTop, Fill, OrderIntent, ProtectionUpdate
from cryptomon.trading.context import EngineContext, to_decimal
from cryptomon.trading.executor import MarketKey, OrderExecutor
from cryptomon.trading.journal import IntentJournal, TrailJournal
from cryptomon.trading.legs import ENTRY_ORIGINS, GONE, VenueLegs
from cryptomon.trading.orders import OrderRecord, client_order_id
from cryptomon.trading.portfolio import Position
from cryptomon.trading.protection import Protection, bracket, keep_trail, tighten
from cryptomon.trading.risk import RiskState
from cryptomon.trading.risk_model import daily_loss_reason

log = structlog.get_logger()
ZERO = Decimal(0)
EXIT_BACKOFF_S = 0.5  # a failed or refused protective exit is tried again after 0.5, 1, 2, ... s
EXIT_BACKOFF_MAX_S = 30.0
EXIT_ORIGINS = ("stop_loss", "take_profit")
ATTEMPTS_PROBED = 32  # exit attempts of a restored entry looked up in the journal at a time


def exit_id(entry_id: str, origin: str, attempt: int) -> str:
    """The client order id of attempt ``attempt`` of an emulated exit of ``entry_id``'s
    protection (what :meth:`OrderExecutor.exit_intent` gives it)."""
    return client_order_id(entry_id, f"{origin}:{attempt}", origin)


class ProtectionManager:
    """Stop-loss, take-profit and trailing stops of open positions; the daily loss limit."""

    def __init__(self, *, context: EngineContext, executor: OrderExecutor) -> None:
        self.context = context
        self.executor = executor
        self.protections: dict[MarketKey, Protection] = {}
        self._daily_day: int | None = None
        self._daily_reason = ""  # the state reason the daily loss limit set
        self.legs = VenueLegs(context=context, executor=executor, protections=self.protections)
        # the trailed stops read back at startup, until the restored venue legs are adopted
        self._trails: dict[MarketKey, ProtectionUpdate] = {}
        self.trail_writes = 0  # ProtectionUpdate events published

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
        self.legs.on_order_state(record, prot, still_open)

    # ------------------------------------------------------------------ arming

    def disarm(self, key: MarketKey) -> None:
        """The position is closed: drop its protection and cancel native legs left open."""
        prot = self.protections.pop(key, None)
        if prot is not None:
            self.legs.cancel(prot)

    def _arm(self, pos: Position, intent: OrderIntent) -> None:
        """Protect ``pos`` after a fill of ``intent`` (an entry). Venue legs of an earlier
        entry are canceled: they hold the old size and levels, and the entry's own pair is
        placed once it has filled (the book watch covers the gap). The entry's own legs
        already open are adopted (see :meth:`VenueLegs.adopt_own`), never canceled by another
        fill of it. Another fill of the same entry (a limit entry filling in parts) keeps the
        stop as it trailed, never loosened back to the entry's level; the exits take the
        position's amount when they fire."""
        old = self.protections.get((pos.exchange, pos.symbol))
        if old is not None and old.entry_id != intent.client_order_id:
            self.legs.cancel(old)
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
            saved_stop=stop,  # the entry's own level: nothing to persist until it trails
        )
        if old is not None and old.entry_id == prot.entry_id and old.long == long:
            keep_trail(prot, old)
        self.protections[(pos.exchange, pos.symbol)] = prot
        self.legs.adopt_own(prot)

    async def arm_restored(
        self, positions: list[Position], opened_by: dict[MarketKey, list[str]]
    ) -> None:
        """Protect the positions restored at startup at their entry's own levels: the newest
        entry among the orders whose fills opened or added to it (``opened_by``, client
        order ids, oldest first) read back from the journal, as its fill armed it before the
        restart (a level the entry did not set takes the configured percentage). A position
        whose entry is not found takes the configured percentages. A stop that had trailed
        (persisted for the same entry and side) takes its trailed level and best price when
        tighter than the entry's. A resting venue leg adopted afterwards (:meth:`adopt_legs`)
        sets its own side's level."""
        ids = {coid for pos in positions for coid in opened_by.get((pos.exchange, pos.symbol), [])}
        journal = self.context.journal
        intents: dict[str, OrderIntent] = {}
        if ids and isinstance(journal, IntentJournal):
            try:
                intents = await journal.stored_intents(ids)
            except Exception as exc:  # protected at the defaults rather than not at all
                log.warning("trading.entry_levels_unread", error=repr(exc))
        self._trails = await self._read_trails() if positions else {}
        for symbol in {pos.symbol for pos in positions}:
            # the tick the levels are rounded to (the engine arms them once the broker has
            # started); unknown (the venue away), the levels stay unrounded (the venue may
            # refuse a leg off it)
            try:
                await self.context.market_info(symbol)
            except Exception as exc:
                log.warning("trading.restored_market_info", symbol=symbol, error=repr(exc))
        for pos in positions:
            entry = None
            for coid in reversed(opened_by.get((pos.exchange, pos.symbol), [])):
                intent = intents.get(coid)
                if (
                    intent is not None
                    and intent.origin in ENTRY_ORIGINS
                    and not intent.reduce_only
                    and intent.exchange == pos.exchange
                    and intent.symbol == pos.symbol
                ):
                    entry = intent
                    break
            if entry is None:
                self.arm_default(pos)
            else:
                self._arm(pos, entry)
            prot = self.protections[(pos.exchange, pos.symbol)]
            await self._count_past_exits(prot)
            own = (entry.stop_loss, entry.take_profit) if entry is not None else (None, None)
            trailed = self._apply_trail(prot)
            log.info(
                "trading.protection_restored",
                symbol=pos.symbol,
                entry=entry.client_order_id if entry is not None else None,
                stop=str(prot.stop),
                stop_from="trail" if trailed else "entry" if own[0] is not None else "default",
                best=str(prot.best),
                take=str(prot.take),
                take_from="entry" if own[1] is not None else "default",
            )

    async def _count_past_exits(self, prot: Protection) -> None:
        """Restored ``prot``'s exits count on from the highest attempt of its entry that the
        journal (or the book: an exit still open) holds, so an exit id is never sent twice:
        the journal keeps the first intent written under an id, and a venue may refuse an id
        it has seen. Attempts are looked up :data:`ATTEMPTS_PROBED` at a time until a whole
        batch is unknown. A try the risk checks refused keeps its number (nothing was written
        or sent under it: :meth:`_exit`), so the attempts written have no gap; one remains
        only where an intent's write failed and the process stopped before the store's writer
        wrote it (never sent). An exit still open makes the next one wait: the risk checks
        net it out of the position."""
        journal = self.context.journal
        reader = journal if isinstance(journal, IntentJournal) else None
        highest, low = -1, 0
        while True:
            ids = {
                exit_id(prot.entry_id, origin, n): n
                for n in range(low, low + ATTEMPTS_PROBED)
                for origin in EXIT_ORIGINS
            }
            known = {coid for coid in ids if coid in self.context.book}
            if reader is not None:
                try:
                    known |= set(await reader.stored_intents(ids))
                except Exception as exc:  # counted from the book's (an exit skips those too)
                    log.warning("trading.past_exits_unread", entry=prot.entry_id, error=repr(exc))
                    reader = None
            highest = max([highest, *(ids[coid] for coid in known)])
            if not known or reader is None:
                break
            low += ATTEMPTS_PROBED
        if highest >= prot.attempt:
            prot.attempt = highest + 1
            log.info("trading.past_exits_counted", entry=prot.entry_id, next_attempt=prot.attempt)

    async def _read_trails(self) -> dict[MarketKey, ProtectionUpdate]:
        journal = self.context.journal
        if not isinstance(journal, TrailJournal):
            return {}
        try:
            return await journal.stored_trails()
        except Exception as exc:  # protected at the entry's levels rather than not at all
            log.warning("trading.trailed_stops_unread", error=repr(exc))
            return {}

    def _apply_trail(self, prot: Protection) -> bool:
        """Give restored ``prot`` the trailed stop persisted for it (the same entry and side;
        a level looser than its own is ignored, the best price kept from the tighter);
        True when its stop is now the trailed one."""
        saved = self._trails.get((prot.exchange, prot.symbol))
        if saved is None or saved.entry_id != prot.entry_id or (saved.side == "long") != prot.long:
            return False
        tighter = tighten(prot, saved.stop, saved.best)
        prot.saved_stop = saved.stop
        return tighter

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
        """After a restart: the venue legs the journal still has open (see
        :meth:`VenueLegs.adopt`). An adopted stop leg's price is the stop (the venue's, as
        while running: a resting leg does not trail); where the stop is still watched on the
        book (no stop leg adopted, or one whose outcome is unknown) the persisted trailed stop
        applies again, so a leg placed for it later rests at the trailed level."""
        self.legs.adopt(records)
        for prot in self.protections.values():
            if prot.native and prot.stop_on_book and self._apply_trail(prot):
                log.info(
                    "trading.protection_restored",
                    symbol=prot.symbol,
                    entry=prot.entry_id,
                    stop=str(prot.stop),
                    stop_from="trail",
                    best=str(prot.best),
                    watched="stop_loss",
                )
        self._trails = {}

    def cancel_orphan_legs(self) -> list[str]:
        """Once reconciled: cancel open venue legs of markets without a position (see
        :meth:`VenueLegs.cancel_orphans`); returns the client order ids asked to cancel."""
        return self.legs.cancel_orphans()

    # ------------------------------------------------------------------ trailed stops

    def save_trails(self, *, final: bool = False) -> int:
        """Persist the trailed stops that moved and were held back by the throttle (the
        engine's poll), or with ``final`` every one not persisted yet, whatever the throttle
        (the engine's stop). Returns how many were published."""
        now = self.context.clock.monotonic()
        return sum(
            self._save_trail(prot, now, final=final)
            for prot in list(self.protections.values())
            if prot.stop != prot.saved_stop
        )

    def _save_trail(self, prot: Protection, now: float, *, final: bool = False) -> bool:
        """Publish ``prot``'s trailed stop when it moved a tick or more since the last write
        and the last write is ``trailing_stop_save_interval_s`` old (``final``: when it moved
        at all). A stop resting at the venue is not the engine's to persist."""
        if prot.saved_stop is None or not prot.stop_on_book:
            return False
        if not final:
            info = self.context.market_infos.get(prot.symbol)
            tick = info.tick_size if info is not None else ZERO
            if tick > 0 and abs(prot.stop - prot.saved_stop) < tick:
                return False
            interval = self.context.config.trailing_stop_save_interval_s
            if prot.saved_at is not None and now - prot.saved_at < interval:
                return False
        ts = self.context.now()
        self.context.hub.publish(
            ProtectionUpdate(
                exchange=prot.exchange,
                symbol=prot.symbol,
                ts=ts,
                ts_recv=ts,
                entry_id=prot.entry_id,
                side="long" if prot.long else "short",
                stop=prot.stop,
                best=prot.best,
                take=prot.take,
                trail_pct=prot.trail_pct,
            )
        )
        prot.saved_stop, prot.saved_at = prot.stop, now
        self.trail_writes += 1
        return True

    # ------------------------------------------------------------------ emulated exits

    def on_top(self, top: BookTop) -> None:
        """Mark the position and fire an emulated exit when the book crosses its levels."""
        portfolio = self.context.portfolio
        key = (top.exchange, top.symbol)
        if top.bid <= 0 or top.ask <= 0:
            return  # no mid to mark, no touch to trigger
        bid, ask = to_decimal(top.bid), to_decimal(top.ask)  # one each for all (immutable)
        mid = half_sum(bid, ask)  # decimal_mid: the exact mid of the quoted prices
        portfolio.observe_price(top.symbol, mid)
        pos = portfolio.positions.get(key)
        if pos is None or pos.amount == 0:
            return
        pos.mark = mid
        prot = self.protections.get(key)
        if prot is None or prot.exiting:
            return
        if prot.retry_at and self.context.clock.monotonic() < prot.retry_at:
            return  # the last attempt failed: back off instead of retrying on every book
        origin = prot.trigger(bid, ask)
        if prot.stop != prot.saved_stop:
            self._save_trail(prot, self.context.clock.monotonic())
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
        # an id the book knows finished is never the next exit (the executor would answer it
        # with that order): the entry filled again after its exits closed the position, and
        # the protection armed anew counts from zero
        while (done := ctx.book.get(exit_id(prot.entry_id, origin, prot.attempt))) is not None:
            if done.is_open:
                break
            prot.attempt += 1
        intent = self.executor.exit_intent(
            key, amount, origin, ref=prot.entry_id, leg=f"{origin}:{prot.attempt}"
        )
        try:
            rec = await self.executor.submit(intent)
        except Exception as exc:
            self._retry_later(prot, prot.attempt + prot.refused, repr(exc))
            prot.exiting = False
            if ctx.book.get(intent.client_order_id) is None:
                # refused before it was recorded (the risk checks): nothing was written or
                # sent under its id, so the next try takes it again. The attempts written
                # have no gap: a restart counts on past every exit sent (_count_past_exits)
                prot.refused += 1
            else:  # recorded (its write failed): maybe written, so never the next one's id
                prot.attempt += 1
            return
        if rec.state in GONE and ctx.portfolio.amount(*key) != 0:
            # the venue refused it (on_order_state counted the attempt and re-armed the
            # trigger): backed off like a failed send, not resent on every book top
            self._retry_later(
                prot, prot.attempt - 1 + prot.refused, f"{rec.state.value}: {rec.reason}"
            )
        else:
            prot.retry_at = 0.0

    def _retry_later(self, prot: Protection, failures: int, why: str) -> None:
        """The next try of ``prot``'s exit waits ``EXIT_BACKOFF_S * 2**failures`` (capped;
        the exponent too: hours of refusals would overflow the float)."""
        delay = min(EXIT_BACKOFF_S * 2 ** min(max(failures, 0), 32), EXIT_BACKOFF_MAX_S)
        log.warning("trading.exit_failed", symbol=prot.symbol, error=why, retry_in_s=delay)
        prot.retry_at = self.context.clock.monotonic() + delay
