"""cryptofeed callback objects -> hub events (the hot path of every feed).

One :class:`Converter` per exchange feed. Its coroutine callbacks are handed to the cryptofeed
``Feed`` (live, simulator and replay alike); each converts the cryptofeed object to a float
event, publishes it, and bumps the channel's health counter. Order books: cryptofeed keeps the
book (``max_depth`` = config ``depth``), this module reads only the top ``book_levels`` levels
of it (``SortedDict.index(i)``, no full copy) for :class:`~cryptomon.events.BookTop` on every
update, and copies the top ``depth`` levels for a :class:`~cryptomon.events.BookSnapshot` at
most every ``book_snapshot_interval_s`` (receipt time, so replays are throttled by data time).

A crossed book (best bid >= best ask) is not published: it is counted and the feed is asked to
resync that symbol (``on_crossed``). On an exchange that updates books by deltas, a second
full book for a symbol on the same connection means the exchange class detected a sequence gap
and re-synchronised: counted as a gap, published as ``FeedStatus(gap)`` + ``FeedStatus(resync)``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from cryptofeed.defines import (
    CANDLES,
    FUNDING,
    L2_BOOK,
    LIQUIDATIONS,
    OPEN_INTEREST,
    TICKER,
    TRADES,
)

from cryptomon.events import (
    BookSnapshot,
    BookTop,
    Candle,
    Funding,
    Liquidation,
    OpenInterest,
    Ticker,
    Trade,
)
from cryptomon.feeds.health import ChannelHealth, FeedHealth
from cryptomon.hub import Hub

# config subscription name -> cryptofeed channel
CF_CHANNELS: dict[str, str] = {
    "trades": TRADES,
    "orderbook": L2_BOOK,
    "ticker": TICKER,
    "candles": CANDLES,
    "funding": FUNDING,
    "liquidations": LIQUIDATIONS,
    "open_interest": OPEN_INTEREST,
}
CONFIG_CHANNELS: dict[str, str] = {v: k for k, v in CF_CHANNELS.items()}

Callback = Callable[[Any, float], Awaitable[None]]


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


class Converter:
    """Callbacks for one cryptofeed feed; publishes events under ``exchange``."""

    def __init__(
        self,
        exchange: str,
        *,
        hub: Hub,
        health: FeedHealth,
        book_levels: int = 10,
        depth: int = 20,
        book_snapshot_interval_s: float = 1.0,
    ) -> None:
        self.exchange = exchange
        self.hub = hub
        self.health = health
        self.book_levels = book_levels
        self.depth = depth
        self.snapshot_interval = book_snapshot_interval_s
        self._last_snapshot: dict[str, float] = {}
        self._book_seen: set[str] = set()  # symbols with a book on this connection
        self._uses_deltas = False  # the exchange updates books by deltas (not full books)
        self.on_crossed: Callable[[str], None] | None = None

    def _ch(self, channel: str) -> ChannelHealth:
        ch = self.health.channels.get(channel)
        if ch is None:  # a channel the recording has but the config did not ask for
            ch = self.health.channels[channel] = ChannelHealth(channel, None)
        return ch

    def callbacks(self, channels: list[str]) -> dict[str, Callback]:
        """cryptofeed ``callbacks=`` for the given config channel names."""
        table: dict[str, Callback] = {
            "trades": self.trade,
            "orderbook": self.book,
            "ticker": self.ticker,
            "candles": self.candle,
            "funding": self.funding,
            "liquidations": self.liquidation,
            "open_interest": self.open_interest,
        }
        return {CF_CHANNELS[c]: table[c] for c in channels}

    def reset_connection(self) -> None:
        """After a (re)connection every book starts from a fresh snapshot: not a gap."""
        self._book_seen.clear()

    def _seen(self, ch: ChannelHealth, receipt: float) -> None:
        ch.messages += 1
        ch.last = time.monotonic()
        ch.last_recv = receipt
        if ch.state != "live":
            self.health.became_live(ch)

    # ------------------------------------------------------------------ callbacks

    async def trade(self, t: Any, receipt: float) -> None:
        self._seen(self._ch("trades"), receipt)
        self.hub.publish(
            Trade(
                exchange=self.exchange,
                symbol=t.symbol,
                ts=float(t.timestamp or receipt),
                ts_recv=float(receipt),
                price=float(t.price),
                amount=float(t.amount),
                side=t.side,
                trade_id=None if t.id is None else str(t.id),
            )
        )

    async def ticker(self, t: Any, receipt: float) -> None:
        self._seen(self._ch("ticker"), receipt)
        self.hub.publish(
            Ticker(
                exchange=self.exchange,
                symbol=t.symbol,
                ts=float(t.timestamp or receipt),
                ts_recv=float(receipt),
                bid=float(t.bid),
                ask=float(t.ask),
            )
        )

    async def book(self, ob: Any, receipt: float) -> None:
        ch = self._ch("orderbook")
        self._seen(ch, receipt)
        symbol = ob.symbol
        if ob.delta is None:
            if self._uses_deltas and symbol in self._book_seen:
                self.health.gap("orderbook", symbol, "new full book on a live connection")
            self._book_seen.add(symbol)
        elif not self._uses_deltas:
            self._uses_deltas = True
            self._book_seen.add(symbol)
        bids = ob.book.bids
        asks = ob.book.asks
        nb = len(bids)
        na = len(asks)
        if not nb or not na:
            return
        bid, bid_size = bids.index(0)
        ask, ask_size = asks.index(0)
        bid_f = float(bid)
        ask_f = float(ask)
        if bid_f >= ask_f:
            self.health.crossed += 1
            if self.on_crossed is not None:
                self.on_crossed(symbol)
            return
        receipt = float(receipt)
        ts = float(ob.timestamp or receipt)
        levels = self.book_levels
        bid_depth = float(bid_size)
        for i in range(1, min(levels, nb)):
            bid_depth += float(bids.index(i)[1])
        ask_depth = float(ask_size)
        for i in range(1, min(levels, na)):
            ask_depth += float(asks.index(i)[1])
        total = bid_depth + ask_depth
        spread = ask_f - bid_f
        mid = (ask_f + bid_f) / 2
        self.hub.publish(
            BookTop(
                exchange=self.exchange,
                symbol=symbol,
                ts=ts,
                ts_recv=receipt,
                bid=bid_f,
                bid_size=float(bid_size),
                ask=ask_f,
                ask_size=float(ask_size),
                spread=spread,
                spread_bps=spread / mid * 10_000 if mid > 0 else 0.0,
                bid_depth=bid_depth,
                ask_depth=ask_depth,
                imbalance=(bid_depth - ask_depth) / total if total > 0 else 0.0,
                levels=min(levels, nb, na),
            )
        )
        last = self._last_snapshot.get(symbol)
        if last is None or receipt - last >= self.snapshot_interval:
            self._last_snapshot[symbol] = receipt
            depth = self.depth
            self.hub.publish(
                BookSnapshot(
                    exchange=self.exchange,
                    symbol=symbol,
                    ts=ts,
                    ts_recv=receipt,
                    bids=tuple((float(p), float(s)) for p, s in bids.to_list()[:depth]),
                    asks=tuple((float(p), float(s)) for p, s in asks.to_list()[:depth]),
                )
            )

    async def candle(self, c: Any, receipt: float) -> None:
        self._seen(self._ch("candles"), receipt)
        self.hub.publish(
            Candle(
                exchange=self.exchange,
                symbol=c.symbol,
                ts=float(c.timestamp or receipt),
                ts_recv=float(receipt),
                interval=str(c.interval),
                start=float(c.start),
                end=float(c.stop),
                open=float(c.open),
                high=float(c.high),
                low=float(c.low),
                close=float(c.close),
                volume=float(c.volume),
                trades=None if c.trades is None else int(c.trades),
                closed=bool(c.closed),
            )
        )

    async def funding(self, f: Any, receipt: float) -> None:
        self._seen(self._ch("funding"), receipt)
        self.hub.publish(
            Funding(
                exchange=self.exchange,
                symbol=f.symbol,
                ts=float(f.timestamp or receipt),
                ts_recv=float(receipt),
                rate=float(f.rate or 0.0),
                mark_price=_f(f.mark_price),
                predicted_rate=_f(f.predicted_rate),
                next_funding_time=_f(f.next_funding_time),
            )
        )

    async def liquidation(self, liq: Any, receipt: float) -> None:
        self._seen(self._ch("liquidations"), receipt)
        self.hub.publish(
            Liquidation(
                exchange=self.exchange,
                symbol=liq.symbol,
                ts=float(liq.timestamp or receipt),
                ts_recv=float(receipt),
                side=liq.side,
                price=float(liq.price),
                amount=float(liq.quantity),
                status=str(liq.status or ""),
            )
        )

    async def open_interest(self, oi: Any, receipt: float) -> None:
        self._seen(self._ch("open_interest"), receipt)
        self.hub.publish(
            OpenInterest(
                exchange=self.exchange,
                symbol=oi.symbol,
                ts=float(oi.timestamp or receipt),
                ts_recv=float(receipt),
                open_interest=float(oi.open_interest),
            )
        )
