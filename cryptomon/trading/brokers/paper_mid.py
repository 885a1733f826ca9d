"""The book mid as the paper venue's liquidation price where a market has no other: a contract
market that has shown neither a mark (``Funding.mark_price``) nor a public trade, such as
Gate.io futures subscribed to books and book tickers only.

BookTop arrives on every book update of every market, so it is subscribed only while at least
one such market is watched, filtered to the watched markets: the markets with marks or trades
(nearly all) cost nothing here per book update.

A thin book is a poor price: a top whose spread is wider than ``max_spread`` (a fraction of
its mid; ``trading.paper.mid_max_spread``) is skipped, and counted in :attr:`BookMidWatch.skipped`,
so a book whose one side emptied or thinned out to a far level does not liquidate anything
(the confirmation over time is :class:`~cryptomon.trading.brokers.paper_forced.ForcedCloses`').
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from cryptomon.decimals import decimal_mid
from cryptomon.events import BookTop
from cryptomon.hub import Hub, InlineSubscription

MidListener = Callable[[str, str, Decimal, float], None]
"""Told ``(exchange, symbol, mid in quote currency, exchange time)`` of a watched market."""


class BookMidWatch:
    """The markets whose book mid is watched, and the filtered BookTop subscription."""

    name = "paper-broker.book-mid"

    def __init__(self, *, hub: Hub, on_mid: MidListener, max_spread: float = 0.02) -> None:
        self._hub = hub
        self._on_mid = on_mid
        self.max_spread = max_spread
        self.skipped = 0  # tops of watched markets skipped for a spread wider than max_spread
        self.keys: set[tuple[str, str]] = set()  # (exchange, symbol)
        self._sub: InlineSubscription | None = None

    def set(self, key: tuple[str, str], watched: bool) -> None:
        """Watch (or stop watching) the market ``key``: the subscription is remade for the
        markets watched, and dropped when there are none (changes are rare: a position opened
        or closed, a market's first mark or trade)."""
        if watched == (key in self.keys):
            return
        if watched:
            self.keys.add(key)
        else:
            self.keys.discard(key)
        self.close()
        if self.keys:
            self._sub = self._hub.subscribe(
                BookTop,
                self._on_top,
                name=self.name,
                exchanges={ex for ex, _ in self.keys},
                symbols={sym for _, sym in self.keys},
            )

    def close(self) -> None:
        if self._sub is not None:
            self._sub.close()
            self._sub = None

    def _on_top(self, top: BookTop) -> None:
        # the filter matches exchanges and symbols separately: check the pair
        if (top.exchange, top.symbol) in self.keys and top.bid > 0 and top.ask > 0:
            mid = (top.bid + top.ask) / 2
            if top.ask - top.bid > self.max_spread * mid:
                self.skipped += 1
                return
            self._on_mid(top.exchange, top.symbol, decimal_mid(top.bid, top.ask), top.ts)
