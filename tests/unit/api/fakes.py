"""Small honest in-test implementations of the API's service Protocols, for subsystems whose
real object is not needed (or not available) in a test. They keep real state and fail like
the real ones (LookupError, ValueError, RiskRejected)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from cryptomon.errors import RiskRejected


class FakeTrading:
    """An order engine with in-memory orders, one risk rule and a kill switch."""

    def __init__(self, *, max_amount: Decimal = Decimal(1)) -> None:
        self.limits: dict[str, Any] = {"max_position_size": 1000.0, "auto_trading_enabled": False}
        self.max_amount = max_amount
        self.orders_by_id: dict[str, dict[str, Any]] = {}
        self.halted = False
        self.calls: list[tuple[str, str]] = []
        self._n = 0

    def risk_config(self) -> Mapping[str, Any]:
        return dict(self.limits)

    async def update_risk_config(self, *, actor: str, **fields: Any) -> Mapping[str, Any]:
        self.calls.append(("config", actor))
        self.limits.update(fields)
        return dict(self.limits)

    def positions(self) -> list[dict[str, Any]]:
        return [
            {
                "exchange": "binance",
                "symbol": "BTC-USDT",
                "amount": Decimal("0.5"),
                "avg_price": Decimal("100"),
                "mark_price": Decimal("110"),
                "realized_pnl": Decimal(0),
                "unrealized_pnl": Decimal(5),
                "fees": Decimal("0.1"),
            }
        ]

    async def orders(
        self, *, symbol: str | None = None, open_only: bool = False, limit: int = 100
    ) -> list[dict[str, Any]]:
        rows = [
            o
            for o in self.orders_by_id.values()
            if (symbol is None or o["symbol"] == symbol)
            and (not open_only or o["state"] == "submitted")
        ]
        return rows[:limit]

    async def place_manual_order(self, *, actor: str, **f: Any) -> dict[str, Any]:
        self.calls.append(("place", actor))
        if self.halted:
            raise RiskRejected("kill switch engaged", check="kill_switch")
        if f["amount"] > self.max_amount:
            raise RiskRejected(f"amount above {self.max_amount}", check="max_position_size")
        self._n += 1
        order = {
            "client_order_id": f"cmM{self._n:06d}",
            "exchange": f["exchange"],
            "symbol": f["symbol"],
            "side": f["side"],
            "type": f["type"],
            "state": "submitted",
            "amount": f["amount"],
            "price": f.get("price"),
            "origin": "manual",
        }
        self.orders_by_id[order["client_order_id"]] = order
        return order

    async def cancel_order(self, client_order_id: str, *, actor: str) -> dict[str, Any]:
        order = self.orders_by_id.get(client_order_id)
        if order is None:
            raise LookupError(client_order_id)
        if order["state"] != "submitted":
            raise ValueError(f"order is {order['state']}")
        order["state"] = "canceled"
        return order

    async def kill_switch(self, *, actor: str, reason: str, engage: bool = True) -> dict[str, Any]:
        self.halted = engage
        return {"engaged": engage, "state": "halted" if engage else "active", "reason": reason}

    def stats(self) -> Mapping[str, Any]:
        return {"trades": 0, "net_pnl": "0", "orders": {"submitted": len(self.orders_by_id)}}

    def risk_state(self) -> str:
        return "halted" if self.halted else "active"

    def reconciled(self) -> bool:
        return True


class FakeFeeds:
    """A feed manager whose per-exchange health the test sets."""

    def __init__(self, state: str = "live") -> None:
        self.state = state

    def health(self) -> Mapping[str, Any]:
        return {
            "binance": {
                "state": self.state,
                "reconnects": 2,
                "channels": {
                    "trades": {"state": self.state, "messages": 10, "last_message_age_s": 0.5}
                },
            }
        }


class FakeDetectors:
    def stats(self) -> Mapping[str, Any]:
        return {
            "anomalies": {"volume": 3, "price": 1},
            "latency_s": {"buckets": [0.001, 0.01, 0.1], "counts": [5, 2, 1], "sum": 0.05},
        }
