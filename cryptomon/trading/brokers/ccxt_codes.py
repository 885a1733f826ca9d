"""Venue error codes that tell what a failed request means when ccxt's class cannot.

ccxt turns a venue's error answer into an exception class from its own tables, and one class
can hold answers of opposite meaning. ccxt's Binance raises ``OperationRejected`` for futures
answers that refuse an order at acceptance (-4131: the counterparty's best price is outside
the PERCENT_PRICE band) and also for -1004, which its common table reads as "DUPLICATE_IP"
(an IP whitelist call) but which Binance's spot API sends as "Server is busy, please wait and
try again" (ccxt's spot table maps it to ``OperationFailed``). A busy answer to an order may
come after the order was taken, so the class alone cannot say whether an order exists: the
venue's code does.

The tables are data per ccxt exchange id (the Binance family shares its codes):

- :data:`REFUSED` -- per market kind (``spot``, ``linear``, ``inverse``: the API the request
  went to, as ccxt picks its error table by URL), the codes with which the venue refuses a new
  order before it enters the book (a filter, a limit or the account's mode checked at
  acceptance): the order certainly does not exist, so it is rejected at once with the venue's
  message instead of being looked up. Only codes ccxt raises as an ``ExchangeError`` (such as
  ``OperationRejected``) or as an ``OperationFailed`` venue answer are looked at here; ccxt's
  ``InvalidOrder``, ``InsufficientFunds``, ``BadRequest`` and ``PermissionDenied`` answers
  are refusals already (:data:`~cryptomon.trading.brokers.ccxt_read.REFUSALS`, and
  ``PermissionDenied`` is an ``AuthenticationError``). Each listed code is one Binance
  documents as refusing the request itself (its USD-M and COIN-M error code pages); none
  that can answer an order the venue took (-1008 "Request throttled / server overloaded"
  stays an unknown outcome, as do codes known only from third parties, such as -4531).
- :data:`BUSY` -- codes that mean the venue is overloaded and may or may not have carried the
  request out: a placement stays "outcome unknown" (settled by lookup, never resent) and a
  read is retried like a 5xx.

Any other code, and an answer without one, keeps ccxt's class: an ``OperationRejected`` or a
bare ``ExchangeError`` whose code is not listed is an unknown outcome, settled by lookup (a
lookup costs a few requests; rejecting an order that exists would lose track of a position).
Spot Binance has no order refusal that ccxt raises as ``OperationRejected``: its order
refusals are -2010 NEW_ORDER_REJECTED (``InvalidOrder``) and -1013 filter failures
(``InvalidOrder`` / ``BadRequest``), and its -1004 is ``OperationFailed`` (unknown outcome).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_BINANCE_FUTURES_COMMON = {
    "-2023": "User in liquidation mode now: no new order is taken",
    "-2025": "Reach max open order limit: the order was not accepted",
    "-2027": "Exceeded the maximum allowable position at current leverage: refused at entry",
    "-2028": "Leverage is smaller than permitted (insufficient margin balance): refused",
    "-4045": "Reach max stop order limit: the conditional order was not accepted",
    "-4061": "Order's position side does not match the account's setting: refused",
}

_BINANCE_REFUSED: dict[str, dict[str, str]] = {
    "spot": {},
    # USD-M (fapi): ccxt's linear table and the common one it falls back to
    "linear": {
        **_BINANCE_FUTURES_COMMON,
        "-4072": "Premium fee is not updated: reject order",
        "-4074": "Order amount is bigger than the upper boundary or less than 0: reject order",
        "-4077": "Place order amount has reached the limit: reject order",
        "-4118": "ReduceOnly order failed the margin check: refused",
        "-4131": "The counterparty's best price does not meet the PERCENT_PRICE filter limit",
        "-4141": "Symbol is closed: no order is accepted",
    },
    # COIN-M (dapi): the same refusals under their COIN-M numbers
    "inverse": {
        **_BINANCE_FUTURES_COMMON,
        "-4112": "ReduceOnly order failed: refused at acceptance",
        "-4113": "The counterparty's best price does not meet the PERCENT_PRICE filter limit",
    },
}

_BINANCE_BUSY = {
    "-1004": "Server is busy, please wait and try again (ccxt's futures tables read it as "
    "OperationRejected 'DUPLICATE_IP', an IP whitelist answer no order call gets)",
}

REFUSED: Mapping[str, Mapping[str, Mapping[str, str]]] = {
    "binance": _BINANCE_REFUSED,
    "binanceusdm": _BINANCE_REFUSED,
    "binancecoinm": _BINANCE_REFUSED,
}
"""ccxt exchange id -> market kind -> venue code -> why it means "not placed"."""

BUSY: Mapping[str, Mapping[str, str]] = {
    "binance": _BINANCE_BUSY,
    "binanceusdm": _BINANCE_BUSY,
    "binancecoinm": _BINANCE_BUSY,
}
"""ccxt exchange id -> venue code -> why it means "busy: maybe carried out"."""

_CODE = re.compile(r'"code"\s*:\s*"?(-?\d+)')


def venue_code(exc: BaseException) -> str | None:
    """The venue's error code in a ccxt exception's message (ccxt puts the answer's body
    there: ``binanceusdm {"code":-4131,"msg":"..."}``), or None."""
    found = _CODE.search(str(exc))
    return found.group(1) if found else None


def market_kind(market: Mapping[str, Any]) -> str:
    """``spot``, ``linear`` or ``inverse``: which of the venue's APIs orders of this ccxt
    market go to."""
    if market.get("inverse"):
        return "inverse"
    if market.get("linear") or market.get("contract"):
        return "linear"
    return "spot"


def refused(exchange_id: str, market: Mapping[str, Any], exc: BaseException) -> str | None:
    """Why ``exc`` (a failed order placement on ``market``) certainly left no order, when its
    code is one of :data:`REFUSED`; else None."""
    code = venue_code(exc)
    if code is None:
        return None
    return REFUSED.get(exchange_id, {}).get(market_kind(market), {}).get(code)


def busy(exchange_id: str, exc: BaseException) -> bool:
    """Whether ``exc`` carries one of the venue's :data:`BUSY` codes."""
    code = venue_code(exc)
    return code is not None and code in BUSY.get(exchange_id, {})
