"""Operator-facing controls: the methods the API layer calls (through the engine).

Every manual action (orders, cancels, kill switch, resume, limit changes) is published as an
``AuditEntry`` before it takes effect; manual orders pass the same risk checks as automatic
ones. Limit changes go through the shared :class:`~cryptomon.trading.runtime.TradingRuntime`.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal, InvalidOperation
from typing import Any

import structlog

from cryptomon.config import normalize_symbol
from cryptomon.errors import RiskRejected
from cryptomon.events import OrderIntent, RiskEvent, new_id
from cryptomon.trading.context import EngineContext
from cryptomon.trading.executor import OrderExecutor
from cryptomon.trading.journal import FLATTEN_CHECK, HaltJournal
from cryptomon.trading.orders import client_order_id, intent_fields
from cryptomon.trading.position import money
from cryptomon.trading.protection import Protection
from cryptomon.trading.risk import RiskState

log = structlog.get_logger()


class TradingControls:
    """Manual orders, cancels, kill switch, resume, limits and read views."""

    def __init__(
        self,
        *,
        context: EngineContext,
        executor: OrderExecutor,
        protections: dict[tuple[str, str], Protection] | None = None,
        not_acted: Counter[str] | None = None,
    ) -> None:
        self.context = context
        self.executor = executor
        self.protections = protections if protections is not None else {}
        # the signal trader's count of the signals that made no order, by reason
        self.not_acted: Counter[str] = not_acted if not_acted is not None else Counter()

    # ------------------------------------------------------------------ read views

    def positions(self) -> list[dict[str, Any]]:
        """The open positions, each with its protection's current levels: the stop as it
        stands (trailed, restored after a restart, or a venue leg's price), the take-profit,
        the best price a trailing stop follows and where the stop is watched."""
        out = []
        for pos in self.context.portfolio.open_positions():
            row = pos.to_dict()
            prot = self.protections.get((pos.exchange, pos.symbol))
            if prot is not None:
                row.update(
                    stop_loss=money(prot.stop),
                    take_profit=None if prot.take is None else money(prot.take),
                    trailing_best=money(prot.best) if prot.trail_pct is not None else None,
                    stop_at="book" if prot.stop_on_book else "venue",
                )
            out.append(row)
        return out

    def orders(
        self, symbol: str | None = None, open_only: bool = False, limit: int = 100
    ) -> list[dict[str, Any]]:
        book = self.context.book
        records = book.open() if open_only else book.all()
        records = [r for r in records if symbol is None or r.intent.symbol == symbol]
        records.sort(key=lambda r: r.intent.ts, reverse=True)
        return [r.to_dict() for r in records[: max(0, limit)]]

    def stats(self) -> dict[str, Any]:
        ctx = self.context
        out = ctx.portfolio.stats()
        out.update(
            risk_state=str(ctx.risk_state),
            risk_reason=ctx.state_reason,
            # markets where the venue holds a position the engine did not open: what to do
            unmanaged_positions=dict(ctx.unmanaged),
            reconciled=ctx.reconciled,
            open_orders=len(ctx.book.open()),
            # the signals that made no order, by reason (entries.NOT_ACTED), most first
            signals_not_acted=dict(self.not_acted.most_common()),
        )
        broker_stats = getattr(ctx.broker, "stats", None)  # the paper broker's book-mid checks
        if callable(broker_stats):
            out["broker"] = broker_stats()
        return out

    def limits(self) -> dict[str, Any]:
        return self.context.runtime.values()

    def update_limits(self, actor: str, **fields: Any) -> dict[str, Any]:
        """Validated like the config (``ConfigError`` naming each bad key), audited."""
        return self.context.runtime.update(actor, **fields)

    # ------------------------------------------------------------------ actions

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
        if side not in ("buy", "sell"):
            raise ValueError(f"side: expected 'buy' or 'sell', got {side!r}")
        if type not in ("market", "limit"):
            raise ValueError(f"type: expected 'market' or 'limit', got {type!r}")
        market = normalize_symbol(symbol)
        amount_dec = parse_decimal("amount", amount)
        limit_price = parse_decimal("price", price, optional=True)
        stop_price = parse_decimal("stop_loss", stop_loss, optional=True)
        take_price = parse_decimal("take_profit", take_profit, optional=True)
        if amount_dec is None or amount_dec <= 0:
            raise ValueError(f"amount: expected a positive number, got {amount!r}")
        if type == "limit" and limit_price is None:
            raise ValueError("price: a limit order needs a price")
        if not reduce_only:  # an entry's bracket: the exits of the position it opens
            reference = limit_price if type == "limit" else None
            if reference is None:
                reference = self.context.mid(exchange.lower(), market)
            if reference is not None:
                check_bracket(side, reference, stop_price, take_price)
        now = self.context.now()
        ref = request_id or new_id()  # no key from the caller: a fresh order each time
        intent = OrderIntent(
            exchange=exchange.lower(),
            symbol=market,
            ts=now,
            ts_recv=now,
            client_order_id=client_order_id(ref, "manual", "manual"),
            side=side,  # type: ignore[arg-type]
            type=type,  # type: ignore[arg-type]
            amount=amount_dec,
            price=limit_price if type == "limit" else None,
            stop_loss=stop_price,
            take_profit=take_price,
            reduce_only=reduce_only,
            origin="manual",
        )
        self.context.audit(
            actor, "place_order", {**intent_fields(intent), "request_id": request_id}
        )
        record = await self.executor.submit(intent)
        return record.to_dict()

    async def cancel_order(self, client_order_id: str, actor: str) -> dict[str, Any]:
        record = self.context.book.get(client_order_id)
        if record is None:
            raise LookupError(f"no order with client_order_id {client_order_id!r}")
        self.context.audit(
            actor,
            "cancel_order",
            {"client_order_id": client_order_id, "symbol": record.intent.symbol},
        )
        await self.executor.cancel(record)
        return record.to_dict()

    async def kill_switch(self, actor: str, flatten: bool | None = None) -> dict[str, Any]:
        """Halt, cancel every open order and, with ``flatten``, close every position."""
        ctx = self.context
        flatten = ctx.config.kill_switch_flatten if flatten is None else flatten
        ctx.audit(actor, "kill_switch", {"flatten": flatten})
        reason = f"kill switch by {actor}" + (" (flatten)" if flatten else "")
        # stored with the halt: a restart while halted completes a flatten cut short
        check = FLATTEN_CHECK if flatten else ""
        event: RiskEvent | None
        if ctx.risk_state == RiskState.HALTED:
            event = ctx.risk_event("kill_switch", reason, check_name=check)
        else:
            event = ctx.set_risk_state(
                RiskState.HALTED, reason, kind="kill_switch", check_name=check
            )
        if event is not None and isinstance(ctx.journal, HaltJournal):
            # stored now, not after the writer's batch age (a crash in between lost the halt
            # and the flatten asked); in the background: the switch never waits on the database
            ctx.spawn(self._store_halt(ctx.journal, event), "trading-kill-switch-stored")
        canceled: list[str] = []
        pending: list[str] = []  # the cancel not confirmed yet: the poll asks again
        for record in ctx.book.open():
            try:  # one failing cancel must not stop the others or the flatten
                await self.executor.cancel(record)
            except Exception as exc:  # still open: the poll asks again
                log.error(
                    "trading.kill_switch_cancel_failed",
                    client_order_id=record.client_order_id,
                    error=repr(exc),
                )
            (pending if record.is_open else canceled).append(record.client_order_id)
        flattened = await self._flatten(actor) if flatten else []
        return {
            "state": str(ctx.risk_state),
            "canceled": canceled,
            "cancel_pending": pending,
            "flatten": flattened,
        }

    @staticmethod
    async def _store_halt(journal: HaltJournal, event: RiskEvent) -> None:
        try:
            await journal.record_risk_event(event)
        except Exception as exc:  # the writer stores it too, once the database is back
            log.error("trading.halt_unrecorded", error=repr(exc))

    async def cancel_entries(self, actor: str) -> list[str]:
        """Cancel every open order that is not reduce-only (after a restart while halted: the
        kill switch's cancels may not all have gone out); returns their client order ids.
        Reduce-only orders (stop-loss and take-profit legs, exits) stay: they only close."""
        canceled: list[str] = []
        for record in self.context.book.open():
            if record.intent.reduce_only:
                continue
            log.warning(
                "trading.halted_entry_canceled", client_order_id=record.client_order_id, by=actor
            )
            try:
                await self.executor.cancel(record)
            except Exception as exc:  # still open: the poll asks again
                log.error(
                    "trading.halted_cancel_failed",
                    client_order_id=record.client_order_id,
                    error=repr(exc),
                )
            canceled.append(record.client_order_id)
        return canceled

    async def flatten_when_reconciled(self, actor: str) -> list[dict[str, Any]]:
        """The flatten of a kill switch pressed before a restart (the process stopped before
        the flatten had closed everything): once the startup reconciliation has finished,
        every position open then is closed, net of the exits already working, each as soon
        as its market has a price (after a restart the feeds may not have sent one yet).
        Ends when all were sent (or refused), or when trading is resumed meanwhile."""
        ctx = self.context
        out: list[dict[str, Any]] = []
        waiting: set[tuple[str, str]] | None = None
        while ctx.risk_state == RiskState.HALTED:  # resumed meanwhile: the operator decided
            if ctx.reconciled:
                if waiting is None:
                    waiting = {(p.exchange, p.symbol) for p in ctx.portfolio.open_positions()}
                now = ctx.now()
                for key in sorted(waiting):
                    if ctx.mid(*key) is None:
                        continue
                    waiting.discard(key)
                    out.append(await self._flatten_one(key, actor, now))
                if not waiting:
                    break
            await ctx.clock.sleep(ctx.config.poll_interval_s)
        log.warning("trading.flatten_resumed", by=actor, result=out, waiting=sorted(waiting or ()))
        return out

    async def _flatten(self, actor: str) -> list[dict[str, Any]]:
        # an entry on its way when the switch was pressed: its answer first, so the position
        # it opened is closed too
        await self.executor.placements_done()
        now = self.context.now()
        return [
            await self._flatten_one((pos.exchange, pos.symbol), actor, now)
            for pos in self.context.portfolio.open_positions()
        ]

    async def _flatten_one(self, key: tuple[str, str], actor: str, now: float) -> dict[str, Any]:
        """Close one market's position (net of the exits working); what became of it."""
        symbol = key[1]
        try:
            record = await self.executor.close_exposure(
                key, ref=f"kill:{actor}:{now}", leg=f"{key[0]}:{key[1]}"
            )
        except RiskRejected as exc:
            return {"symbol": symbol, "rejected": exc.reason}
        except Exception as exc:  # not sent (e.g. its intent not written): the next goes on
            log.error("trading.flatten_failed", symbol=symbol, error=repr(exc))
            return {"symbol": symbol, "rejected": f"not sent: {exc}"}
        if record is None:  # closes already on their way cover it
            return {"symbol": symbol, "closing": "an exit is already working"}
        return record.to_dict()

    async def resume(self, actor: str) -> str:
        """Back to ``active`` (refused until reconciled)."""
        ctx = self.context
        if not ctx.reconciled:
            raise RiskRejected("not reconciled with the broker yet", check="reconcile")
        ctx.audit(actor, "resume", {"from": str(ctx.risk_state)})
        ctx.set_risk_state(RiskState.ACTIVE, f"resumed by {actor}")
        return str(ctx.risk_state)


def check_bracket(
    side: str, reference: Decimal, stop: Decimal | None, take: Decimal | None
) -> None:
    """A ValueError naming the field when an entry's stop-loss or take-profit is on the wrong
    side of ``reference`` (its limit price, else the mid): it would fire on the next book and
    close the position the entry just opened."""
    buy = side == "buy"
    for name, level, below in (("stop_loss", stop, buy), ("take_profit", take, not buy)):
        if level is None or (level < reference if below else level > reference):
            continue
        where = "below" if below else "above"
        raise ValueError(
            f"{name}: {level} must be {where} the {side}'s price {reference} (the limit price, "
            "else the mid); it would close the position at once"
        )


def parse_decimal(name: str, value: Any, *, optional: bool = False) -> Decimal | None:
    """``value`` as a finite Decimal; a ValueError naming ``name`` otherwise."""
    if value is None:
        if optional:
            return None
        raise ValueError(f"{name}: a number is required")
    try:
        out = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValueError(f"{name}: expected a number, got {value!r}") from None
    if not out.is_finite():
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return out
