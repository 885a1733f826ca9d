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

from typing import TYPE_CHECKING

import structlog

from cryptomon.errors import TemporaryError, backoff_delays
from cryptomon.events import OrderState
from cryptomon.trading.brokers.base import BrokerOrder, OrderOutcomeUnknown, OrderRejectedError
from cryptomon.trading.orders import OrderRecord

if TYPE_CHECKING:
    from cryptomon.trading.execution import EngineCore

log = structlog.get_logger()
S = OrderState
CLOCK_SKEW_S = 1.0
"""Allowed difference between the venue's clock and ours (Binance refuses requests stamped
more than 1 s ahead of its own time, so a larger skew would refuse every request)."""


def absent_deadline(core: EngineCore, record: OrderRecord) -> float:
    """Clock time after which the venue can no longer accept ``record``'s placement."""
    sent = record.sent or record.intent.ts
    return sent + core.config.live.recv_window_ms / 1000 + CLOCK_SKEW_S


async def settle(core: EngineCore, record: OrderRecord, retry_after: float | None) -> None:
    """Look the unknown order up until the venue says what happened; never resend."""
    delays = backoff_delays(initial=core.config.poll_interval_s, cap=30.0)
    misses = 0
    wait = retry_after
    i = record.intent
    while record.state == S.UNKNOWN:
        delay = next(delays)
        left = absent_deadline(core, record) - core.clock.time()
        if misses >= core.config.unknown_lookups and left > 0:  # look again at the deadline
            delay = min(delay, left)
        await core.clock.sleep(max(wait or 0.0, delay))
        wait = None
        try:
            bo = await core.broker.fetch_order(i.symbol, i.client_order_id)
        except OrderOutcomeUnknown as exc:
            wait = exc.retry_after_s
            continue
        except Exception as exc:
            log.warning(
                "trading.settle_lookup_failed", client_order_id=i.client_order_id, error=repr(exc)
            )
            continue
        if bo is None:
            misses += 1
            if misses >= core.config.unknown_lookups and core.clock.time() >= absent_deadline(
                core, record
            ):
                core._move(
                    record,
                    S.REJECTED,
                    f"not found at the venue after {misses} lookups and its recv window",
                )
            continue
        await core.apply_broker_order(record, bo)


async def cancel(core: EngineCore, record: OrderRecord) -> OrderRecord:
    """Cancel ``record`` at the venue; an order the venue does not know ends canceled, except
    an ``unknown`` one inside its recv window (it stays unknown and is settled by lookup)."""
    i = record.intent
    if not record.is_open:
        return record
    if record.state != S.UNKNOWN:
        core._move(record, S.CANCEL_PENDING)
    try:
        bo = await core.broker.cancel_order(i.symbol, i.client_order_id)
    except OrderRejectedError:
        found = await core.broker.fetch_order(i.symbol, i.client_order_id)
        if found is None:
            if record.state == S.UNKNOWN and core.clock.time() < absent_deadline(core, record):
                core.settle_later(record)  # still in flight: the venue may accept it late
                return record
            core._move(record, S.CANCELED, "not found at the venue")
            return record
        bo = found
    except (TemporaryError, TimeoutError, OSError) as exc:
        log.warning("trading.cancel_failed", client_order_id=i.client_order_id, error=repr(exc))
        return record
    await core.apply_broker_order(record, bo)
    return record


async def apply_broker_order(core: EngineCore, record: OrderRecord, bo: BrokerOrder) -> None:
    """Bring ``record`` in line with the venue's view: fills first, then the state."""
    if bo.exchange_order_id and bo.exchange_order_id != record.exchange_order_id:
        record.exchange_order_id = bo.exchange_order_id
    filled_before = record.filled
    for fill in bo.fills:
        core.apply_fill(record, fill)
    if bo.filled > record.filled:
        i = record.intent
        try:
            fills = await core.broker.fetch_fills(i.symbol, since=i.ts - 60)
        except Exception as exc:
            log.warning("trading.fetch_fills_failed", error=repr(exc))
            fills = []
        for fill in fills:
            if fill.client_order_id == i.client_order_id:
                core.apply_fill(record, fill)
    state = bo.state
    if state == S.SUBMITTED and record.filled > 0:
        state = S.PARTIALLY_FILLED
    if state == S.PARTIALLY_FILLED and record.state == S.CANCEL_PENDING:
        return
    if state in (S.SUBMITTED, S.NEW) and record.state not in (S.NEW, S.UNKNOWN):
        return
    if state == record.state == S.PARTIALLY_FILLED and record.filled == filled_before:
        return  # nothing new (polling a resting, partly filled order)
    core._move(record, state if state != S.NEW else S.SUBMITTED)
