"""Conditional (algo) orders of the simulator's USD-M account (:mod:`cryptomon.sim.usdm`):
what ccxt's ``binanceusdm`` sends since Binance moved STOP_MARKET / TAKE_PROFIT_MARKET to the
Algo Service (``POST/GET/DELETE /fapi/v1/algoOrder``, ``GET /fapi/v1/openAlgoOrders``,
``GET /fapi/v1/allAlgoOrders``).

An algo order rests (``algoStatus`` NEW) until the price crosses its ``triggerPrice``; then a
MARKET order is placed in the matching engine (its id is the algo's ``actualOrderId``, its
client order id the venue's own) and the algo ends FINISHED with ``executedQty`` and
``avgPrice`` of that order. A reduce-only (or ``closePosition``) algo that no longer reduces
the position when it fires ends EXPIRED. An algo whose trigger is already crossed at placement
is refused (-2021, "Order would immediately trigger.").
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cryptomon.sim.usdm_orders import ZERO, UsdmBook, UsdmError, execute, number, reduces

ALGO_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET")


def _rises(kind: str, side: str) -> bool:
    """Whether the order fires on a rising price (a buy stop, a sell take-profit)."""
    return (kind == "STOP_MARKET") == (side == "BUY")


def crossed(algo: dict[str, Any], price: Decimal) -> bool:
    trigger = Decimal(algo["triggerPrice"])
    return price >= trigger if _rises(algo["orderType"], algo["side"]) else price <= trigger


def place_algo(
    book: UsdmBook, algos: list[dict[str, Any]], params: dict[str, str], now: int
) -> Any:
    """``POST /fapi/v1/algoOrder``: validate and rest a conditional order."""
    symbol = params.get("symbol", "")
    price = book.price_of(symbol)
    if params.get("algoType", "").upper() != "CONDITIONAL":
        raise UsdmError(400, -1102, "Mandatory parameter 'algoType' was not sent or is bad.")
    kind = params.get("type", "").upper()
    if kind not in ALGO_TYPES:
        raise UsdmError(400, -1116, f"Invalid orderType {kind}; the simulator has {ALGO_TYPES}")
    side = params.get("side", "").upper()
    if side not in ("BUY", "SELL"):
        raise UsdmError(400, -1102, "Mandatory parameter 'side' was not sent or is bad.")
    close = params.get("closePosition", "false").lower() == "true"
    qty = ZERO if close else number(params, "quantity")
    trigger = number(params, "triggerPrice")
    cid = params.get("clientAlgoId") or f"simalgo{book.next_id()}"
    if any(a["clientAlgoId"] == cid for a in algos):
        raise UsdmError(400, -4015, "Client order id is not valid. Duplicate order sent.")
    algo = {
        "algoId": book.next_id(),
        "clientAlgoId": cid,
        "algoType": "CONDITIONAL",
        "orderType": kind,
        "symbol": symbol,
        "side": side,
        "positionSide": "BOTH",
        "timeInForce": "GTC",
        "quantity": str(qty),
        "algoStatus": "NEW",
        "triggerPrice": str(trigger),
        "price": "0",
        "workingType": "CONTRACT_PRICE",
        "closePosition": close,
        "priceProtect": False,
        "reduceOnly": close or params.get("reduceOnly", "false").lower() == "true",
        "createTime": now,
        "updateTime": now,
        "triggerTime": 0,
        "actualOrderId": "",
        "executedQty": "0",
        "avgPrice": "0",
    }
    if crossed(algo, price):
        raise UsdmError(400, -2021, "Order would immediately trigger.")
    algos.append(algo)
    return algo


def find_algo(algos: list[dict[str, Any]], params: dict[str, str]) -> dict[str, Any]:
    cid, aid = params.get("clientAlgoId"), params.get("algoId")
    for algo in algos:
        if algo["clientAlgoId"] == cid or str(algo["algoId"]) == aid:
            return algo
    raise UsdmError(400, -2013, "Order does not exist.")


def cancel_algo(algos: list[dict[str, Any]], params: dict[str, str], now: int) -> Any:
    """``DELETE /fapi/v1/algoOrder``: only a resting (NEW) algo can be canceled."""
    algo = find_algo(algos, params)
    if algo["algoStatus"] != "NEW":
        raise UsdmError(400, -2011, "Unknown order sent.")
    algo.update(algoStatus="CANCELED", updateTime=now)
    return {
        "algoId": algo["algoId"],
        "clientAlgoId": algo["clientAlgoId"],
        "code": "200",
        "msg": "success",
    }


def fire(book: UsdmBook, algo: dict[str, Any], price: Decimal, now: int) -> None:
    """The trigger is crossed: a MARKET order in the matching engine fills at ``price``."""
    pos = book.position_of(algo["symbol"])
    qty = abs(pos.qty) if algo["closePosition"] else Decimal(algo["quantity"])
    algo.update(triggerTime=now, updateTime=now)
    if algo["reduceOnly"] and not reduces(pos.qty, algo["side"], qty):
        algo["algoStatus"] = "EXPIRED"  # nothing left to reduce (the position was closed)
        return
    order = {
        "orderId": book.next_id(),
        "symbol": algo["symbol"],
        "status": "NEW",
        "clientOrderId": f"algo{algo['algoId']}",
        "price": "0",
        "avgPrice": "0",
        "origQty": str(qty),
        "executedQty": "0",
        "cumQuote": "0",
        "timeInForce": "GTC",
        "type": "MARKET",
        "origType": algo["orderType"],
        "reduceOnly": algo["reduceOnly"],
        "closePosition": algo["closePosition"],
        "side": algo["side"],
        "positionSide": "BOTH",
        "stopPrice": algo["triggerPrice"],
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "time": now,
        "updateTime": now,
    }
    book.orders.append(order)
    execute(book, order, price, now)
    algo.update(
        algoStatus="FINISHED",
        actualOrderId=str(order["orderId"]),
        executedQty=order["executedQty"],
        avgPrice=order["avgPrice"],
    )
