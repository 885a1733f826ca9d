"""cryptofeed callback objects -> hub events (the hot path of every feed).

One :class:`Converter` per exchange feed. Its coroutine callbacks are handed to the cryptofeed
``Feed`` (live, simulator and replay alike); each converts the cryptofeed object to a float
event, publishes it, and bumps the channel's health counter (an int and the receipt time: no
clock call, no dict lookup; the channel objects are bound once). Order books: cryptofeed keeps
the book (``max_depth`` = config ``depth``); a per-symbol
:class:`~cryptomon.feeds.booktop.BookState` (bound once per symbol) follows the top
``book_levels`` levels from cryptofeed's delta (:mod:`cryptomon.feeds.booktop`) for the
:class:`~cryptomon.events.BookTop` published on every update, and the top ``depth`` levels are
copied for a :class:`~cryptomon.events.BookSnapshot` at most every ``book_snapshot_interval_s``
(receipt time, so replays are throttled by data time; unchanged levels reuse their floats).

A crossed book (best bid >= best ask) is not published: it is counted and the feed is asked to
resync that symbol (``on_crossed``). On an exchange that updates books by deltas, a second
full book for a symbol on the same connection means the exchange class detected a sequence gap
and re-synchronised: counted as a gap, published as ``FeedStatus(gap)`` + ``FeedStatus(resync)``.
"""

from __future__ import annotations

import asyncio
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
    Candle,
    Funding,
    Liquidation,
    OpenInterest,
    Ticker,
    Trade,
)
from cryptomon.feeds.booktop import BookState, TopTracker, book_top, float_levels
from cryptomon.feeds.fastevents import factory
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

_CACHE_ATTR = {"trades": "_trades_ch", "ticker": "_ticker_ch", "orderbook": "_book_ch"}
# the order in which the callbacks below pass each event's fields (checked by ``factory``)
TRADE_FIELDS = ("exchange", "symbol", "ts", "ts_recv", "price", "amount", "side", "trade_id")
TICKER_FIELDS = ("exchange", "symbol", "ts", "ts_recv", "bid", "ask", "last")
SNAPSHOT_FIELDS = ("exchange", "symbol", "ts", "ts_recv", "bids", "asks")
_new_trade = factory(Trade, TRADE_FIELDS)
_new_ticker = factory(Ticker, TICKER_FIELDS)
_new_snapshot = factory(BookSnapshot, SNAPSHOT_FIELDS)


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
        loop_yield_every: int = 16,
    ) -> None:
        self.exchange = exchange
        # cryptofeed's reader hands a whole burst of buffered messages to the callbacks without
        # giving the loop back; yielding every N messages lets call_soon work (the detectors'
        # micro-batch flush, API requests) run within the burst instead of after it.
        self._yield_every = loop_yield_every if loop_yield_every > 0 else 1 << 62
        self._since_yield = 0
        self.hub = hub
        self.health = health
        self.book_levels = book_levels
        self.depth = depth
        self.snapshot_interval = book_snapshot_interval_s
        self._uses_deltas = False  # the exchange updates books by deltas (not full books)
        self._tops = TopTracker(book_levels, spare=min(book_levels, max(0, depth - book_levels)))
        self._books = self._tops.states  # symbol -> BookState (bound once per symbol)
        self.on_crossed: Callable[[str], None] | None = None
        self._publish = hub.publish
        # Channel counters bound once (hot path: no dict lookup per message).
        self._trades_ch = self._ch("trades") if "trades" in health.channels else None
        self._ticker_ch = self._ch("ticker") if "ticker" in health.channels else None
        self._book_ch = self._ch("orderbook") if "orderbook" in health.channels else None

    def _ch(self, channel: str) -> ChannelHealth:
        ch = self.health.channels.get(channel)
        if ch is None:  # a channel the recording has but the config did not ask for
            ch = self.health.channels[channel] = ChannelHealth(channel, None)
        return ch

    def _init_ch(self, channel: str) -> ChannelHealth:
        ch = self._ch(channel)
        setattr(self, _CACHE_ATTR[channel], ch)
        return ch

    def _seen(self, ch: ChannelHealth, receipt: float) -> None:
        ch.messages += 1
        ch.last_recv = receipt
        if ch.state != "live":
            self.health.became_live(ch)

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

    def forget_book(self, symbol: str) -> None:
        """The feed drops this symbol's book to re-snapshot it: the next full book is expected."""
        st = self._books.get(symbol)
        if st is not None:
            st.seen = False
        self._tops.forget(symbol)

    def reset_connection(self) -> None:
        """After a (re)connection every book starts from a fresh snapshot: not a gap."""
        for st in self._books.values():
            st.seen = False

    # ------------------------------------------------------------------ callbacks

    # The three busy callbacks inline the channel bookkeeping (``_seen``): one attribute
    # increment and one store per message, no clock call (the receipt time is cryptofeed's).

    async def trade(self, t: Any, receipt: float) -> None:
        ch = self._trades_ch or self._init_ch("trades")
        ch.messages += 1
        ch.last_recv = receipt
        if ch.state != "live":
            self.health.became_live(ch)
        receipt = float(receipt)
        self._publish(
            _new_trade(
                self.exchange,
                t.symbol,
                float(t.timestamp or receipt),
                receipt,
                float(t.price),
                float(t.amount),
                t.side,
                None if t.id is None else str(t.id),
            )
        )
        self._since_yield += 1
        if self._since_yield >= self._yield_every:
            self._since_yield = 0
            await asyncio.sleep(0)

    async def ticker(self, t: Any, receipt: float) -> None:
        ch = self._ticker_ch or self._init_ch("ticker")
        ch.messages += 1
        ch.last_recv = receipt
        if ch.state != "live":
            self.health.became_live(ch)
        receipt = float(receipt)
        self._publish(
            _new_ticker(
                self.exchange,
                t.symbol,
                float(t.timestamp or receipt),
                receipt,
                float(t.bid),
                float(t.ask),
                None,
            )
        )
        self._since_yield += 1
        if self._since_yield >= self._yield_every:
            self._since_yield = 0
            await asyncio.sleep(0)

    async def book(self, ob: Any, receipt: float) -> None:
        ch = self._book_ch or self._init_ch("orderbook")
        ch.messages += 1
        ch.last_recv = receipt
        if ch.state != "live":
            self.health.became_live(ch)
        symbol = ob.symbol
        st = self._books.get(symbol) or self._tops.state(symbol)
        delta = ob.delta
        if delta is None:
            if st.seen and self._uses_deltas:
                self.health.gap("orderbook", symbol, "new full book on a live connection")
            st.seen = True
        elif not self._uses_deltas:
            self._uses_deltas = True
            st.seen = True
        book = ob.book
        if not self._tops.refresh(st, book, delta):
            if self._tops.crossed(book):
                self.health.crossed += 1
                if self.on_crossed is not None:
                    self.on_crossed(symbol)
            return
        receipt = float(receipt)
        ts = float(ob.timestamp or receipt)
        self._publish(book_top(st, self.exchange, symbol, ts, receipt))
        if receipt - st.last_snapshot >= self.snapshot_interval:
            st.last_snapshot = receipt
            self._snapshot(st, symbol, ts, receipt, book)
        self._since_yield += 1
        if self._since_yield >= self._yield_every:
            self._since_yield = 0
            await asyncio.sleep(0)

    def _snapshot(self, st: BookState, symbol: str, ts: float, receipt: float, book: Any) -> None:
        depth = self.depth
        bids, st.bids_memo = float_levels(book.bids.to_list()[:depth], st.bids_memo)
        asks, st.asks_memo = float_levels(book.asks.to_list()[:depth], st.asks_memo)
        self._publish(_new_snapshot(self.exchange, symbol, ts, receipt, bids, asks))

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
