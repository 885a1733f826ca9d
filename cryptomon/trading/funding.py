"""Funding payments into the positions: the engine asks the broker's income history (the paper
broker's is built from ``Funding`` events, a live venue's is its own) for the payments of each
open contract position since it opened, and applies each payment once.

A payment belongs to the round trip that held the position at its time. A trip that closed
since the last sync is asked for from its opening too, also when the market has been opened
again (or flipped) since: its payments, older than the new position, are booked on the closed
trip (its PnL, the account's realized PnL and the cash), never on the new position, and not
dropped. The venue paid them, so the cash stays the venue's.

The venue pays the position held at the funding time and stamps the payment at or slightly
after it (Binance's income history: the funding time plus up to a few seconds); the time a
payment carries is its stamp, not the funding time. So a trip that closed less than
:data:`FUNDING_STAMP_LAG_S` before a payment's stamp, with the market flat at the stamp, held
it (closed just after the funding time): it is booked on that trip. A payment stamped later
than that after the close of a flat position is not ours (a position opened on the account
outside the engine). When the market was opened again between the close and the stamp, the
payment goes to the open position (the stamp alone cannot tell which of the two held the
funding time; reopening within seconds of a funding time is the rare case).

Each payment is committed to the journal (a ``FundingJournal``) before it is applied; after a
restart :meth:`FundingSync.replay` applies the stored payments in time order with the fills
(so a paper position's funding, which only the paper broker's memory knew, survives), and
marks them seen: the next sync of a live venue's history applies only what is new.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from cryptomon.events import Fill
from cryptomon.trading.brokers.base import FundingSource
from cryptomon.trading.context import EngineContext
from cryptomon.trading.journal import FundingJournal, Journal, StoredFunding
from cryptomon.trading.position import Position

log = structlog.get_logger()

FUNDING_STAMP_LAG_S = 60.0
"""How long after the funding time a venue may stamp its payment: a payment stamped up to this
long after a flat position's close is the closed trip's."""


class FundingSync:
    """Applies the broker's funding payments to the portfolio, each payment once."""

    def __init__(self, *, context: EngineContext) -> None:
        self.context = context
        self._seen: set[str] = set()
        self._last = context.now()  # positions closed after this are asked once more
        self._trips = len(context.portfolio.trades)  # the round trips closed before the sync

    async def sync(self) -> int:
        """Fetch and apply new payments of every open contract position, and of those closed
        since the last sync (a funding time can pass between the sync and the close) or less
        than :data:`FUNDING_STAMP_LAG_S` before it (the venue may not have stamped the payment
        of a funding time just before the close yet); returns how many."""
        ctx = self.context
        since_last, self._last = self._last, ctx.now()
        trips, self._trips = self._trips, len(ctx.portfolio.trades)
        # closed since the last sync, whatever the time of the fill that closed them
        closed = {(t.exchange, t.symbol) for t in ctx.portfolio.trades[trips:]}
        contracts = [
            p
            for p in ctx.portfolio.positions.values()
            if p.contract is not None
            and (
                p.amount != 0
                or p.updated + FUNDING_STAMP_LAG_S >= since_last
                or (p.exchange, p.symbol) in closed
            )
        ]
        broker = ctx.broker
        # spot only: nothing to ask (before the protocol check, slow on a non-source)
        if not contracts or not isinstance(broker, FundingSource):
            return 0
        applied = 0
        portfolio = ctx.portfolio
        for pos in contracts:
            # a trip closed since the last sync (the position may be open again, or flipped,
            # with a later ``opened``): its payments are asked for too
            earlier = portfolio.first_open_since(pos.exchange, pos.symbol, trips)
            since = pos.opened if earlier is None else min(pos.opened, earlier)
            try:
                payments = await broker.fetch_funding(pos.symbol, since=since)
            except Exception as exc:  # retried on the next sync
                log.warning("trading.funding_failed", symbol=pos.symbol, error=repr(exc))
                continue
            booked = 0
            for pay in payments:
                if pay.payment_id in self._seen or not self._held(pos, pay.ts, earlier):
                    continue
                price = pos.mark if pos.mark is not None else pos.avg_price
                if isinstance(ctx.journal, FundingJournal):
                    try:
                        await ctx.journal.record_funding(StoredFunding(pay, price))
                    except Exception as exc:  # not applied: tried again on the next sync
                        log.warning("trading.funding_unrecorded", error=repr(exc))
                        break
                self._seen.add(pay.payment_id)
                portfolio.apply_funding(pos.exchange, pos.symbol, pay.amount, price, pay.ts)
                booked += 1
            if booked:
                ctx.publish_position(pos)
            applied += booked
        return applied

    @staticmethod
    def _held(pos: Position, ts: float, earlier: float | None) -> bool:
        """Whether a payment stamped at ``ts`` belongs to a trip of ours: the position open now
        (from its opening), the trip just closed (up to its close, plus the venue's stamp lag:
        the funding time was before the close), or a trip closed since the last sync (from
        ``earlier``, its opening; the portfolio books it on that trip)."""
        if ts >= pos.opened:
            return pos.amount != 0 or ts <= pos.updated + FUNDING_STAMP_LAG_S
        return earlier is not None and ts >= earlier

    def replayed(self) -> None:
        """The journal is replayed: its round trips are not closed since the last sync."""
        self._trips = len(self.context.portfolio.trades)

    def replay(self, stored: StoredFunding) -> None:
        """A stored payment at startup: applied to its position once, no events."""
        pay = stored.payment
        if pay.payment_id in self._seen:
            return
        self._seen.add(pay.payment_id)
        self.context.portfolio.apply_funding(
            pay.exchange, pay.symbol, pay.amount, stored.price, pay.ts
        )


async def replay_journal(
    journal: Journal, *, replay_fill: Callable[[Fill], None], sync: FundingSync
) -> None:
    """The stored fills and funding payments at startup, in time order (a payment belongs to
    the position open at its time)."""
    fills = await journal.fills()
    funding = await journal.funding_payments() if isinstance(journal, FundingJournal) else []
    events: list[tuple[float, int, Fill | StoredFunding]] = [(f.ts, 0, f) for f in fills]
    events += [(p.payment.ts, 1, p) for p in funding]
    events.sort(key=lambda e: (e[0], e[1]))
    for _, _, item in events:
        if isinstance(item, StoredFunding):
            sync.replay(item)
        else:
            replay_fill(item)
    sync.replayed()
