"""Startup reconciliation: make the engine's view agree with the broker before any new order.

1. Every order the journal still has open (or finished without all its fills stored) is
   looked up by client order id: the venue's state and fills are applied; an order the
   venue never saw (the process died after writing the intent, before or while sending it)
   is closed as rejected once its recv window has passed (until then it is ``unknown`` and
   settled by lookup, :mod:`cryptomon.trading.settle`), never sent again.
2. Open venue orders carrying one of our client order ids but unknown to the journal are
   orphans: they are canceled (a mismatch). Venues that list open orders only per symbol
   (the broker's ``open_orders_need_symbol()``) are asked once per traded symbol, and so is
   every venue on the periodic run: a list without a symbol weighs much more in the venue's
   rate limit (Binance USD-M: 40 against 1) and ccxt's pacing made every request after it,
   a stop-loss exit included, wait for it (2 s); the startup run asks for every market.
3. Contract positions (perpetuals, futures) must equal the venue's (``fetch_positions``); one
   that differs is first searched for finished orders the engine did not send that reduce it
   (a live broker's ``forced_closes``: the venue's liquidation, auto-deleveraging or
   delivery, or a trade by hand on the account), which are adopted. An order that went
   through zero (a trade by hand that flipped the position) is adopted for the part that
   closed the position; the rest is a position the engine did not open: it is not taken over
   (no protection, no trading), the market is *unmanaged* (``EngineContext.unmanaged``: a
   RiskEvent tells the operator to close it on the venue, no entry goes to that market until
   the venue's position there is flat) and the engine is not held in ``reducing`` for it.
   Long spot positions are checked against the venue's base-currency balances: a balance below
   what they hold is first searched for sales the engine did not send among the account's
   trades of the position's market (a sale by hand on the venue's website or app), adopted
   like a contract's close by hand (origin ``venue``, at most what the balance lost); a
   shortfall that no such sale explains (a withdrawal, a transfer to another account) books
   nothing and is a mismatch telling what to do. With a real venue (no ``restore``), the
   engine's cash becomes the venue's quote-currency balance (0 when absent), at start and on
   the periodic run while no order is open: position sizing works from the account's real
   equity. A derivatives account's balance holds the unrealized PnL of its open contracts:
   the engine's own (its equity adds them at its marks) and, as the venue reports it, that of
   the positions it does not manage, which is not the engine's money; both are left out.

Mismatches keep the engine in ``reducing`` (no new entries) with a RiskEvent naming them until
an operator resumes; a clean run moves it to ``active``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from functools import partial
from typing import TypeVar

import structlog

from cryptomon.config import split_symbol
from cryptomon.decimals import plain_decimal as _d
from cryptomon.errors import TemporaryError, backoff_delays
from cryptomon.events import OrderState
from cryptomon.log import info_enabled
from cryptomon.trading.brokers.base import BrokerOrder, OrderRejectedError, VenuePosition
from cryptomon.trading.brokers.ccxt_forced import ForcedClose, part
from cryptomon.trading.context import EngineContext
from cryptomon.trading.executor import OrderExecutor
from cryptomon.trading.orders import is_ours
from cryptomon.trading.position import Position
from cryptomon.trading.risk import RiskState
from cryptomon.trading.settle import absent_deadline

log = structlog.get_logger()
T = TypeVar("T")
ZERO = Decimal(0)
READ_ATTEMPTS = 8


class Reconciler:
    """Makes the engine's orders, positions and cash agree with the broker's."""

    def __init__(self, *, context: EngineContext, executor: OrderExecutor) -> None:
        self.context = context
        self.executor = executor
        self._flipped: set[str] = set()  # markets a close by hand flipped (this run)
        self._venue: dict[str, VenuePosition] = {}  # the venue's positions (this run)
        self._pnl_unknown: set[str] = set()  # unmanaged positions told to have no PnL figure

    async def _retry(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Reads during reconciliation retry TemporaryError with capped backoff."""
        delays: Iterator[float] | None = None  # set up at the first failure, not per read
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return await call()
            except TemporaryError as exc:
                if attempt == READ_ATTEMPTS:
                    raise
                log.warning("trading.reconcile_retry", what=what, attempt=attempt, error=str(exc))
                ctx = self.context
                if delays is None:
                    delays = backoff_delays(initial=min(ctx.config.poll_interval_s, 1.0), cap=10.0)
                await ctx.clock.sleep(next(delays))
        raise AssertionError("unreachable")

    async def run(self, *, periodic: bool = False) -> list[str]:
        """Run the three steps; returns the mismatches (empty when everything agreed).

        ``periodic`` (the engine's timer) skips the order lookups (polling does them),
        reports only mismatches seen twice in a row (a fill in flight is not a mismatch) and
        never changes the state back to active.
        """
        ctx = self.context
        mismatches: list[str] = []
        unmanaged: dict[str, str] = {}
        self._flipped = set()
        if not periodic:
            await self._settle_journal_orders(mismatches)
        await self._cancel_orphans(mismatches, periodic=periodic)
        await self._check_balances(mismatches, unmanaged, periodic=periodic)
        if not periodic:
            ctx.resume_day()
        if periodic:
            previous = ctx.last_mismatches
            ctx.last_mismatches = set(mismatches) | set(unmanaged.values())
            mismatches = [m for m in mismatches if m in previous or m.startswith("orphan")]
            # an unmanaged position is told once seen twice (a fill of ours in flight is
            # not one), at once when it is the rest of a flip just adopted
            unmanaged = {
                s: m
                for s, m in unmanaged.items()
                if m in previous or s in ctx.unmanaged or s in self._flipped
            }
        self._set_unmanaged(unmanaged)
        ctx.reconciled = True
        if mismatches:
            reason = "reconciliation mismatch: " + "; ".join(mismatches)
            log.error("trading.reconcile_mismatch", mismatches=mismatches)
            if ctx.risk_state == RiskState.ACTIVE:
                ctx.set_risk_state(RiskState.REDUCING, reason)
            else:
                ctx.state_reason = reason
                ctx.risk_event("state_change", reason)
        elif not periodic and ctx.risk_state == RiskState.REDUCING:
            ctx.set_risk_state(RiskState.ACTIVE, "reconciled with the broker")
        if info_enabled():  # the periodic run: a filtered line still costs a logger bind
            log.info(
                "trading.reconciled",
                mismatches=len(mismatches),
                periodic=periodic,
                open_orders=len(ctx.book.open()),
            )
        return mismatches + list(unmanaged.values())

    def _set_unmanaged(self, unmanaged: dict[str, str]) -> None:
        """The markets where the venue holds a position the engine does not manage: a
        RiskEvent for each new one (or one whose size changed), a line when one is gone."""
        ctx = self.context
        for symbol, what in unmanaged.items():
            if ctx.unmanaged.get(symbol) != what:
                log.error("trading.unmanaged_position", symbol=symbol, detail=what)
                ctx.risk_event(
                    "limit",
                    what,
                    exchange=ctx.config.exchange or "",
                    symbol=symbol,
                    check_name="unmanaged_position",
                )
        for symbol in set(ctx.unmanaged) - set(unmanaged):
            log.warning(
                "trading.unmanaged_position_gone",
                symbol=symbol,
                detail="the venue's position is flat: entries allowed again",
            )
        ctx.unmanaged = unmanaged

    async def _cancel_orphans(self, mismatches: list[str], *, periodic: bool) -> None:
        """Step 2: our client order ids open at the venue but unknown here are canceled."""
        for answer in await self._open_orders(per_symbol=periodic):
            coid = answer.client_order_id
            if coid in self.context.book or not is_ours(coid):
                continue
            mismatches.append(f"orphan order {coid} ({answer.symbol}) open at the venue: canceled")
            try:
                await self.context.broker.cancel_order(answer.symbol, coid)
            except Exception as exc:
                log.error("trading.orphan_cancel_failed", client_order_id=coid, error=repr(exc))

    async def _check_balances(
        self, mismatches: list[str], unmanaged: dict[str, str], *, periodic: bool
    ) -> None:
        """Step 3: the venue's balances hold the long positions; a real venue's cash. The
        positions the venue (or someone by hand) closed are adopted first (their PnL is then
        in the cash the venue reports, not counted twice)."""
        ctx = self.context
        broker = ctx.broker
        venue_positions = await self._venue_positions()
        if venue_positions is not None:
            await self._adopt_forced_closes(venue_positions)
        balances = await self._retry("fetch_balances", broker.fetch_balances)
        await self._adopt_spot_sales(balances)
        # A real venue's quote balance is the cash (equity = cash + positions at their marks);
        # the periodic run refreshes it only while no order is in flight (a fill the venue has
        # booked but the engine not yet would otherwise count twice).
        real_venue = not callable(getattr(broker, "restore", None))
        if real_venue and (not periodic or not ctx.book.open()):
            cash = balances.get(ctx.portfolio.quote, ZERO)  # an empty balance is absent
            # a derivatives account's balance (ccxt's total: the margin balance) includes the
            # open contracts' unrealized PnL: the engine's, which the equity adds on its own,
            # and that of the positions it does not manage, which are not its money
            cash -= self._own_unrealized(ctx.portfolio.quote)
            cash -= self._unmanaged_unrealized(ctx.portfolio.quote)
            old = ctx.portfolio.cash
            if ctx.portfolio.rebase_cash(cash):
                log.info("trading.cash_from_venue", old=str(old), new=str(cash))
            ctx.portfolio.snapshot(ctx.clock.time())
        if venue_positions is not None:
            self._check_contracts(mismatches, unmanaged, venue_positions)
        for base, amount in self._spot_held().items():
            have = balances.get(base, ZERO)
            if have < amount:
                mismatches.append(
                    f"position needs {_d(amount)} {base} but the venue holds {_d(have)}"
                    + self._unexplained(base, amount - have)
                )

    def _unexplained(self, base: str, missing: Decimal) -> str:
        """What a spot shortfall that no sale explains means and what to do about it."""
        if not callable(getattr(self.context.broker, "forced_closes", None)):
            return ""
        return (
            f": the venue's trades since the position opened show no sale cryptomon did not "
            f"send for the other {_d(missing)} {base} (a withdrawal or a transfer out of the "
            f"account?), so cryptomon booked no sale and no PnL for them; move {_d(missing)} "
            f"{base} back to the account, then resume trading"
        )

    def _spot_held(self) -> dict[str, Decimal]:
        """The base-currency coins the long spot positions hold, by coin."""
        held: dict[str, Decimal] = {}
        for pos in self.context.portfolio.open_positions():
            if pos.amount > 0 and pos.contract is None:
                base, _ = split_symbol(pos.symbol)
                held[base] = held.get(base, ZERO) + pos.amount
        return held

    async def _adopt_spot_sales(self, balances: dict[str, Decimal]) -> None:
        """A coin's balance below what the long spot positions hold: the account's trades of
        each such position's market since it opened are searched for sales the engine did not
        send (someone selling the coins by hand on the venue's website or app); each one is
        adopted as a ``venue`` close like a contract's (its fills realize the PnL at the
        sale's price and fee, the protection stays armed for what is left or is disarmed once
        the position is flat, the exit is alerted), never more than the balance lost (a sale
        of coins that were not the position's is not the position's). A buy's fee paid in
        the coin is in the position already (it holds the amount less that fee): it is no
        shortfall."""
        ctx = self.context
        short = {
            base: amount - balances.get(base, ZERO)
            for base, amount in self._spot_held().items()
            if balances.get(base, ZERO) < amount
        }
        if not short:
            return
        for key, pos in list(ctx.portfolio.positions.items()):
            base, _ = split_symbol(pos.symbol)
            if pos.contract is not None or pos.amount <= 0 or short.get(base, ZERO) <= 0:
                continue
            for found in await self._closes(pos):
                held = ctx.portfolio.positions[key].amount
                limit = min(short[base], held)
                intent = found.intent
                if limit <= 0:
                    break
                if intent.client_order_id in ctx.book or intent.side != "sell":
                    continue
                close = found
                if intent.amount > limit:
                    close = part(
                        found,
                        limit,
                        "the balance fell by no more than that: the rest sold coins that were "
                        "not the position's",
                    )
                await self.executor.adopt_forced(close.intent, close.order, close.reason)
                short[base] -= close.intent.amount

    async def _venue_positions(self) -> dict[str, Decimal] | None:
        """The venue's contract positions (signed contracts), None when it reports none; a
        broker that also reads the unrealized PnL the venue reports for each keeps them for
        the cash (:meth:`_unmanaged_unrealized`)."""
        broker = self.context.broker
        self._venue = {}
        details = getattr(broker, "fetch_venue_positions", None)
        if callable(details):
            self._venue = await self._retry("fetch_positions", details)
            return {symbol: p.contracts for symbol, p in self._venue.items()}
        fetch = getattr(broker, "fetch_positions", None)
        if not callable(fetch):
            return None
        venue: dict[str, Decimal] = await self._retry("fetch_positions", fetch)
        return venue

    def _own_unrealized(self, currency: str) -> Decimal:
        """The unrealized PnL of the engine's open contracts settled in ``currency`` that the
        venue's balance holds: where the venue's position is all the engine's and the venue
        reports its unrealized PnL, the venue's figure (at the venue's mark, the one its
        balance uses: the engine's mark may be stale, after a restart the last it knew, and
        the cash would then be off by the move since, counted again once the engine's mark
        catches up); else the engine's own at its mark (a position added to by hand takes
        the rest from :meth:`_unmanaged_unrealized`; a broker without the venue's figures)."""
        ours: dict[str, Decimal] = {}
        own_pnl: dict[str, Decimal] = {}
        for pos in self.context.portfolio.positions.values():
            c = pos.contract
            if c is not None and pos.amount != 0 and c.settle == currency:
                ours[pos.symbol] = ours.get(pos.symbol, ZERO) + pos.amount
                own_pnl[pos.symbol] = own_pnl.get(pos.symbol, ZERO) + pos.unrealized_pnl
        total = ZERO
        for symbol, mine in ours.items():
            venue = self._venue.get(symbol)
            figure = None if venue is None or venue.settle != currency else venue.unrealized
            theirs = ZERO if venue is None else venue.contracts
            all_ours = theirs != 0 and (theirs > 0) == (mine > 0) and abs(theirs) <= abs(mine)
            total += figure if figure is not None and all_ours else own_pnl[symbol]
        return total

    def _unmanaged_unrealized(self, currency: str) -> Decimal:
        """The unrealized PnL the venue reports for the parts of its positions settled in
        ``currency`` that are not the engine's (after the closes by hand were adopted): all
        of a position where the engine holds none or holds the other side (the rest of a
        flip by hand, a position opened outside cryptomon); of a larger one on the same side
        (added to by hand), the venue's figure less the engine's own contracts' unrealized
        PnL (at the engine's entry and mark, what ``Portfolio.contract_unrealized``
        leaves out): a position's PnL is the sum of its lots', so that is the added lots' at
        their own prices, and the cash is the wallet. (The venue's figure pro rata would
        price them at the venue's average entry: the cash off by the engine's contracts
        times the gap between its entry and the venue's.) A venue that gives no figure for
        such a position: nothing is guessed (the cash keeps it, as the venue's balance
        does) and a warning says so, once while it stays."""
        ours: dict[str, Decimal] = {}
        own_pnl: dict[str, Decimal] = {}  # the engine's contracts' unrealized PnL (settle)
        for pos in self.context.portfolio.positions.values():
            if pos.contract is not None:
                ours[pos.symbol] = ours.get(pos.symbol, ZERO) + pos.amount
                own_pnl[pos.symbol] = own_pnl.get(pos.symbol, ZERO) + pos.unrealized_pnl
        total = ZERO
        unknown: set[str] = set()
        for symbol, venue in sorted(self._venue.items()):
            theirs, mine = venue.contracts, ours.get(symbol, ZERO)
            if venue.settle != currency or theirs == 0:
                continue
            same_side = mine != 0 and (mine > 0) == (theirs > 0)
            if same_side and abs(theirs) <= abs(mine):
                continue  # all of it is the engine's (or less than the engine's: a mismatch)
            if venue.unrealized is None:
                unknown.add(symbol)
                if symbol not in self._pnl_unknown:
                    log.warning(
                        "trading.unmanaged_pnl_unknown",
                        symbol=symbol,
                        contracts=_d(theirs),
                        detail=(
                            "the venue reports no unrealized PnL for a position cryptomon "
                            "does not manage: the cash taken from the venue's balance "
                            "includes that position's unrealized PnL"
                        ),
                    )
                continue
            if same_side:
                total += venue.unrealized - own_pnl.get(symbol, ZERO)
            else:
                total += venue.unrealized
        self._pnl_unknown = unknown
        return total

    async def _adopt_forced_closes(self, venue: dict[str, Decimal]) -> None:
        """A contract position the venue holds differently may have been closed or reduced by
        an order the engine did not send: the venue's own (liquidation, auto-deleveraging,
        delivery) or one placed by hand on the account. The broker's ``forced_closes`` lists
        the finished orders among the account's trades since the position opened; each one
        that is not ours (:meth:`_ours`) and reduces the position is adopted like the paper
        broker's forced closes (its fills realize the PnL, the protection is disarmed and the
        position's venue legs canceled once it is flat, the exit is alerted). One that went
        through zero (a trade by hand that flipped the position) is adopted for the part that
        closed it (:func:`~cryptomon.trading.brokers.ccxt_forced.part`); the rest is the
        venue's unmanaged position (:meth:`_check_contracts`). Anything else (an order that
        adds to the position) stays a mismatch."""
        ctx = self.context
        for key, pos in list(ctx.portfolio.positions.items()):
            if pos.contract is None or pos.amount in (ZERO, venue.get(pos.symbol, ZERO)):
                continue  # flat: nothing of the engine's to close (the rest is unmanaged)
            for found in await self._closes(pos):
                intent = found.intent
                held = ctx.portfolio.positions[key].amount
                if intent.client_order_id in ctx.book:
                    continue
                if held == 0 or (held > 0) != (intent.side == "sell"):
                    log.warning(
                        "trading.forced_close_ignored",
                        client_order_id=intent.client_order_id,
                        detail=f"{intent.side} {intent.amount} does not reduce {held}",
                    )
                    continue
                close = found
                if intent.amount > abs(held):  # through zero: the close is ours, not the rest
                    close = part(
                        found,
                        abs(held),
                        f"the rest went beyond the {_d(held)} contracts cryptomon held, into "
                        "a position it did not open and does not manage",
                    )
                    self._flipped.add(pos.symbol)
                await self.executor.adopt_forced(close.intent, close.order, close.reason)

    async def _closes(self, pos: Position) -> list[ForcedClose]:
        """The finished orders of ``pos``'s market since it opened that the engine did not
        send (none when the broker cannot list them, or the venue did not answer)."""
        find = getattr(self.context.broker, "forced_closes", None)
        if not callable(find):
            return []
        try:
            closes = await self._retry(
                "forced_closes", partial(find, pos.symbol, pos.opened or None)
            )
            closes = [c for c in closes if not self._ours(c)]
            if any(c.intent.origin == "venue" for c in closes):
                # a trigger leg of ours that fired at the venue trades under an order of
                # the venue's own id (Binance's algo orders): only the leg's lookup, after
                # the trades were read, says it is ours and counts its fills
                await self._refresh_orders(pos.exchange, pos.symbol)
                closes = [c for c in closes if not self._ours(c)]
        except Exception as exc:  # not found: the mismatch is reported as before
            log.warning("trading.forced_closes_failed", symbol=pos.symbol, error=repr(exc))
            return []
        return closes

    def _ours(self, close: ForcedClose) -> bool:
        """Whether a venue order is one this engine sent (a client id it issues, or one of its
        journal's), or one whose fills it has counted already (an order of ours whose venue
        id is another, like a fired trigger leg; an adopted close)."""
        ctx = self.context
        cid = close.venue_client_id
        if cid and (is_ours(cid) or cid in ctx.book):
            return True
        return any(self.executor.counted(f) for f in close.order.fills)

    async def _refresh_orders(self, exchange: str, symbol: str) -> None:
        """Look up the engine's open orders of one market now and apply what the venue says
        (what the poller does for every open order)."""
        for record in self.context.book.open(exchange, symbol):
            if record.state == OrderState.UNKNOWN:  # its own settling looks it up
                continue
            answer = await self._lookup(symbol, record.intent.client_order_id)
            if answer is not None:
                await self.executor.apply_broker_order(record, answer)

    def _check_contracts(
        self, mismatches: list[str], unmanaged: dict[str, str], venue: dict[str, Decimal]
    ) -> None:
        """Contract positions (signed contracts) equal the venue's; a venue position where
        the engine holds none is unmanaged (not the engine's to protect or trade)."""
        ctx = self.context
        ours = {p.symbol: p.amount for p in ctx.portfolio.positions.values() if p.contract}
        for symbol in sorted(set(ours) | set(venue)):
            mine, theirs = ours.get(symbol, ZERO), venue.get(symbol, ZERO)
            if mine == theirs:
                continue
            if mine == 0:
                unmanaged[symbol] = (
                    f"{symbol}: the venue holds {_d(theirs)} contracts that cryptomon did not "
                    "open and does not manage (a trade by hand that went beyond the position "
                    "it held, or one opened outside cryptomon): close that position on the "
                    f"venue; cryptomon sends no entry on {symbol} until it is flat"
                )
                continue
            mismatches.append(
                f"{symbol}: position {_d(mine)} contracts but the venue holds {_d(theirs)}"
            )

    async def _open_orders(self, *, per_symbol: bool) -> list[BrokerOrder]:
        """Every open venue order: one call, or one per traded symbol (configured, or with an
        order or a position) when ``per_symbol`` or the broker says its venue needs it."""
        ctx = self.context
        broker = ctx.broker
        need = getattr(broker, "open_orders_need_symbol", None)
        if not per_symbol and not (callable(need) and need()):
            return await self._retry("fetch_open_orders", broker.fetch_open_orders)
        symbols = set(ctx.config.symbols)
        symbols.update(ctx.book.symbols)  # kept as orders are added: no walk of the book
        symbols.update(p.symbol for p in ctx.portfolio.open_positions())
        out: list[BrokerOrder] = []
        for symbol in sorted(symbols):
            try:
                out.extend(
                    await self._retry(
                        "fetch_open_orders", partial(broker.fetch_open_orders, symbol)
                    )
                )
            except OrderRejectedError as exc:  # not a market of this venue: nothing to find
                log.warning("trading.open_orders_skipped", symbol=symbol, error=str(exc))
        return out

    async def _lookup(self, symbol: str, coid: str) -> BrokerOrder | None:
        broker = self.context.broker
        return await self._retry("fetch_order", partial(broker.fetch_order, symbol, coid))

    async def _settle_journal_orders(self, mismatches: list[str]) -> None:
        """Step 1: look up every order the journal left open; close what the venue never saw."""
        ctx = self.context
        executor = self.executor
        for record in ctx.book.open():
            intent = record.intent
            answer = await self._lookup(intent.symbol, intent.client_order_id)
            if answer is None:
                if ctx.clock.time() < absent_deadline(ctx, record):  # may still be accepted
                    executor.move(
                        record, OrderState.UNKNOWN, "not at the venue yet (reconciliation)"
                    )
                    executor.settle_later(record)
                    continue
                if record.state in (
                    OrderState.SUBMITTED,
                    OrderState.PARTIALLY_FILLED,
                    OrderState.CANCEL_PENDING,
                ):
                    mismatches.append(
                        f"order {intent.client_order_id} was {record.state} locally but "
                        f"is unknown at the venue"
                    )
                if record.state in (OrderState.PARTIALLY_FILLED, OrderState.CANCEL_PENDING):
                    # it did reach the venue (it has fills, or was being canceled): closed
                    # with what it filled, never left open for good
                    executor.move(
                        record, OrderState.CANCELED, "unknown at the venue (reconciliation)"
                    )
                    continue
                record.absent = True
                executor.move(
                    record, OrderState.REJECTED, "never reached the venue (reconciliation)"
                )
                continue
            await executor.apply_broker_order(record, answer)
            if record.state == OrderState.UNKNOWN:
                executor.settle_later(record)
        await self._refetch_incomplete()

    async def _refetch_incomplete(self) -> None:
        """Finished orders whose fills the crash lost: their fills are fetched again."""
        ctx = self.context
        for record in ctx.incomplete:
            intent = record.intent
            answer = await self._lookup(intent.symbol, intent.client_order_id)
            if answer is None:
                log.error(
                    "trading.fills_lost",
                    client_order_id=intent.client_order_id,
                    detail="the venue no longer knows this order",
                )
                continue
            await self.executor.apply_broker_order(record, answer)
        ctx.incomplete.clear()
