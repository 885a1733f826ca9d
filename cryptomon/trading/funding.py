"""Funding payments into the positions: the engine asks the broker's income history (the paper
broker's is built from ``Funding`` events, a live venue's is its own) for the payments of each
open contract position since it opened, and applies each payment once.

After a restart the positions are rebuilt from the journal without funding; the next sync
reads the payments since each position opened again and applies them, so a live position's
funding equals the venue's.
"""

from __future__ import annotations

import structlog

from cryptomon.trading.brokers.base import FundingSource
from cryptomon.trading.context import EngineContext

log = structlog.get_logger()


class FundingSync:
    """Applies the broker's funding payments to the portfolio, each payment once."""

    def __init__(self, *, context: EngineContext) -> None:
        self.context = context
        self._seen: set[str] = set()

    async def sync(self) -> int:
        """Fetch and apply new payments of every open contract position; returns how many."""
        ctx = self.context
        broker = ctx.broker
        if not isinstance(broker, FundingSource):
            return 0
        applied = 0
        for pos in ctx.portfolio.open_positions():
            if pos.contract is None:
                continue
            try:
                payments = await broker.fetch_funding(pos.symbol, since=pos.opened)
            except Exception as exc:  # retried on the next sync
                log.warning("trading.funding_failed", symbol=pos.symbol, error=repr(exc))
                continue
            for pay in payments:
                if pay.payment_id in self._seen or pay.ts < pos.opened:
                    continue
                self._seen.add(pay.payment_id)
                price = pos.mark if pos.mark is not None else pos.avg_price
                ctx.portfolio.apply_funding(pos.exchange, pos.symbol, pay.amount, price, pay.ts)
                applied += 1
            if applied:
                ctx.publish_position(pos)
        return applied
