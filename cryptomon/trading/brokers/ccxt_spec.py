"""The live broker's own check of an order against the market's instrument spec (from ccxt's
market: lot, minimum quantity and order value, tick) before anything is sent, refusing with
the reason text of the risk checks and the paper broker
(:func:`cryptomon.trading.sizing.intent_problem`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from cryptomon.errors import TemporaryError
from cryptomon.events import OrderIntent
from cryptomon.market.ccxt_specs import spec_from_ccxt
from cryptomon.market.instruments import InstrumentSpec
from cryptomon.trading.brokers.base import OrderRejectedError
from cryptomon.trading.brokers.ccxt_gate import RateLimited
from cryptomon.trading.brokers.ccxt_map import dec
from cryptomon.trading.sizing import intent_problem

Reader = Callable[..., Awaitable[Any]]


def market_spec(ex: Any, m: dict[str, Any], exchange: str) -> InstrumentSpec | None:
    """The instrument spec of ccxt market ``m`` (None for a kind the project does not trade)."""
    return spec_from_ccxt(
        exchange, m, precision_mode=ex.precisionMode, renamed=ex.commonCurrencies or {}
    )


async def touch(ex: Any, m: dict[str, Any], intent: OrderIntent, read: Reader) -> Decimal | None:
    """The touch of the venue's book (the ask for a buy, the bid for a sell): what values a
    market order, as in the paper broker."""
    book = await read(ex.fetch_order_book, m["symbol"], 5)
    side = (book.get("asks") if intent.side == "buy" else book.get("bids")) or []
    return dec(side[0][0]) if side else None


async def spec_refusal(
    ex: Any, m: dict[str, Any], intent: OrderIntent, *, exchange: str, read: Reader
) -> str | None:
    """Why the venue would refuse ``intent`` by the spec of its market, or None. The order is
    valued at its limit (else stop) price; the book is read only when a linear market's
    minimum order value must be checked on an entry without either."""
    spec = market_spec(ex, m, exchange)
    if spec is None:
        return None
    price = intent.price if intent.price is not None else intent.stop_price
    if price is None and spec.min_notional is not None and not spec.inverse:
        price = None if intent.reduce_only else await touch(ex, m, intent, read)
        if price is None:  # nothing values it: the minimum order value is not checked here
            spec = replace(spec, min_notional=None)
    problem = intent_problem(spec, intent, Decimal(1) if price is None else price)
    return None if problem is None else problem[1]


async def check_spec(
    ex: Any, m: dict[str, Any], intent: OrderIntent, *, exchange: str, read: Reader
) -> None:
    """Raise :class:`OrderRejectedError` with :func:`spec_refusal`'s reason; a failed book
    read (rate limit, network) also refuses the order: nothing has been sent."""
    cid = intent.client_order_id
    try:
        refusal = await spec_refusal(ex, m, intent, exchange=exchange, read=read)
    except (RateLimited, TemporaryError) as exc:
        detail = str(exc).replace(": not sent, ", ": ", 1)  # the read's own "not sent"
        raise OrderRejectedError(
            cid,
            "not sent: the venue's book could not be read to check the order's minimum "
            f"value ({detail})",
        ) from exc
    if refusal is not None:  # the reason text of the risk checks and the paper broker
        raise OrderRejectedError(cid, refusal)
