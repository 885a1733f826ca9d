"""Trading: risk limits, positions, orders, manual orders, cancel, kill switch, stats.

Writes need a token with the ``trade`` scope (risk limits: ``admin``). The order engine
audits every write itself with the token's name as actor.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from cryptomon.api import models_trading as mt
from cryptomon.api.auth import require
from cryptomon.api.errors import ApiError
from cryptomon.api.routing import Call, RouteTable
from cryptomon.api.services import CLOCK, HUB, TRADING
from cryptomon.decimals import plain_decimal
from cryptomon.errors import ConfigError, RiskRejected
from cryptomon.events import AuditEntry, OrderState

table = RouteTable("trading")
_TERMINAL = {str(s) for s in OrderState if s.is_terminal}


def audit(
    call: Call, action: str, payload: dict[str, Any], *, exchange: str = "", symbol: str = ""
) -> None:
    """Publish an ``AuditEntry`` naming the caller's token (the store persists it)."""
    now = call.service(CLOCK).time()
    call.service(HUB).publish(
        AuditEntry(
            exchange=exchange,
            symbol=symbol,
            ts=now,
            ts_recv=now,
            actor=call.principal.name,
            action=action,
            payload=json.dumps(payload, default=str, sort_keys=True),
        )
    )


def _rejected(exc: RiskRejected) -> ApiError:
    return ApiError(
        409,
        f"rejected by risk check: {exc.reason}",
        code="risk_rejected",
        details={"check": exc.check, "reason": exc.reason},
    )


def _config_error(exc: ConfigError) -> ApiError:
    fields = [
        {"field": "body." + p.path.rsplit(".", 1)[-1], "message": p.expected, "value": p.value}
        for p in exc.problems
    ]
    names = ", ".join(str(f["field"]) for f in fields)
    return ApiError(422, f"invalid body: {names}", details={"fields": fields})


def _no_order(coid: str) -> ApiError:
    """The 404 for an order the engine does not know, echoing at most the id's first 64
    characters (a 5,000-character id came back whole, twice)."""
    shown = coid if len(coid) <= 64 else coid[:64] + "..."
    return ApiError(404, f"no order {shown!r}", details={"client_order_id": shown})


def _order_error(exc: ValueError, body: dict[str, Any]) -> ApiError:
    """The 422 for an order the engine found invalid. Its messages start with the field
    (``stop_loss: 150 must be below ...``): details name it as a schema error does."""
    text = str(exc)
    name, sep, rest = text.partition(": ")
    if not sep or name not in body:
        return ApiError(422, f"invalid body: {text}")
    value = body[name]
    if isinstance(value, Decimal):
        value = plain_decimal(value)
    field = {"field": f"body.{name}", "message": rest, "value": value}
    return ApiError(422, f"invalid body: body.{name}: {rest}", details={"fields": [field]})


@table.get("/api/v1/trading/config", scope="read", response=mt.RiskConfigOut, needs=(TRADING,))
async def get_trading_config(call: Call) -> mt.RiskConfigOut:
    """The current risk limits and trading switches."""
    return mt.RiskConfigOut(config=dict(call.service(TRADING).limits()))


@table.post(
    "/api/v1/trading/config",
    scope="admin",
    body=mt.RiskConfigUpdate,
    response=mt.RiskConfigOut,
    needs=(TRADING,),
)
async def update_trading_config(call: Call) -> mt.RiskConfigOut:
    """Validated partial update of the risk limits (audited)."""
    try:
        new = call.service(TRADING).update_limits(call.principal.name, **call.body.changes())
    except ConfigError as exc:
        raise _config_error(exc) from None
    return mt.RiskConfigOut(config=dict(new))


@table.get("/api/v1/trading/positions", scope="read", response=mt.PositionsOut, needs=(TRADING,))
async def list_positions(call: Call) -> mt.PositionsOut:
    """Open positions with marks and PnL."""
    rows = call.service(TRADING).positions()
    return mt.PositionsOut(positions=[mt.PositionOut.model_validate(r) for r in rows])


@table.get(
    "/api/v1/trading/orders",
    scope="read",
    response=mt.OrdersOut,
    query=mt.OrdersQuery,
    needs=(TRADING,),
)
async def list_orders(call: Call) -> mt.OrdersOut:
    """Orders of this run, newest first."""
    q: mt.OrdersQuery = call.query
    rows = call.service(TRADING).orders(symbol=q.symbol, open_only=q.open_only, limit=q.limit)
    return mt.OrdersOut(orders=[mt.OrderOut.model_validate(r) for r in rows])


@table.post(
    "/api/v1/trading/orders",
    scope="trade",
    body=mt.OrderCreate,
    response=mt.OrderOut,
    needs=(TRADING,),
    errors=(409,),
    description="Goes through the same risk checks as automatic orders; a rejection is 409. "
    "An Idempotency-Key header makes a retried request return the same order; the same key "
    "with a different body is 422.",
)
async def place_order(call: Call) -> mt.OrderOut:
    """Place a manual order through the risk checks (audited)."""
    b: mt.OrderCreate = call.body
    key = call.request.headers.get("Idempotency-Key")
    if key is not None:
        try:  # aiohttp keeps bytes that are not UTF-8 as surrogates: no key can hash them
            key.encode("utf-8")
        except UnicodeEncodeError:
            key = ""
        if not 1 <= len(key) <= 128:
            raise ApiError(400, "Idempotency-Key must be UTF-8 text of 1 to 128 characters")
        reused = call.ctx.idempotency.claim(f"{call.principal.name}:{key}", b.model_dump_json())
        if reused:
            conflict = {"idempotency_key": key, **b.model_dump()}
            audit(call, "place_order.idempotency_conflict", conflict)
            raise ApiError(
                422,
                "Idempotency-Key was already used with a different body; use a new key for a "
                "new order",
                code="idempotency_conflict",
                details={"idempotency_key": key},
            )
    fields = b.model_dump()
    try:
        order = await call.service(TRADING).place_manual_order(
            actor=call.principal.name,
            request_id=f"{call.principal.name}:{key}" if key else None,
            **fields,
        )
    except RiskRejected as exc:
        raise _rejected(exc) from None
    except ValueError as exc:
        raise _order_error(exc, fields) from None
    return mt.OrderOut.model_validate(order)


@table.delete(
    "/api/v1/trading/orders/{client_order_id}",
    scope="trade",
    response=mt.OrderOut,
    needs=(TRADING,),
    errors=(409,),
    description="404 for an unknown order, 409 when it is already closed.",
)
async def cancel_order(call: Call) -> mt.OrderOut:
    """Cancel an open order by client order id (audited)."""
    coid = call.request.match_info["client_order_id"]
    trading = call.service(TRADING)
    known = {o["client_order_id"]: o for o in trading.orders(limit=1_000_000)}
    current = known.get(coid)
    if current is None:
        raise _no_order(coid)
    if str(current["state"]) in _TERMINAL:
        raise ApiError(
            409,
            f"order {coid!r} is already {current['state']}",
            details={"client_order_id": coid, "state": str(current["state"])},
        )
    try:
        order = await trading.cancel_order(coid, call.principal.name)
    except LookupError:
        raise _no_order(coid) from None
    return mt.OrderOut.model_validate(order)


@table.post(
    "/api/v1/trading/kill-switch",
    scope="trade",
    body=mt.KillSwitch,
    response=mt.KillSwitchOut,
    needs=(TRADING,),
    errors=(409,),
    description="engage (trade scope): halt trading, cancel open orders, optionally close "
    "positions. release (admin scope): resume (409 until the engine has reconciled with the "
    "broker).",
)
async def kill_switch(call: Call) -> mt.KillSwitchOut:
    """Engage or release the kill switch (audited)."""
    b: mt.KillSwitch = call.body
    trading = call.service(TRADING)
    if b.action == "release":
        require(call.principal, "admin")  # whoever may stop trading may not restart it
    if b.action == "engage":
        result = await trading.kill_switch(call.principal.name, flatten=b.flatten)
        return mt.KillSwitchOut.model_validate(dict(result))
    try:
        state = await trading.resume(call.principal.name)
    except RiskRejected as exc:
        raise _rejected(exc) from None
    return mt.KillSwitchOut(state=str(state))


@table.get("/api/v1/trading/stats", scope="read", response=mt.TradingStatsOut, needs=(TRADING,))
async def trading_stats(call: Call) -> mt.TradingStatsOut:
    """Trading statistics (PnL, win rate, drawdown), the risk state and reconciliation."""
    trading = call.service(TRADING)
    return mt.TradingStatsOut(
        risk_state=str(trading.risk_state),
        reconciled=bool(trading.reconciled),
        stats=dict(trading.stats()),
    )
