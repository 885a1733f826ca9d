"""Protection half of the engine: stop-loss / take-profit (native legs or emulated from the
book, trailing), protective exits, and the daily loss limit. See ``protection.py`` for the
pure pieces (sizing, bracket prices, trigger logic).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

import structlog

from cryptomon.errors import RiskRejected
from cryptomon.events import BookTop, Fill, OrderIntent, OrderState
from cryptomon.trading.control import EngineControls, fields_of
from cryptomon.trading.execution import dec
from cryptomon.trading.orders import OrderRecord, client_order_id
from cryptomon.trading.portfolio import Position
from cryptomon.trading.protection import Protection, bracket
from cryptomon.trading.risk import RiskState

log = structlog.get_logger()
ZERO = Decimal(0)
S = OrderState
ENTRY_ORIGINS = frozenset({"signal", "manual"})


class GuardedEngine(EngineControls):
    """Protective exits and the daily loss limit on top of the order path and controls."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._daily_day: int | None = None

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
            self._disarm(key)
            self.check_daily_loss()
            return
        if (
            record is not None
            and record.intent.origin in ENTRY_ORIGINS
            and not record.intent.reduce_only
        ):
            self._arm(pos, record.intent)
        self.check_daily_loss()

    def _disarm(self, key: tuple[str, str]) -> None:
        """The position is closed: drop its protection and cancel native legs left open."""
        prot = self.protections.pop(key, None)
        if prot is not None and prot.native:
            for coid in (prot.stop_order, prot.take_order):
                other = self.book.get(coid) if coid else None
                if other is not None and other.is_open:
                    self._spawn(self.cancel(other), f"cancel-leg:{coid}")

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
        ):  # a venue leg is gone: the engine watches the book again
            self._native_lost(prot, record.client_order_id, str(record.state))

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
        """Venue-side stop-loss and take-profit legs (reduce-only) for a filled entry. A leg
        refused (risk or venue) puts the position back on emulation and cancels the other."""
        key = (prot.exchange, prot.symbol)
        amount = abs(self.portfolio.amount(*key))
        prot.native = True
        legs: list[tuple[Literal["stop_loss", "take_profit"], Decimal | None]] = [
            ("stop_loss", prot.stop),
            ("take_profit", prot.take),
        ]
        for origin, price in legs:
            if price is None or not prot.native:
                continue
            base = self._exit_intent(key, amount, origin, ref=prot.entry_id, leg=origin)
            intent = OrderIntent(
                **{
                    **fields_of(base),
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
                rec = await self.submit(intent)
            except RiskRejected:
                self._native_lost(prot, intent.client_order_id, "refused by the risk checks")
                continue
            if rec.state in (S.CANCELED, S.REJECTED, S.EXPIRED):
                self._native_lost(prot, rec.client_order_id, str(rec.state))

    def _native_lost(self, prot: Protection, coid: str, why: str) -> None:
        """A native leg is gone while the position is open: emulate from the book again and
        cancel the other leg (it would lock the coins an emulated exit must sell)."""
        if not prot.native:
            return
        prot.native = False
        log.warning("trading.native_leg_lost", client_order_id=coid, why=why, symbol=prot.symbol)
        for other_id in (prot.stop_order, prot.take_order):
            other = self.book.get(other_id) if other_id and other_id != coid else None
            if other is not None and other.is_open:
                self._spawn(self.cancel(other), f"cancel-leg:{other_id}")

    def on_top(self, top: BookTop) -> None:
        key = (top.exchange, top.symbol)
        if top.bid > 0 and top.ask > 0:
            self.portfolio.observe_price(top.symbol, dec((top.bid + top.ask) / 2))
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
        pos = self.portfolio.positions.get(key)
        if pos is not None and pos.amount != 0:  # a leftover below the lot is dust
            self.sweep_dust(prot.exchange, prot.symbol, pos.mark or pos.avg_price, self._now())
            if pos.amount == 0:
                self._disarm(key)
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
