"""Venue-side trigger orders (stop-market, take-profit) of contract markets on the live broker.

ccxt sends a contract order carrying ``stopLossPrice`` / ``takeProfitPrice`` to the venue's
conditional-order service (Binance USD-M since late 2025: ``/fapi/v1/algoOrder``, where the
order's client id is ``clientAlgoId``); looking it up, canceling it and listing it open need
ccxt's ``trigger`` parameter. When it fires, the venue places an ordinary market order (Binance:
the algo's ``actualOrderId``, with a client id of the venue's own) whose fills are the
conditional order's fills; a conditional order that ended without a fill (nothing left to
reduce) is expired.

The broker knows its conditional client ids from placing them; after a restart it does not,
so a lookup of an id the ordinary order book does not know tries the conditional one
(:meth:`ConditionalOrders.first`).
"""

from __future__ import annotations

from typing import Any

from cryptomon.events import OrderIntent
from cryptomon.trading.brokers.ccxt_map import dec

TRIGGER_TYPES = frozenset({"stop_market", "stop_limit", "take_profit"})
TRIGGER = {"trigger": True}


class ConditionalOrders:
    """Which client order ids rest in the venue's conditional-order service."""

    def __init__(self) -> None:
        self.ids: set[str] = set()

    @staticmethod
    def applies(intent: OrderIntent, market: dict[str, Any]) -> bool:
        """A trigger order on a contract market is a conditional order."""
        return intent.type in TRIGGER_TYPES and bool(market.get("contract"))

    def placed(self, client_order_id: str) -> None:
        self.ids.add(client_order_id)

    def first(self, client_order_id: str, market: dict[str, Any]) -> list[bool]:
        """The order books to ask, in order (``True`` = conditional): a known conditional id
        there only; another id on a contract market the ordinary book, then the
        conditional one; a spot id the ordinary book only."""
        if client_order_id in self.ids:
            return [True]
        return [False, True] if market.get("contract") else [False]


def lookup_params(client_order_id: str, trigger: bool) -> dict[str, Any]:
    """ccxt params of a lookup or cancel by client order id."""
    params: dict[str, Any] = {"clientOrderId": client_order_id}
    return params | TRIGGER if trigger else params


def actual_order_id(raw: dict[str, Any]) -> str | None:
    """The ordinary order a fired conditional order placed (Binance ``actualOrderId``)."""
    info = raw.get("info") or {}
    value = info.get("actualOrderId")
    return str(value) if value not in (None, "", 0, "0") else None


def settled(raw: dict[str, Any]) -> dict[str, Any]:
    """A conditional order as ccxt parsed it, with a finished-but-unfilled one expired (ccxt
    reads Binance's FINISHED as ``closed`` whatever the executed quantity)."""
    filled = dec(raw.get("filled"))
    if raw.get("status") == "closed" and not filled:
        return {**raw, "status": "expired"}
    return raw
