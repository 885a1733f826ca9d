"""Venue-side stop-loss and take-profit legs of a protected position (reduce-only trigger
orders resting at the venue while the engine's book watch is off): placed once the entry has
filled, adopted after a restart (half a pair completed), back to the book watch when one is
lost, canceled with the position or as orphans. The protection manager (``guard.py``) owns
the protections and calls these.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import structlog

from cryptomon.errors import RiskRejected
from cryptomon.events import OrderIntent, OrderState
from cryptomon.trading.context import EngineContext
from cryptomon.trading.executor import MarketKey, OrderExecutor
from cryptomon.trading.orders import OrderRecord, client_order_id, intent_fields
from cryptomon.trading.protection import Protection

log = structlog.get_logger()
ENTRY_ORIGINS = frozenset({"signal", "manual"})
GONE = (OrderState.CANCELED, OrderState.REJECTED, OrderState.EXPIRED)
RESTING = (OrderState.SUBMITTED, OrderState.PARTIALLY_FILLED)  # a leg the venue took
AGAIN_MAX = 3  # legs of one protection placed again (never at the venue) before the book watch


def other_side(
    origin: Literal["stop_loss", "take_profit"],
) -> Literal["stop_loss", "take_profit"]:
    return "take_profit" if origin == "stop_loss" else "stop_loss"


class VenueLegs:
    """The venue legs of the protections in ``protections`` (the manager's own dict)."""

    def __init__(
        self,
        *,
        context: EngineContext,
        executor: OrderExecutor,
        protections: dict[MarketKey, Protection],
    ) -> None:
        self.context = context
        self.executor = executor
        self.protections = protections
        self._orphans: set[str] = set()  # orphan legs being canceled
        self._completing: set[MarketKey] = set()  # half pairs waiting for the reconciliation

    def on_order_state(self, record: OrderRecord, prot: Protection, still_open: bool) -> None:
        """Follow ``prot``'s entry and legs: a filled entry gets its pair (once reconciled,
        on a venue that takes them); a leg gone while the position is open puts it back on
        the book watch, but for one that never reached the venue (placed again); a leg whose
        outcome is unknown has its side watched on the book until it is found resting; the
        leg completing a half pair rests."""
        intent = record.intent
        if not prot.native and intent.origin in ENTRY_ORIGINS and record.state == OrderState.FILLED:
            ctx = self.context
            info = ctx.market_infos.get(intent.symbol)
            coid = intent.client_order_id
            if info is None or not ctx.reconciled:
                ctx.spawn(self.when_reconciled(prot), f"native-legs-later:{coid}")
            elif info.native_stop_loss:
                ctx.spawn(self.place(prot), f"native-legs:{coid}")
        if (
            prot.native
            and record.client_order_id in (prot.stop_order, prot.take_order)
            and record.state in GONE
            and still_open
        ):  # a venue leg is gone: the engine watches the book again
            if not (record.absent and self._again(prot, record)):
                self.lost(prot, record.client_order_id, str(record.state))
        elif (
            prot.native
            and record.state == OrderState.UNKNOWN
            and record.client_order_id in (prot.stop_order, prot.take_order)
            and intent.origin in ("stop_loss", "take_profit")
            and prot.missing in (None, other_side(intent.origin))
            and still_open
        ):  # may not be at the venue: its side is watched on the book until it is found
            # (the other side too when it is watched already)
            prot.missing = intent.origin if prot.missing is None else "both"
            log.warning(
                "trading.native_leg_unknown",
                client_order_id=record.client_order_id,
                symbol=prot.symbol,
                watched=prot.missing,
            )
        elif (
            prot.native
            and intent.origin in ("stop_loss", "take_profit")
            and prot.missing in (intent.origin, "both")
            and record.client_order_id == self._leg_id(prot, intent.origin)
            and record.state in RESTING
        ):  # the leg of a watched side rests: the venue covers that side now
            self._rests(prot, intent.origin)

    def cancel(self, prot: Protection) -> None:
        """Cancel the venue-side legs of ``prot`` that are still open (a placement of its
        legs still running places no further one)."""
        if not prot.native:
            return
        prot.native = False
        for coid in (prot.stop_order, prot.take_order):
            other = self.context.book.get(coid) if coid else None
            if other is not None and other.is_open:
                self.context.spawn(self.executor.cancel(other), f"cancel-leg:{coid}")

    def adopt_own(self, prot: Protection) -> None:
        """The venue legs of ``prot``'s entry already open in the book protect it (no second
        pair; the book watch stays off, but for the side of a leg missing from the pair,
        :meth:`_complete_later`). They exist before the entry's fill is counted
        only after a restart whose journal lacked that fill (the process died after the legs
        were sent, before the store wrote the fill): the position, and this protection, come
        back with the reconciliation, after :meth:`adopt` found no position to adopt
        them for. The legs' ids are those :meth:`place` gives them."""
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
                self._adopt_one(prot, record)
        self._complete_later(prot)

    def adopt(self, records: list[OrderRecord]) -> None:
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
            self._adopt_one(prot, record)
            if prot not in adopted:
                adopted.append(prot)
        for prot in adopted:
            self._complete_later(prot)

    def _adopt_one(self, prot: Protection, record: OrderRecord) -> None:
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
            stop_price=str(intent.stop_price),  # this side's level from now on
        )

    def cancel_orphans(self) -> list[str]:
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

    # ------------------------------------------------------------------ placing

    async def when_reconciled(self, prot: Protection) -> None:
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
            await self.place(prot)

    def _complete_later(self, prot: Protection) -> None:
        """``prot`` adopted only one of its pair's legs (the process died between sending the
        stop-loss and the take-profit, or the take-profit's leg is all the venue has): the
        missing side is watched on the book from now on, and once the reconciliation has
        finished (the adopted leg may have fired or gone meanwhile) the missing leg is placed.
        A protection without a take-profit price has no pair to complete. A whole pair with
        a leg of unknown outcome has that side watched (:meth:`_watch_unknown`)."""
        if not prot.native:
            return
        # called again when a later adoption brings the other leg (a restored position's
        # protection adopts by id first, then every open leg of its market)
        prot.missing = None
        if prot.stop_order is None:
            prot.missing = "stop_loss"
        elif prot.take_order is None and prot.take is not None:
            prot.missing = "take_profit"
        else:
            self._watch_unknown(prot)
            return
        if self._unknown(prot, other_side(prot.missing)):  # the other leg may be absent too
            prot.missing = "both"
        key = (prot.exchange, prot.symbol)
        if key in self._completing:
            return
        log.warning(
            "trading.native_leg_missing",
            symbol=prot.symbol,
            missing=prot.missing,
            client_order_id=prot.stop_order or prot.take_order,
        )
        self._completing.add(key)
        self.context.spawn(self._complete_pair(key), f"native-leg-complete:{key[0]}:{key[1]}")

    def _watch_unknown(self, prot: Protection) -> None:
        """A leg adopted whose outcome the journal has ``unknown`` (its answer never came
        before the restart) may not be at the venue: its side is watched on the book until
        its lookup settles it (found resting: :meth:`_rests`; never arrived: placed again),
        as for a leg whose outcome turns unknown while running. No state change comes to
        say so (it was unknown already). With both unknown, both sides are watched, each
        until its own leg is settled."""
        unknown = [o for o in ("stop_loss", "take_profit") if self._unknown(prot, o)]
        for origin in unknown:
            log.warning(
                "trading.native_leg_unknown",
                client_order_id=self._leg_id(prot, origin),
                symbol=prot.symbol,
                watched=origin,
            )
        if len(unknown) == 2:
            prot.missing = "both"
        elif unknown:
            prot.missing = "stop_loss" if unknown[0] == "stop_loss" else "take_profit"

    def _unknown(self, prot: Protection, origin: str) -> bool:
        """Whether ``prot``'s leg of ``origin`` is in the book with an unknown outcome."""
        coid = self._leg_id(prot, origin)
        record = self.context.book.get(coid) if coid else None
        return record is not None and record.state == OrderState.UNKNOWN

    async def _complete_pair(self, key: MarketKey) -> None:
        """Once reconciled, place the leg the protection of ``key`` misses (see
        :meth:`_complete_later`; the protection then, which a fill the reconciliation found
        may have armed anew), with the id :meth:`place` gives it: an earlier try whose
        outcome is unknown is in the journal under that id (written before it was sent), so
        it is looked up by the reconciliation and adopted, never sent twice, and a later
        restart adopts this one."""
        ctx = self.context
        try:
            while not ctx.reconciled:
                await ctx.clock.sleep(ctx.config.poll_interval_s)
        finally:
            self._completing.discard(key)
        prot = self.protections.get(key)  # None: closed since
        amount = abs(ctx.portfolio.amount(*key))
        if prot is None or not prot.native or prot.exiting or amount == 0:
            return
        origin: Literal["stop_loss", "take_profit"] | None
        if prot.missing == "both":  # the absent leg; the other one's outcome is unknown
            origin = (
                "stop_loss"
                if prot.stop_order is None
                else "take_profit"
                if prot.take_order is None
                else None
            )
        else:
            origin = prot.missing
        if origin is None:
            return
        rec = await self._place_leg(prot, origin, amount)
        if rec is not None and rec.state in RESTING and prot.native:
            self._rests(prot, origin)

    def _again(self, prot: Protection, record: OrderRecord) -> bool:
        """``record``, a leg of ``prot``, never reached the venue (looked up and not found past
        its recv window; the process died while sending it, or the request was lost): its
        side is watched on the book and the leg placed again once reconciled (a new id: the
        old one is spent), the other leg kept. False (the caller falls back to the book watch)
        when the other side is already missing, the position is being exited, or
        :data:`AGAIN_MAX` legs of this protection were placed again (a venue that keeps
        losing them)."""
        origin = record.intent.origin
        if (
            origin not in ("stop_loss", "take_profit")
            or prot.missing not in (None, origin, "both")
            or prot.exiting
            or prot.placed_again >= AGAIN_MAX
        ):
            return False
        prot.placed_again += 1
        log.warning(
            "trading.native_leg_again",
            client_order_id=record.client_order_id,
            symbol=prot.symbol,
            leg=origin,
            why="never reached the venue",
        )
        if origin == "stop_loss":
            prot.stop_order = None
        else:
            prot.take_order = None
        self._complete_later(prot)
        return True

    def _rests(self, prot: Protection, origin: Literal["stop_loss", "take_profit"]) -> None:
        """The leg of ``origin`` rests at the venue: its side is no longer watched here."""
        if prot.missing not in (origin, "both"):  # told already (state change, placement)
            return
        log.info("trading.native_pair_completed", symbol=prot.symbol, leg=origin)
        prot.missing = None if prot.missing == origin else other_side(origin)

    @staticmethod
    def _leg_id(prot: Protection, origin: str) -> str | None:
        return prot.stop_order if origin == "stop_loss" else prot.take_order

    async def place(self, prot: Protection) -> None:
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
        coid = base.client_order_id
        while (old := self.context.book.get(coid)) is not None and old.absent:
            coid = client_order_id(coid, "again", origin)  # the leg again under a new id
        intent = OrderIntent(
            **{
                **intent_fields(base),
                "client_order_id": coid,
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
            self.lost(prot, intent.client_order_id, "refused by the risk checks")
            return None
        if rec.state in GONE:
            self.lost(prot, rec.client_order_id, str(rec.state))
        return rec

    def lost(self, prot: Protection, coid: str, why: str) -> None:
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
