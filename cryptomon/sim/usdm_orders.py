"""Order placement and execution of the simulator's USD-M account (:mod:`cryptomon.sim.usdm`):
market orders fill at the set price with the taker fee, stop-market and take-profit-market
orders rest until the price crosses their trigger; reduce-only orders never increase or flip
a position; an order that grows a position beyond the free margin is refused (-2019).
Realized PnL and commissions go to the wallet and the income history."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, Protocol


class UsdmBook(Protocol):
    """What placing and executing orders needs of :class:`cryptomon.sim.usdm_book.UsdmBook`
    (which imports this module): prices, positions, the order and trade lists, the wallet."""

    wallet: Decimal
    taker_fee: Decimal
    positions: dict[str, Any]
    orders: list[dict[str, Any]]
    trades: list[dict[str, Any]]

    def price_of(self, symbol: str) -> Decimal: ...

    def position_of(self, symbol: str) -> Any: ...

    def add_income(self, symbol: str, kind: str, amount: Decimal, now: int) -> None: ...

    def margin_free(self) -> Decimal: ...

    def next_id(self) -> int: ...


ZERO = Decimal(0)
STEP = Decimal("0.001")
_TYPES = ("MARKET", "STOP_MARKET", "TAKE_PROFIT_MARKET")


class UsdmError(Exception):
    """A Binance error answer: HTTP status, code, message."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def number(params: dict[str, str], key: str) -> Decimal:
    try:
        value = Decimal(params[key])
    except (KeyError, InvalidOperation):
        raise UsdmError(
            400, -1102, f"Mandatory parameter '{key}' was not sent or is bad."
        ) from None
    return value


def place(book: UsdmBook, params: dict[str, str]) -> dict[str, Any]:
    """``POST /fapi/v1/order``: validate, record, execute a market order at once."""
    symbol = params.get("symbol", "")
    price = book.price_of(symbol)
    kind = params.get("type", "").upper()
    if kind not in _TYPES:
        raise UsdmError(400, -1116, f"Invalid orderType {kind}; the simulator has {_TYPES}")
    qty = number(params, "quantity")
    if qty <= 0 or qty % STEP:
        raise UsdmError(400, -1111, "Precision is over the maximum defined for this asset.")
    cid = params.get("newClientOrderId") or f"sim{book.next_id()}"
    if any(o["clientOrderId"] == cid and o["status"] != "CANCELED" for o in book.orders):
        raise UsdmError(400, -4015, "Client order id is not valid. Duplicate order sent.")
    reduce_only = params.get("reduceOnly", "false").lower() == "true"
    side = params.get("side", "").upper()
    pos = book.positions.get(symbol)
    held = pos.qty if pos is not None else ZERO
    if kind == "MARKET" and reduce_only and not reduces(held, side, qty):
        raise UsdmError(400, -2022, "ReduceOnly Order is rejected.")
    if kind == "MARKET" and not reduce_only:
        signed = qty if side == "BUY" else -qty
        grows = max(abs(held + signed) - abs(held), ZERO)
        if grows * price / book.position_of(symbol).leverage > book.margin_free():
            raise UsdmError(400, -2019, "Margin is insufficient.")
    now = _now()
    order = {
        "orderId": book.next_id(),
        "symbol": symbol,
        "status": "NEW",
        "clientOrderId": cid,
        "price": "0",
        "avgPrice": "0",
        "origQty": str(qty),
        "executedQty": "0",
        "cumQuote": "0",
        "timeInForce": "GTC",
        "type": kind,
        "origType": kind,
        "reduceOnly": reduce_only,
        "closePosition": False,
        "side": side,
        "positionSide": "BOTH",
        "stopPrice": params.get("stopPrice", "0"),
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "time": now,
        "updateTime": now,
    }
    book.orders.append(order)
    if kind == "MARKET":
        execute(book, order, price, now)
    return order


FORCED_IDS = {  # Binance's client ids of the orders it places itself
    "liquidation": "autoclose-",
    "adl": "adl_autoclose",
    "settlement": "settlement_autoclose-",
}


def force_close(book: UsdmBook, symbol: str, price: Decimal, kind: str, now: int) -> dict[str, Any]:
    """The venue closes the whole position of ``symbol`` itself at ``price`` (``kind``
    liquidation, adl or settlement): one filled LIMIT IOC order of its own with Binance's
    client id (``autoclose-…``, ``adl_autoclose``, ``settlement_autoclose-…``), its trade in
    the account's trades with the taker fee (settlement: no fee) and the realized PnL."""
    if kind not in FORCED_IDS:
        raise ValueError(f"unknown forced close {kind!r}: expected one of {sorted(FORCED_IDS)}")
    pos = book.position_of(symbol)
    if pos.qty == 0:
        raise ValueError(f"no {symbol} position to close")
    oid = book.next_id()
    prefix = FORCED_IDS[kind]
    cid = prefix if kind == "adl" else f"{prefix}{now}{oid:06d}"
    qty = abs(pos.qty)
    order = {
        "orderId": oid,
        "symbol": symbol,
        "status": "NEW",
        "clientOrderId": cid,
        "price": str(price),
        "avgPrice": "0",
        "origQty": str(qty),
        "executedQty": "0",
        "cumQuote": "0",
        "timeInForce": "IOC" if kind == "liquidation" else "GTC",
        "type": "LIMIT",
        "origType": "LIMIT",
        "reduceOnly": False,
        "closePosition": False,
        "side": "SELL" if pos.qty > 0 else "BUY",
        "positionSide": "BOTH",
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "time": now,
        "updateTime": now,
    }
    book.orders.append(order)
    execute(book, order, price, now, fee_rate=ZERO if kind == "settlement" else None)
    return order


def reduces(held: Decimal, side: str, qty: Decimal) -> bool:
    return held != 0 and (held > 0) == (side == "SELL") and qty <= abs(held)


def execute(
    book: UsdmBook,
    order: dict[str, Any],
    price: Decimal,
    now: int,
    *,
    fee_rate: Decimal | None = None,
) -> None:
    """Fill ``order`` entirely at ``price`` paying ``fee_rate`` (the taker fee by default); a
    reduce-only trigger that no longer reduces expires instead."""
    symbol, side = order["symbol"], order["side"]
    qty = Decimal(order["origQty"])
    pos = book.position_of(symbol)
    if order["reduceOnly"] and not reduces(pos.qty, side, qty):
        order["status"] = "EXPIRED"
        return
    signed = qty if side == "BUY" else -qty
    realized = ZERO
    if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
        pos.entry = (abs(pos.qty) * pos.entry + qty * price) / (abs(pos.qty) + qty)
    else:
        closing = min(qty, abs(pos.qty))
        realized = (closing if pos.qty > 0 else -closing) * (price - pos.entry)
        if qty > abs(pos.qty):
            pos.entry = price
    pos.qty += signed
    if pos.qty == 0:
        pos.entry = ZERO
    fee = qty * price * (book.taker_fee if fee_rate is None else fee_rate)
    book.wallet += realized - fee
    if realized:
        book.add_income(symbol, "REALIZED_PNL", realized, now)
    book.add_income(symbol, "COMMISSION", -fee, now)
    order.update(
        status="FILLED",
        avgPrice=str(price),
        executedQty=str(qty),
        cumQuote=str(qty * price),
        updateTime=now,
    )
    book.trades.append(
        {
            "buyer": side == "BUY",
            "commission": str(fee),
            "commissionAsset": "USDT",
            "id": book.next_id(),
            "maker": False,
            "orderId": order["orderId"],
            "price": str(price),
            "qty": str(qty),
            "quoteQty": str(qty * price),
            "realizedPnl": str(realized),
            "side": side,
            "positionSide": "BOTH",
            "symbol": symbol,
            "time": now,
        }
    )


def _now() -> int:
    import time

    return int(time.time() * 1000)
