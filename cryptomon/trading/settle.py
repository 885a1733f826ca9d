"""Bringing orders in line with the venue: settling orders whose placement outcome is
unknown, applying the venue's view of an order (fills first, then the state), canceling.

An order is ``unknown`` after a timeout, 5xx, 429 or dropped response on placement. It is
looked up by client order id (``broker.fetch_order``) with capped backoff, never resent.
"Not at the venue" is concluded only when both hold:

- it was missing at ``unknown_lookups`` lookups, and
- ``trading.live.recv_window_ms`` (plus :data:`CLOCK_SKEW_S` for the venue's clock) has passed
  since the request was sent: until then a request still in flight can be accepted late (a
  venue refuses a signed request older than its ``recvWindow``). The send time is taken just
  before the request is signed; after a restart the intent's time stands in for it.
"""

from __future__ import annotations

from typing import Protocol

import structlog

from cryptomon.errors import TemporaryError, backoff_delays
from cryptomon.events import Fill, OrderState
from cryptomon.trading.brokers.base import (
    BrokerOrder,
    OrderOutcomeUnknown,
    OrderRejectedError,
    is_protective,
    urgent,
)
from cryptomon.trading.context import EngineContext
from cryptomon.trading.orders import OrderRecord

log = structlog.get_logger()
CLOCK_SKEW_S = 1.0
"""Allowed difference between the venue's clock and ours (Binance refuses requests stamped
more than 1 s ahead of its own time, so a larger skew would refuse every request)."""


class OrderSync(Protocol):
    """What these functions need from the order executor."""

    @property
    def context(self) -> EngineContext: ...

    def move(self, record: OrderRecord, state: OrderState, reason: str = "") -> bool: ...

    def apply_fill(self, record: OrderRecord | None, fill: Fill) -> bool: ...

    async def apply_broker_order(self, record: OrderRecord, answer: BrokerOrder) -> None: ...

    def settle_later(self, record: OrderRecord, retry_after: float | None = None) -> None: ...


def absent_deadline(context: EngineContext, record: OrderRecord) -> float:
    """Clock time after which the venue can no longer accept ``record``'s placement."""
    sent = record.sent or record.intent.ts
    return sent + context.config.live.recv_window_ms / 1000 + CLOCK_SKEW_S


async def settle_unknown(sync: OrderSync, record: OrderRecord, retry_after: float | None) -> None:
    """Look the unknown order up until the venue says what happened; never resend."""
    ctx = sync.context
    delays = backoff_delays(initial=ctx.config.poll_interval_s, cap=30.0)
    misses = 0
    wait = retry_after
    intent = record.intent
    while record.state == OrderState.UNKNOWN:
        delay = next(delays)
        left = absent_deadline(ctx, record) - ctx.clock.time()
        if misses >= ctx.config.unknown_lookups and left > 0:  # look again at the deadline
            delay = min(delay, left)
        await ctx.clock.sleep(max(wait or 0.0, delay))
        wait = None
        try:
            with urgent(is_protective(intent)):
                answer = await ctx.broker.fetch_order(intent.symbol, intent.client_order_id)
        except OrderOutcomeUnknown as exc:
            wait = exc.retry_after_s
            continue
        except Exception as exc:
            log.warning(
                "trading.settle_lookup_failed",
                client_order_id=intent.client_order_id,
                error=repr(exc),
            )
            continue
        if answer is None:
            misses += 1
            if misses >= ctx.config.unknown_lookups and ctx.clock.time() >= absent_deadline(
                ctx, record
            ):
                record.absent = True
                sync.move(
                    record,
                    OrderState.REJECTED,
                    f"not found at the venue after {misses} lookups and its recv window",
                )
            continue
        await sync.apply_broker_order(record, answer)


async def cancel_at_venue(sync: OrderSync, record: OrderRecord) -> OrderRecord:
    """Cancel ``record`` at the venue; an order the venue does not know ends canceled, except
    an ``unknown`` one inside its recv window (it stays unknown and is settled by lookup).
    The cancel is remembered (``cancel_requested``): an order whose placement is still on its
    way (``new``) is not asked for now, and one that turns up later (a placement answer, a
    lookup of an unknown order) is canceled then (:func:`cancel_if_requested`)."""
    ctx = sync.context
    intent = record.intent
    if not record.is_open:
        return record
    record.cancel_requested = True
    if record.state == OrderState.NEW:  # the venue may not have it yet: its answer decides
        return record
    if record.state != OrderState.UNKNOWN:
        sync.move(record, OrderState.CANCEL_PENDING)
    try:
        answer = await _cancel_or_lookup(ctx, record)
    except (TemporaryError, TimeoutError, OSError) as exc:  # the poll asks again
        log.warning(
            "trading.cancel_failed", client_order_id=intent.client_order_id, error=repr(exc)
        )
        return record
    if answer is None:
        if record.state == OrderState.UNKNOWN and ctx.clock.time() < absent_deadline(ctx, record):
            sync.settle_later(record)  # still in flight: the venue may accept it late
            return record
        sync.move(record, OrderState.CANCELED, "not found at the venue")
        return record
    await sync.apply_broker_order(record, answer)
    return record


async def _cancel_or_lookup(ctx: EngineContext, record: OrderRecord) -> BrokerOrder | None:
    """The venue's answer to the cancel; when it refuses the cancel, its lookup of the order
    (None: it does not know the order). A failed lookup raises like a failed cancel."""
    intent = record.intent
    try:
        return await ctx.broker.cancel_order(intent.symbol, intent.client_order_id)
    except OrderRejectedError:
        return await ctx.broker.fetch_order(intent.symbol, intent.client_order_id)


async def apply_venue_view(sync: OrderSync, record: OrderRecord, answer: BrokerOrder) -> None:
    """Bring ``record`` in line with the venue's view: fills first, then the state."""
    if answer.exchange_order_id and answer.exchange_order_id != record.exchange_order_id:
        record.exchange_order_id = answer.exchange_order_id
    filled_before = record.filled
    for fill in answer.fills:
        sync.apply_fill(record, fill)
    if answer.filled > record.filled:
        intent = record.intent
        try:
            with urgent(is_protective(intent)):  # an exit's fills: booked without delay
                fills = await sync.context.broker.fetch_fills(intent.symbol, since=intent.ts - 60)
        except Exception as exc:
            log.warning("trading.fetch_fills_failed", error=repr(exc))
            fills = []
        for fill in fills:
            if fill.client_order_id == intent.client_order_id:
                sync.apply_fill(record, fill)
    if answer.filled > record.filled and answer.state.is_terminal:
        # not closed without its fills: a closed order is never looked up again, so the
        # venue's position would stay unknown here; the poll (or the unknown order's
        # lookups) asks again until the trades can be read
        log.warning(
            "trading.fills_missing",
            client_order_id=record.client_order_id,
            venue_filled=str(answer.filled),
            booked=str(record.filled),
            venue_state=answer.state.value,
        )
        return
    state = answer.state
    if state == OrderState.SUBMITTED and record.filled > 0:
        state = OrderState.PARTIALLY_FILLED
    if state == OrderState.PARTIALLY_FILLED and record.state == OrderState.CANCEL_PENDING:
        return
    if state in (OrderState.SUBMITTED, OrderState.NEW) and record.state not in (
        OrderState.NEW,
        OrderState.UNKNOWN,
    ):
        return
    if state == record.state == OrderState.PARTIALLY_FILLED and record.filled == filled_before:
        return  # nothing new (polling a resting, partly filled order)
    sync.move(record, state if state != OrderState.NEW else OrderState.SUBMITTED)


async def cancel_if_requested(sync: OrderSync, record: OrderRecord) -> None:
    """An order canceled before the venue had it, now resting there: cancel it."""
    if record.cancel_requested and record.state in (
        OrderState.SUBMITTED,
        OrderState.PARTIALLY_FILLED,
    ):
        log.info("trading.cancel_on_arrival", client_order_id=record.client_order_id)
        await cancel_at_venue(sync, record)
