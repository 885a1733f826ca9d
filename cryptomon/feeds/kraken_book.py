"""Kraken order books held at ``max_depth`` without a sort per level.

Kraken sends no removal for a level that leaves the subscribed depth, so cryptofeed's Kraken
feed builds its books with ``truncate=True`` whenever ``max_depth`` is not Kraken's largest
depth. The ``order_book`` sorted dict then truncates on every level it sets, new or not: it
lists and sorts every price of the side and drops those past ``max_depth`` (a snapshot keeps
all its levels until the first level set on that side; a removal truncates nothing). In the
replay benchmark that was ~11 % of our instructions on KRAKEN (callgrind), all of the replay
harness's cost over cryptofeed's own ``playback``.

:class:`KrakenBooks` (a mixin placed before cryptofeed's ``Kraken``) keeps the same books:
it builds them without ``truncate`` and, from its own set of each side's prices, drops the
levels past ``max_depth`` itself after a level is set, which costs one ``min``/``max`` when a
new level made the side one level too deep and nothing when the side is not too deep (the
sorted dict sorts in both cases). Levels, deltas, checksums and callbacks are cryptofeed's:
``tests/unit/feeds/test_kraken_book.py`` compares every level of both books after every
message of the shared recording and of random ones.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cryptofeed.defines import ASK, BID, L2_BOOK
from cryptofeed.exceptions import BadChecksum
from cryptofeed.exchanges.kraken import Kraken
from cryptofeed.types import OrderBook

_SIDES = {"b": BID, "a": ASK}


def book_mixins(cls: type) -> tuple[type, ...]:
    """The mixins to put before ``cls`` in a feed class's bases (none unless Kraken)."""
    return (KrakenBooks,) if issubclass(cls, Kraken) and not issubclass(cls, KrakenBooks) else ()


class KrakenBooks:
    """Kraken's ``_book`` with books truncated by this class; see the module docstring."""

    max_depth: int
    valid_depths: list[int]
    checksum_validation: bool
    id: str
    _l2_book: dict[str, Any]
    book_callback: Any  # cryptofeed's Feed.book_callback

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # pair -> (its book, bid prices, ask prices): the keys of the book's two sides
        self._side_prices: dict[str, tuple[Any, set[Any], set[Any]]] = {}

    async def _book(self, msg: list[Any], pair: str, timestamp: float) -> None:
        depth = self.max_depth
        if not depth or depth == self.valid_depths[-1]:  # cryptofeed does not truncate
            await getattr(super(), "_book")(msg, pair, timestamp)  # noqa: B009 - mixin
            return
        parts = msg[1:-2]
        first = parts[0]
        if "as" in first:
            await self._book_snapshot(first, parts, pair, timestamp, depth)
            return
        book = self._l2_book[pair]
        prices = self._side_prices.get(pair)
        if prices is None or prices[0] is not book:  # a book this class did not build
            prices = self._side_prices[pair] = (book, set(book.book.bids), set(book.book.asks))
        delta: dict[str, list[tuple[Any, Any]]] = {BID: [], ASK: []}
        for part in parts:
            for key, updates in part.items():
                side = _SIDES.get(key)
                if side is None:
                    continue
                known = prices[1] if side == BID else prices[2]
                _apply(
                    book.book[side], known, updates, delta[side], depth=depth, best_high=side == BID
                )
        checksum = int(first["c"]) if "c" in first else None
        if self.checksum_validation and checksum is not None and book.book.checksum() != checksum:
            raise BadChecksum("Checksum validation on orderbook failed")
        await self.book_callback(
            L2_BOOK, book, timestamp, delta=delta, raw=parts, checksum=checksum
        )

    async def _book_snapshot(
        self, first: dict[str, Any], parts: list[Any], pair: str, timestamp: float, depth: int
    ) -> None:
        bids = {Decimal(level[0]): Decimal(level[1]) for level in first["bs"]}
        asks = {Decimal(level[0]): Decimal(level[1]) for level in first["as"]}
        book = OrderBook(
            self.id,
            pair,
            max_depth=depth,
            bids=bids,
            asks=asks,
            checksum_format="KRAKEN",
            truncate=False,
        )
        self._l2_book[pair] = book
        self._side_prices[pair] = (book, set(book.book.bids), set(book.book.asks))
        await self.book_callback(L2_BOOK, book, timestamp, raw=parts)


def _apply(
    side: Any,
    known: set[Any],
    updates: list[Any],
    delta: list[tuple[Any, Any]],
    *,
    depth: int,
    best_high: bool,
) -> None:
    """Kraken's level updates of one side, in order: a zero size removes a level that is
    there (Kraken repeats removals: the others are ignored), any other size sets it and then
    leaves the side at most ``depth`` deep (its worst levels dropped)."""
    for update in updates:
        price, size, *_ = update
        price = Decimal(price)
        size = Decimal(size)
        if size == 0:
            if price in known:
                del side[price]
                known.discard(price)
                delta.append((price, 0))
            continue
        delta.append((price, size))
        side[price] = size
        known.add(price)
        if len(known) > depth:
            _truncate(side, known, depth, best_high)


def _truncate(side: Any, known: set[Any], depth: int, best_high: bool) -> None:
    """Drop ``side``'s levels past the best ``depth``: usually one (a new level on a full
    side), all of a snapshot's deeper levels on the first level set after it."""
    if len(known) == depth + 1:
        worst = min(known) if best_high else max(known)
        del side[worst]
        known.discard(worst)
        return
    for price in sorted(known, reverse=best_high)[depth:]:
        del side[price]
        known.discard(price)
