"""Startup reconciliation: make the engine's view agree with the broker before any new order.

1. Every order the journal still has open (or finished without all its fills stored) is
   looked up by client order id: the venue's state and fills are applied; an order the
   venue never saw (the process died after writing the intent, before or while sending it)
   is closed as rejected once its recv window has passed (until then it is ``unknown`` and
   settled by lookup, :mod:`cryptomon.trading.settle`), never sent again.
2. Open venue orders carrying one of our client order ids but unknown to the journal are
   orphans: they are canceled (a mismatch). Venues that list open orders only per symbol
   (the broker's ``open_orders_need_symbol()``) are asked once per traded symbol.
3. Long positions are checked against the venue's base-currency balances: holding less than
   the engine believes is a mismatch. With a real venue (no ``restore``), the engine's cash
   becomes the venue's quote-currency balance (0 when absent), at start and on the periodic
   run while no order is open: position sizing works from the account's real equity.

Mismatches keep the engine in ``reducing`` (no new entries) with a RiskEvent naming them until
an operator resumes; a clean run moves it to ``active``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import structlog

from cryptomon.errors import TemporaryError, backoff_delays
from cryptomon.events import OrderState
from cryptomon.trading.brokers.base import BrokerOrder, OrderRejectedError
from cryptomon.trading.brokers.paper import split_symbol
from cryptomon.trading.orders import is_ours
from cryptomon.trading.risk import RiskState
from cryptomon.trading.settle import absent_deadline

if TYPE_CHECKING:
    from cryptomon.trading.execution import EngineCore

log = structlog.get_logger()
T = TypeVar("T")
ZERO = Decimal(0)
_ATTEMPTS = 8


async def _retry(core: EngineCore, what: str, call: Callable[[], Awaitable[T]]) -> T:
    """Reads during reconciliation retry TemporaryError with capped backoff."""
    delays = backoff_delays(initial=min(core.config.poll_interval_s, 1.0), cap=10.0)
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            return await call()
        except TemporaryError as exc:
            if attempt == _ATTEMPTS:
                raise
            log.warning("trading.reconcile_retry", what=what, attempt=attempt, error=str(exc))
            await core.clock.sleep(next(delays))
    raise AssertionError("unreachable")


async def reconcile(core: EngineCore, *, periodic: bool = False) -> list[str]:
    """Run the three steps; returns the mismatches (empty when everything agreed).

    ``periodic`` (the engine's timer) skips the order lookups (polling does them), reports
    only mismatches seen twice in a row (a fill in flight is not a mismatch) and never
    changes the state back to active.
    """
    mismatches: list[str] = []
    broker = core.broker
    if not periodic:
        await _settle_journal_orders(core, mismatches)

    for bo in await _open_orders(core):
        coid = bo.client_order_id
        if coid in core.book or not is_ours(coid):
            continue
        mismatches.append(f"orphan order {coid} ({bo.symbol}) open at the venue: canceled")
        try:
            await broker.cancel_order(bo.symbol, coid)
        except Exception as exc:
            log.error("trading.orphan_cancel_failed", client_order_id=coid, error=repr(exc))

    balances = await _retry(core, "fetch_balances", broker.fetch_balances)
    quote = core.portfolio.quote
    # A real venue's quote balance is the cash (equity = cash + positions at their marks);
    # the periodic run refreshes it only while no order is in flight (a fill the venue has
    # booked but the engine not yet would otherwise count twice).
    real_venue = not callable(getattr(broker, "restore", None))
    if real_venue and (not periodic or not core.book.open()):
        cash = balances.get(quote, ZERO)  # an empty balance is absent from the answer
        old = core.portfolio.cash
        if core.portfolio.rebase_cash(cash):
            log.info("trading.cash_from_venue", old=str(old), new=str(cash))
        core.portfolio.snapshot(core.clock.time())
    held: dict[str, Decimal] = {}
    for pos in core.portfolio.open_positions():
        if pos.amount > 0:
            base, _ = split_symbol(pos.symbol)
            held[base] = held.get(base, ZERO) + pos.amount
    for base, amount in held.items():
        have = balances.get(base, ZERO)
        if have < amount:
            mismatches.append(f"position needs {amount} {base} but the venue holds {have}")

    if periodic:
        previous = core.last_mismatches
        core.last_mismatches = set(mismatches)
        mismatches = [m for m in mismatches if m in previous or m.startswith("orphan")]
    core.reconciled = True
    if mismatches:
        reason = "reconciliation mismatch: " + "; ".join(mismatches)
        log.error("trading.reconcile_mismatch", mismatches=mismatches)
        if core.risk_state == RiskState.ACTIVE:
            core.set_risk_state(RiskState.REDUCING, reason)
        else:
            core.state_reason = reason
            core._risk_event("state_change", reason)
    elif not periodic and core.risk_state == RiskState.REDUCING:
        core.set_risk_state(RiskState.ACTIVE, "reconciled with the broker")
    log.info(
        "trading.reconciled",
        mismatches=len(mismatches),
        periodic=periodic,
        open_orders=len(core.book.open()),
    )
    return mismatches


async def _open_orders(core: EngineCore) -> list[BrokerOrder]:
    """Every open venue order: one call, or one per traded symbol (configured, or with an
    order or a position) when the broker says its venue needs the symbol."""
    broker = core.broker
    need = getattr(broker, "open_orders_need_symbol", None)
    if not (callable(need) and need()):
        return await _retry(core, "fetch_open_orders", broker.fetch_open_orders)
    symbols = set(core.config.symbols)
    symbols.update(r.intent.symbol for r in core.book.all())
    symbols.update(p.symbol for p in core.portfolio.open_positions())
    out: list[BrokerOrder] = []
    for symbol in sorted(symbols):
        try:
            out.extend(
                await _retry(core, "fetch_open_orders", partial(broker.fetch_open_orders, symbol))
            )
        except OrderRejectedError as exc:  # not a market of this venue: nothing to find
            log.warning("trading.open_orders_skipped", symbol=symbol, error=str(exc))
    return out


async def _settle_journal_orders(core: EngineCore, mismatches: list[str]) -> None:
    """Step 1: look up every order the journal left open; close what the venue never saw."""
    broker = core.broker
    for record in core.book.open():
        i = record.intent
        bo = await _retry(
            core, "fetch_order", partial(broker.fetch_order, i.symbol, i.client_order_id)
        )
        if bo is None:
            if core.clock.time() < absent_deadline(core, record):  # may still be accepted
                core._move(record, OrderState.UNKNOWN, "not at the venue yet (reconciliation)")
                core.settle_later(record)
                continue
            if record.state in (
                OrderState.SUBMITTED,
                OrderState.PARTIALLY_FILLED,
                OrderState.CANCEL_PENDING,
            ):
                mismatches.append(
                    f"order {i.client_order_id} was {record.state} locally but "
                    f"is unknown at the venue"
                )
            core._move(record, OrderState.REJECTED, "never reached the venue (reconciliation)")
            continue
        await core.apply_broker_order(record, bo)
        if record.state == OrderState.UNKNOWN:
            core.settle_later(record)
    for record in core.incomplete:  # finished orders whose fills the crash lost
        i = record.intent
        bo = await _retry(
            core, "fetch_order", partial(broker.fetch_order, i.symbol, i.client_order_id)
        )
        if bo is None:
            log.error(
                "trading.fills_lost",
                client_order_id=i.client_order_id,
                detail="the venue no longer knows this order",
            )
            continue
        await core.apply_broker_order(record, bo)
    core.incomplete.clear()
