"""Trading: risk limits, positions, orders, manual orders, cancel, kill switch, stats.

Every write needs a token with the ``trade`` scope (config changes: ``admin``) and is
audited: an ``AuditEntry`` naming the token goes on the hub (the store persists it).
"""

from __future__ import annotations

import json
from typing import Any

from cryptomon.api import models_trading as mt
from cryptomon.api.errors import ApiError
from cryptomon.api.routing import Call, RouteTable
from cryptomon.api.services import CLOCK, HUB, TRADING
from cryptomon.errors import RiskRejected
from cryptomon.events import AuditEntry

table = RouteTable("trading")


def audit(
    call: Call, action: str, payload: dict[str, Any], *, exchange: str = "", symbol: str = ""
) -> None:
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


@table.get("/api/v1/trading/config", scope="read", response=mt.RiskConfigOut, needs=(TRADING,))
async def get_trading_config(call: Call) -> mt.RiskConfigOut:
    """The current risk limits and trading switches."""
    return mt.RiskConfigOut(config=dict(call.service(TRADING).risk_config()))


@table.post(
    "/api/v1/trading/config",
    scope="admin",
    body=mt.RiskConfigUpdate,
    response=mt.RiskConfigOut,
    needs=(TRADING,),
)
async def update_trading_config(call: Call) -> mt.RiskConfigOut:
    """Validated partial update of the risk limits (audited)."""
    changes = call.body.changes()
    try:
        new = await call.service(TRADING).update_risk_config(actor=call.principal.name, **changes)
    except ValueError as exc:
        raise ApiError(422, f"invalid body: {exc}", details={"fields": sorted(changes)}) from None
    audit(call, "trading.config.update", changes)
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
    """Orders of this run, open ones first."""
    q: mt.OrdersQuery = call.query
    rows = await call.service(TRADING).orders(symbol=q.symbol, open_only=q.open_only, limit=q.limit)
    return mt.OrdersOut(orders=[mt.OrderOut.model_validate(r) for r in rows])


@table.post(
    "/api/v1/trading/orders",
    scope="trade",
    body=mt.OrderCreate,
    response=mt.OrderOut,
    needs=(TRADING,),
    errors=(409,),
    description="Goes through the same risk checks as automatic orders; a rejection is 409.",
)
async def place_order(call: Call) -> mt.OrderOut:
    """Place a manual order through the risk checks."""
    b: mt.OrderCreate = call.body
    fields = b.model_dump()
    try:
        order = await call.service(TRADING).place_manual_order(actor=call.principal.name, **fields)
    except RiskRejected as exc:
        audit(
            call,
            "trading.order.rejected",
            {**fields, "reason": exc.reason},
            exchange=b.exchange,
            symbol=b.symbol,
        )
        raise _rejected(exc) from None
    except LookupError as exc:
        raise ApiError(404, str(exc)) from None
    except ValueError as exc:
        raise ApiError(422, f"invalid body: {exc}") from None
    out = mt.OrderOut.model_validate(order)
    audit(
        call,
        "trading.order.place",
        {**fields, "client_order_id": out.client_order_id},
        exchange=b.exchange,
        symbol=b.symbol,
    )
    return out


@table.delete(
    "/api/v1/trading/orders/{client_order_id}",
    scope="trade",
    response=mt.OrderOut,
    needs=(TRADING,),
    errors=(409,),
    description="404 for an unknown order, 409 when it is already closed.",
)
async def cancel_order(call: Call) -> mt.OrderOut:
    """Cancel an open order by client order id."""
    coid = call.request.match_info["client_order_id"]
    try:
        order = await call.service(TRADING).cancel_order(coid, actor=call.principal.name)
    except LookupError:
        raise ApiError(404, f"no order {coid!r}", details={"client_order_id": coid}) from None
    except ValueError as exc:  # e.g. already filled/canceled
        raise ApiError(
            409, f"order {coid!r} cannot be canceled: {exc}", details={"client_order_id": coid}
        ) from None
    audit(call, "trading.order.cancel", {"client_order_id": coid})
    return mt.OrderOut.model_validate(order)


@table.post(
    "/api/v1/trading/kill-switch",
    scope="trade",
    body=mt.KillSwitch,
    response=mt.KillSwitchOut,
    needs=(TRADING,),
)
async def kill_switch(call: Call) -> mt.KillSwitchOut:
    """Engage (halt trading, cancel orders) or release the kill switch (audited)."""
    b: mt.KillSwitch = call.body
    result = await call.service(TRADING).kill_switch(
        actor=call.principal.name, reason=b.reason, engage=b.engage
    )
    audit(call, "trading.kill_switch", {"engage": b.engage, "reason": b.reason})
    return mt.KillSwitchOut.model_validate(result)


@table.get("/api/v1/trading/stats", scope="read", response=mt.TradingStatsOut, needs=(TRADING,))
async def trading_stats(call: Call) -> mt.TradingStatsOut:
    """Trading statistics (PnL, win rate, drawdown) and the risk state."""
    trading = call.service(TRADING)
    return mt.TradingStatsOut(risk_state=str(trading.risk_state()), stats=dict(trading.stats()))
