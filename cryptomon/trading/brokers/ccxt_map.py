"""ccxt's unified order and trade structures as :class:`BrokerOrder` and :class:`Fill`.

Amounts, prices and fees become ``Decimal`` (through their string form, never a float
round trip); symbols become cryptofeed's ``BASE-QUOTE``; trade ids are qualified with the
venue's market id because many venues number trades per market.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from cryptomon.events import Fill, OrderIntent, OrderState
from cryptomon.market.instruments import expiry_code
from cryptomon.trading.brokers.base import BrokerOrder, MarketInfo, OrderRejectedError

ZERO = Decimal(0)
STATES = {
    "closed": OrderState.FILLED,
    "canceled": OrderState.CANCELED,
    "expired": OrderState.EXPIRED,
    "rejected": OrderState.REJECTED,
    "canceling": OrderState.CANCEL_PENDING,
}
"""ccxt order status -> engine state (``open`` depends on the filled amount)."""


def dec(value: Any) -> Decimal | None:
    """A ccxt number or numeric string as a finite Decimal; None when absent or not a number."""
    if value is None or value == "":
        return None
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        return None
    return out if out.is_finite() else None


def symbol_of(market: dict[str, Any]) -> str:
    """The cryptofeed-normalized symbol of a ccxt market: ``BTC/USDT`` -> ``BTC-USDT``; a
    swap ``BTC/USDT:USDT`` -> ``BTC-USDT-PERP``; a dated future -> ``BTC-USD-22K27``."""
    pair = f"{market['base']}-{market['quote']}"
    if market.get("swap"):
        return f"{pair}-PERP"
    expiry = market.get("expiry")
    if market.get("future") and expiry:
        return f"{pair}-{expiry_code(int(expiry) / 1000)}"
    return pair


def order_type(raw: dict[str, Any]) -> str:
    """The engine's order type of a ccxt order (trigger prices make stop / take-profit)."""
    base = str(raw.get("type") or "market")
    if raw.get("takeProfitPrice"):
        return "take_profit"
    if raw.get("triggerPrice") or raw.get("stopPrice"):
        return "stop_limit" if base == "limit" else "stop_market"
    return "limit" if base == "limit" else "market"


def to_order(
    raw: dict[str, Any],
    m: dict[str, Any],
    *,
    exchange: str,
    now: float,
    intent: OrderIntent | None = None,
    client_order_id: str | None = None,
) -> BrokerOrder:
    """A ccxt order as a BrokerOrder. The client order id is the intent's or the one asked
    for when known (a cancel answer may carry the cancel request's own id)."""
    cid = (
        intent.client_order_id
        if intent is not None
        else client_order_id or str(raw.get("clientOrderId") or "")
    )
    oid = str(raw["id"]) if raw.get("id") is not None else None
    filled = dec(raw.get("filled")) or ZERO
    amount = dec(raw.get("amount"))
    if amount is None:
        amount = intent.amount if intent is not None else filled
    status = raw.get("status")
    if status == "open" or (status is None and oid):
        state = OrderState.PARTIALLY_FILLED if filled > 0 else OrderState.SUBMITTED
    else:
        state = STATES.get(str(status), OrderState.UNKNOWN)
    venue = intent.exchange if intent is not None else exchange
    fills = tuple(
        to_fill(t, m, cid, exchange=venue, now=now, raw=raw) for t in raw.get("trades") or ()
    )
    ts = raw.get("lastUpdateTimestamp") or raw.get("timestamp")
    return BrokerOrder(
        client_order_id=cid,
        exchange=venue,
        symbol=symbol_of(m),
        state=state,
        side=str(raw.get("side") or (intent.side if intent else "")),
        type=intent.type if intent is not None else order_type(raw),
        amount=amount,
        filled=filled,
        price=dec(raw.get("price")) or None,
        avg_price=dec(raw.get("average")) or None,
        exchange_order_id=oid,
        fills=fills,
        ts=ts / 1000 if ts else now,
    )


def to_fill(
    t: dict[str, Any],
    m: dict[str, Any],
    cid: str,
    *,
    exchange: str,
    now: float,
    raw: dict[str, Any] | None = None,
) -> Fill:
    """A ccxt trade (alone, or inside the order ``raw``) as a Fill of order ``cid``."""
    fee = t.get("fee") or {}
    ts_ms = t.get("timestamp") or (raw or {}).get("timestamp")
    oid = t.get("order") or (raw or {}).get("id")
    side = t.get("side") or (raw or {}).get("side") or ""
    return Fill(
        exchange=exchange,
        symbol=symbol_of(m),
        ts=ts_ms / 1000 if ts_ms else now,
        ts_recv=now,
        trade_id=f"{m['id']}:{t.get('id')}",
        client_order_id=cid,
        side="buy" if side == "buy" else "sell",
        amount=dec(t.get("amount")) or ZERO,
        price=dec(t.get("price")) or ZERO,
        fee=dec(fee.get("cost")) or ZERO,
        fee_currency=str(fee.get("currency") or m["quote"]),
        liquidity="maker" if t.get("takerOrMaker") == "maker" else "taker",
        exchange_order_id=str(oid) if oid is not None else None,
    )


def step_size(ex: Any, precision: Any) -> Decimal:
    """A ccxt precision as a step size, whatever the exchange's precision mode."""
    from ccxt.base.decimal_to_precision import TICK_SIZE

    value = dec(precision)
    if value is None:
        return Decimal("1e-8")
    if ex.precisionMode == TICK_SIZE:
        return value
    return Decimal(1).scaleb(-int(value))  # DECIMAL_PLACES (and digits as an approximation)


def market_info(ex: Any, m: dict[str, Any], symbol: str, *, native: bool) -> MarketInfo:
    """The venue limits of a ccxt market; ``native``: SL/TP legs may rest on the venue."""
    precision = m.get("precision") or {}
    limits = m.get("limits") or {}
    has = ex.has or {}
    # Venue-side protection needs both legs (stop-loss and take-profit) resting at once.
    # On spot markets each resting sell locks the base asset, so the second leg would be
    # refused for insufficient balance: native legs only on contract markets.
    native = bool(
        native
        and has.get("createStopLossOrder")
        and has.get("createTakeProfitOrder")
        and m.get("contract")
    )
    return MarketInfo(
        symbol=symbol,
        base=m["base"],
        quote=m["quote"],
        tick_size=step_size(ex, precision.get("price")),
        lot_size=step_size(ex, precision.get("amount")),
        min_amount=dec((limits.get("amount") or {}).get("min")) or ZERO,
        min_notional=dec((limits.get("cost") or {}).get("min")) or ZERO,
        max_leverage=dec((limits.get("leverage") or {}).get("max")) or Decimal(1),
        native_stop_loss=native,
    )


def order_request(
    ex: Any, intent: OrderIntent, m: dict[str, Any]
) -> tuple[str, float, float | None, dict[str, Any]]:
    """ccxt (type, amount, price, params) for an intent, rounded to the market's precision."""
    sym = m["symbol"]
    amount = float(ex.amount_to_precision(sym, str(intent.amount)))
    params: dict[str, Any] = {"clientOrderId": intent.client_order_id}
    price: float | None = None
    kind = intent.type
    if kind in {"limit", "stop_limit"}:
        if intent.price is None:
            raise OrderRejectedError(intent.client_order_id, f"{kind} order without a price")
        price = float(ex.price_to_precision(sym, str(intent.price)))
    if kind in {"stop_market", "stop_limit", "take_profit"}:
        trigger = intent.stop_price if intent.stop_price is not None else intent.price
        if trigger is None:
            raise OrderRejectedError(intent.client_order_id, f"{kind} order without a stop")
        key = "takeProfitPrice" if kind == "take_profit" else "stopLossPrice"
        params[key] = float(ex.price_to_precision(sym, str(trigger)))
    ccxt_type = "limit" if kind in {"limit", "stop_limit"} else "market"
    if intent.reduce_only and m.get("contract"):
        params["reduceOnly"] = True
    return ccxt_type, amount, price, params
