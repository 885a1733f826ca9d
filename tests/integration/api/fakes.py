"""In-test stand-ins: ``FakeTrading`` implements the documented TradingEngine API with
in-memory state (for error paths that are awkward to reach on the paper broker; it fails
like the real one: LookupError, ConfigError, RiskRejected); ``HealthSource`` gives the real
FeedManager a networkless source whose real FeedHealth the test drives."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from cryptomon.clock import Clock
from cryptomon.errors import ConfigError, Problem, RiskRejected
from cryptomon.feeds.health import FeedHealth
from cryptomon.feeds.manager import FeedManager
from cryptomon.hub import Hub


class FakeTrading:
    """An order engine with the documented API of ``TradingEngine``: in-memory orders, one
    risk rule (max amount), a kill switch, limits validated like the config."""

    def __init__(self, *, max_amount: Decimal = Decimal(1)) -> None:
        self._limits: dict[str, Any] = {"max_position_size": 1000.0, "max_open_positions": 3}
        self.max_amount = max_amount
        self.book: dict[str, dict[str, Any]] = {}
        self.risk_state = "active"
        self.reconciled = True
        self.audits: list[tuple[str, str]] = []
        self.request_ids: dict[str, str] = {}

    def limits(self) -> Mapping[str, Any]:
        return dict(self._limits)

    def update_limits(self, actor: str, **fields: Any) -> Mapping[str, Any]:
        if fields.get("max_open_positions", 1) > 100:
            raise ConfigError(
                [
                    Problem(
                        "trading.max_open_positions",
                        fields["max_open_positions"],
                        "at most 100 here",
                    )
                ]
            )
        self.audits.append((actor, "update_limits"))
        self._limits.update(fields)
        return dict(self._limits)

    def positions(self) -> list[dict[str, Any]]:
        return [
            {
                "exchange": "binance",
                "symbol": "BTC-USDT",
                "amount": "0.5",
                "avg_price": "100",
                "mark_price": "110",
                "notional": "55",
                "realized_pnl": "0",
                "unrealized_pnl": "5",
                "fees": "0.1",
                "opened": 1.0,
                "updated": 2.0,
            }
        ]

    def orders(
        self, symbol: str | None = None, open_only: bool = False, limit: int = 100
    ) -> list[dict[str, Any]]:
        rows = [
            o
            for o in reversed(self.book.values())
            if (symbol is None or o["symbol"] == symbol)
            and (not open_only or o["state"] == "submitted")
        ]
        return rows[:limit]

    async def place_manual_order(
        self, *, actor: str, request_id: str | None = None, **f: Any
    ) -> dict[str, Any]:
        if request_id is not None and request_id in self.request_ids:
            return self.book[self.request_ids[request_id]]
        if self.risk_state == "halted":
            raise RiskRejected("trading is halted", check="risk_state")
        if Decimal(str(f["amount"])) > self.max_amount:
            raise RiskRejected(f"amount above {self.max_amount}", check="max_position_size")
        self.audits.append((actor, "place_order"))
        coid = f"cmM{len(self.book) + 1:06d}"
        order = {
            "client_order_id": coid,
            "exchange": f["exchange"],
            "symbol": f["symbol"],
            "side": f["side"],
            "type": f["type"],
            "state": "submitted",
            "amount": str(f["amount"]),
            "price": None if f.get("price") is None else str(f["price"]),
            "filled": "0",
            "origin": "manual",
        }
        self.book[coid] = order
        if request_id is not None:
            self.request_ids[request_id] = coid
        return order

    async def cancel_order(self, client_order_id: str, actor: str) -> dict[str, Any]:
        order = self.book.get(client_order_id)
        if order is None:
            raise LookupError(client_order_id)
        self.audits.append((actor, "cancel_order"))
        if order["state"] == "submitted":
            order["state"] = "canceled"
        return order

    async def kill_switch(self, actor: str, flatten: bool | None = None) -> dict[str, Any]:
        self.audits.append((actor, "kill_switch"))
        self.risk_state = "halted"
        canceled = [o["client_order_id"] for o in self.book.values() if o["state"] == "submitted"]
        for coid in canceled:
            self.book[coid]["state"] = "canceled"
        return {"state": "halted", "canceled": canceled, "flatten": []}

    async def resume(self, actor: str) -> str:
        if not self.reconciled:
            raise RiskRejected("not reconciled with the broker yet", check="reconcile")
        self.risk_state = "active"
        return "active"

    def stats(self) -> Mapping[str, Any]:
        return {
            "trades": 0,
            "net_pnl": "0",
            "open_orders": len(self.orders(open_only=True)),
            "reconciled": self.reconciled,
        }


class HealthSource:
    """A feed source without a network connection: a real ``FeedHealth`` the test drives
    through the same calls a cryptofeed connection makes."""

    def __init__(self, exchange: str, channels: list[str], *, hub: Hub, clock: Clock) -> None:
        self.name = f"feed:{exchange}"
        self.exchange = exchange
        self.health = FeedHealth(exchange, channels, hub=hub, clock=clock)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def connected(self, *, reconnects: int = 0) -> None:
        """(Re)connect ``reconnects + 1`` times, then receive one message per channel."""
        for i in range(reconnects + 1):
            self.health.on_connecting()
            self.health.on_connected(reconnect=i > 0)
        for ch in self.health.channels.values():
            ch.messages += 1  # what the converter does for each message
            ch.last = self.health.clock.monotonic()
            self.health.became_live(ch)

    def disconnected(self) -> None:
        self.health.on_disconnected("connection reset by peer")


def feed_manager(hub: Hub, clock: Clock, *, live: bool = True) -> tuple[FeedManager, HealthSource]:
    """The real FeedManager over one networkless binance source (trades, orderbook)."""
    src = HealthSource("binance", ["trades", "orderbook"], hub=hub, clock=clock)
    if live:
        src.connected(reconnects=2)
    return FeedManager([src], hub=hub, clock=clock), src
