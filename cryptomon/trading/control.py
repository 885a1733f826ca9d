"""Operator-facing methods of the engine (the API layer calls these; see ``engine.py``).

Every manual action (orders, cancels, kill switch, resume, limit changes) is published as an
``AuditEntry`` before it takes effect; manual orders pass the same risk checks as automatic
ones.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from cryptomon.config import TradingConfig, normalize_symbol, problems_from
from cryptomon.errors import ConfigError, Problem, RiskRejected
from cryptomon.events import OrderIntent, Side, Signal, new_id
from cryptomon.trading.execution import EngineCore
from cryptomon.trading.orders import client_order_id
from cryptomon.trading.protection import round_down
from cryptomon.trading.risk import Limits, RiskState

LIMIT_FIELDS = (
    "auto_trading_enabled",
    "max_position_size",
    "risk_percentage",
    "stop_loss_percentage",
    "take_profit_percentage",
    "trailing_stop_percentage",
    "max_open_positions",
    "max_symbol_exposure",
    "max_total_exposure",
    "daily_loss_limit",
    "max_orders_per_minute",
    "price_band_percentage",
    "max_leverage",
    "allow_short",
    "min_signal_strength",
    "kill_switch_flatten",
)


class EngineControls(EngineCore):
    """Manual orders, cancels, kill switch, resume, limits and read views."""

    def _exit_intent(
        self,
        key: tuple[str, str],
        amount: Decimal,
        origin: Any,
        *,
        ref: str,
        leg: str,
        signal: Signal | None = None,
    ) -> OrderIntent:
        pos = self.portfolio.amount(*key)
        side: Side = "sell" if pos > 0 else "buy"
        info = self._infos.get(key[1])
        if info is not None and info.lot_size > 0 and amount % info.lot_size != 0:
            amount = round_down(amount, info.lot_size)
        now = self._now()
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

    # ------------------------------------------------------------------ API

    def positions(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in self.portfolio.open_positions()]

    def orders(
        self, symbol: str | None = None, open_only: bool = False, limit: int = 100
    ) -> list[dict[str, Any]]:
        recs = self.book.open() if open_only else self.book.all()
        recs = [r for r in recs if symbol is None or r.intent.symbol == symbol]
        recs.sort(key=lambda r: r.intent.ts, reverse=True)
        return [r.to_dict() for r in recs[: max(0, limit)]]

    def stats(self) -> dict[str, Any]:
        out = self.portfolio.stats()
        out.update(
            risk_state=str(self.risk_state),
            risk_reason=self.state_reason,
            reconciled=self.reconciled,
            open_orders=len(self.book.open()),
        )
        return out

    def limits(self) -> dict[str, Any]:
        return {k: getattr(self.config, k) for k in LIMIT_FIELDS}

    def update_limits(self, actor: str, **fields: Any) -> dict[str, Any]:
        bad = [k for k in fields if k not in LIMIT_FIELDS]
        if bad:
            raise ConfigError(
                [
                    Problem(f"trading.{k}", fields[k], "one of " + ", ".join(LIMIT_FIELDS))
                    for k in bad
                ]
            )
        data = {**self.config.model_dump(), **fields}
        try:
            new = TradingConfig.model_validate(data)
        except ValidationError as exc:
            where = ", ".join(sorted(fields))
            raise ConfigError(
                [
                    Problem(
                        f"trading.{where if p.path == 'config' else p.path}",
                        fields if p.path == "config" else p.value,
                        p.expected,
                    )
                    for p in problems_from(exc)
                ]
            ) from None
        self.config = new
        self._limits = Limits.from_config(new)
        self.audit(actor, "update_limits", {"changes": fields})
        return self.limits()

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
        sym = normalize_symbol(symbol)
        amt, px = _decimal("amount", amount), _decimal("price", price, optional=True)
        sl = _decimal("stop_loss", stop_loss, optional=True)
        tp = _decimal("take_profit", take_profit, optional=True)
        if amt is None or amt <= 0:
            raise ValueError(f"amount: expected a positive number, got {amount!r}")
        if type == "limit" and px is None:
            raise ValueError("price: a limit order needs a price")
        now = self._now()
        ref = request_id or new_id()  # no key from the caller: a fresh order each time
        intent = OrderIntent(
            exchange=exchange.lower(),
            symbol=sym,
            ts=now,
            ts_recv=now,
            client_order_id=client_order_id(ref, "manual", "manual"),
            side=side,  # type: ignore[arg-type]
            type=type,  # type: ignore[arg-type]
            amount=amt,
            price=px if type == "limit" else None,
            stop_loss=sl,
            take_profit=tp,
            reduce_only=reduce_only,
            origin="manual",
        )
        self.audit(actor, "place_order", {**fields_of(intent), "request_id": request_id})
        record = await self.submit(intent)
        return record.to_dict()

    async def cancel_order(self, client_order_id: str, actor: str) -> dict[str, Any]:
        record = self.book.get(client_order_id)
        if record is None:
            raise LookupError(f"no order with client_order_id {client_order_id!r}")
        self.audit(
            actor,
            "cancel_order",
            {"client_order_id": client_order_id, "symbol": record.intent.symbol},
        )
        await self.cancel(record)
        return record.to_dict()

    async def kill_switch(self, actor: str, flatten: bool | None = None) -> dict[str, Any]:
        flatten = self.config.kill_switch_flatten if flatten is None else flatten
        self.audit(actor, "kill_switch", {"flatten": flatten})
        reason = f"kill switch by {actor}" + (" (flatten)" if flatten else "")
        if self.risk_state == RiskState.HALTED:
            self._risk_event("kill_switch", reason)
        self.set_risk_state(RiskState.HALTED, reason, kind="kill_switch")
        canceled = []
        for record in self.book.open():
            await self.cancel(record)
            canceled.append(record.client_order_id)
        flattened = []
        if flatten:
            now = self._now()
            for pos in self.portfolio.open_positions():
                key = (pos.exchange, pos.symbol)
                intent = self._exit_intent(
                    key,
                    abs(pos.amount),
                    "kill_switch",
                    ref=f"kill:{actor}:{now}",
                    leg=f"{key[0]}:{key[1]}",
                )
                try:
                    rec = await self.submit(intent)
                    flattened.append(rec.to_dict())
                except RiskRejected as exc:
                    flattened.append({"symbol": pos.symbol, "rejected": exc.reason})
        return {"state": str(self.risk_state), "canceled": canceled, "flatten": flattened}

    async def resume(self, actor: str) -> str:
        if not self.reconciled:
            raise RiskRejected("not reconciled with the broker yet", check="reconcile")
        self.audit(actor, "resume", {"from": str(self.risk_state)})
        self.set_risk_state(RiskState.ACTIVE, f"resumed by {actor}")
        return str(self.risk_state)


def fields_of(intent: OrderIntent) -> dict[str, Any]:
    return {k: getattr(intent, k) for k in OrderIntent.__dataclass_fields__}


def _decimal(name: str, value: Any, *, optional: bool = False) -> Decimal | None:
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
