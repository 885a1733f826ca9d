"""In-test brokers implementing the Broker protocol around the paper broker: a venue that
drops responses, hangs, answers 429, refuses, or supports native stop orders."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from typing import Any

from cryptomon.errors import TemporaryError
from cryptomon.events import Fill, OrderIntent, OrderState
from cryptomon.trading.brokers.base import (
    BrokerOrder,
    MarketInfo,
    OrderOutcomeUnknown,
    OrderRejectedError,
)
from cryptomon.trading.brokers.paper import PaperBroker


class ScriptedBroker:
    """Delegates to a PaperBroker; ``mode`` scripts what the next placement does:

    - ``ok``: normal;
    - ``drop``: the venue accepts the order, the response is lost (OrderOutcomeUnknown);
    - ``hang``: the venue accepts, the response never comes (the engine's timeout fires);
    - ``429``: refused before reaching the matching engine, with Retry-After, not found later;
    - ``lost``: the request never arrives (OrderOutcomeUnknown, the venue never sees it);
    - ``boom``: the venue accepts, then the broker code raises an unexpected error.
    """

    name = "scripted"

    def __init__(self, paper: PaperBroker, *, native: bool = False) -> None:
        self.paper = paper
        self.mode = "ok"
        self.native = native
        self.placed: Counter[str] = Counter()  # venue-side acceptances per client order id
        self.calls: Counter[str] = Counter()
        self.lookups = 0
        self.native_orders: dict[str, BrokerOrder] = {}
        self.extra_open: list[BrokerOrder] = []
        self.canceled: list[str] = []
        self.balances_override: dict[str, Decimal] | None = None
        self.hold = asyncio.Event()
        self.hold.set()
        self.fail_reads = 0  # fetch_open_orders raises TemporaryError while > 0
        self.reject_types: set[str] = set()  # order types the venue refuses

    async def start(self) -> None:
        await self.paper.start()

    async def stop(self) -> None:
        await self.paper.stop()

    def set_listener(self, cb: Any) -> None:
        self.paper.set_listener(cb)

    async def market(self, symbol: str) -> MarketInfo:
        info = await self.paper.market(symbol)
        if self.native:
            from dataclasses import replace

            info = replace(info, native_stop_loss=True)
        return info

    async def place_order(self, intent: OrderIntent) -> BrokerOrder:
        self.calls[intent.client_order_id] += 1
        mode, self.mode = self.mode, "ok"
        if mode in ("429", "lost"):
            raise OrderOutcomeUnknown(
                intent.client_order_id, mode, retry_after_s=2.0 if mode == "429" else None
            )
        if intent.type in self.reject_types:
            raise OrderRejectedError(intent.client_order_id, f"{intent.type} refused")
        if intent.type in ("stop_market", "take_profit"):
            self.placed[intent.client_order_id] += 1
            order = BrokerOrder(
                client_order_id=intent.client_order_id,
                exchange=intent.exchange,
                symbol=intent.symbol,
                state=OrderState.SUBMITTED,
                side=intent.side,
                type=intent.type,
                amount=intent.amount,
                price=intent.stop_price,
            )
            self.native_orders[intent.client_order_id] = order
            return order
        if intent.client_order_id not in self.placed:
            self.placed[intent.client_order_id] += 1
        result = await self.paper.place_order(intent)
        if mode == "drop":
            raise OrderOutcomeUnknown(intent.client_order_id, "response dropped")
        if mode == "hang":
            await asyncio.Event().wait()
        if mode == "boom":
            raise RuntimeError("unexpected broker failure after the venue accepted")
        return result

    def fill_native(self, coid: str, price: Decimal) -> BrokerOrder:
        """The venue triggers a native stop order: it fills completely at ``price``."""
        o = self.native_orders[coid]
        fill = Fill(
            exchange=o.exchange,
            symbol=o.symbol,
            ts=1.0,
            ts_recv=1.0,
            trade_id=f"native-{coid}",
            client_order_id=coid,
            side=o.side,  # type: ignore[arg-type]
            amount=o.amount,
            price=price,
            fee=Decimal(0),
            fee_currency="USDT",
        )
        from dataclasses import replace

        o = replace(o, state=OrderState.FILLED, filled=o.amount, avg_price=price, fills=(fill,))
        self.native_orders[coid] = o
        return o

    async def cancel_order(self, symbol: str, client_order_id: str) -> BrokerOrder:
        self.canceled.append(client_order_id)
        if client_order_id in self.native_orders:
            from dataclasses import replace

            o = self.native_orders[client_order_id]
            if o.state == OrderState.SUBMITTED:
                o = replace(o, state=OrderState.CANCELED)
                self.native_orders[client_order_id] = o
            return o
        for o in self.extra_open:
            if o.client_order_id == client_order_id:
                return o
        return await self.paper.cancel_order(symbol, client_order_id)

    async def fetch_order(self, symbol: str, client_order_id: str) -> BrokerOrder | None:
        self.lookups += 1
        if client_order_id in self.native_orders:
            return self.native_orders[client_order_id]
        return await self.paper.fetch_order(symbol, client_order_id)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[BrokerOrder]:
        await self.hold.wait()
        if self.fail_reads > 0:
            self.fail_reads -= 1
            raise TemporaryError("venue unreachable")
        return [*await self.paper.fetch_open_orders(symbol), *self.extra_open]

    async def fetch_fills(self, symbol: str, since: float | None = None) -> list[Fill]:
        return await self.paper.fetch_fills(symbol, since)

    async def fetch_balances(self) -> dict[str, Decimal]:
        if self.balances_override is not None:
            return dict(self.balances_override)
        return await self.paper.fetch_balances()
