"""cryptofeed callback objects -> hub events (the hot path of every feed).

One :class:`Converter` per exchange feed. Its coroutine callbacks are handed to the cryptofeed
``Feed`` (live, simulator and replay alike); each converts the cryptofeed object to a float
event, publishes it, and bumps the channel's health counter (an int and the receipt time: no
clock call, no dict lookup; the channel objects are bound once). Order books: cryptofeed keeps
the book (``max_depth`` = config ``depth``); a per-symbol
:class:`~cryptomon.feeds.booktop.BookState` (bound once per symbol) follows the top
``book_levels`` levels from cryptofeed's delta (:mod:`cryptomon.feeds.booktop`) on every update,
and the top ``depth`` levels are copied for a :class:`~cryptomon.events.BookSnapshot` at most
every ``book_snapshot_interval_s`` (receipt time, so replays are throttled by data time;
unchanged levels reuse their floats; taken from the levels the state follows when they cover
the book's ``depth``, else from a sorted read of the book).

Book tops are conflated (DESIGN.md section 7): an update marks its symbol dirty, and
:meth:`Converter.flush`, scheduled with ``loop.call_soon`` by the first dirty symbol of an
event-loop turn, publishes one :class:`~cryptomon.events.BookTop` per dirty symbol from the
latest book, with ``updates`` = the book updates it stands for (every update since the
symbol's previous BookTop, so the ``updates`` of a symbol's BookTops add up to its book
callbacks). Callback counts (``health``, the replay's exact counts) stay per update;
``health.book_tops`` counts the BookTops.

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
    Ticker,
    Trade,
)
from cryptomon.feeds.booktop import (
    BookState,
    SideLevels,
    TopTracker,
    base_levels,
    book_top,
    float_levels,
    followed_levels,
)
from cryptomon.feeds.fastevents import factory
from cryptomon.feeds.gate import UNRESOLVED, MarketGate
from cryptomon.feeds.health import ChannelHealth, FeedHealth
from cryptomon.feeds.rare import RareChannels
from cryptomon.feeds.times import MS_ABOVE, epoch_s
from cryptomon.hub import Hub
from cryptomon.market.quality import QualityGuard
from cryptomon.market.units import MarketUnits

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
CONFIG_CHANNELS: dict[str, str] = {channel: name for name, channel in CF_CHANNELS.items()}

Callback = Callable[[Any, float], Awaitable[None]]

_BOUND_CHANNEL_ATTR = {
    "trades": "_trades_channel",
    "ticker": "_ticker_channel",
    "orderbook": "_book_channel",
}
# the order in which the callbacks below pass each event's fields (checked by ``factory``)
TRADE_FIELDS = (
    *("exchange", "symbol", "ts", "ts_recv", "price", "amount", "side", "trade_id"),
    *("contracts", "notional", "notional_usd"),
)
TICKER_FIELDS = ("exchange", "symbol", "ts", "ts_recv", "bid", "ask", "last")
SNAPSHOT_FIELDS = (
    *("exchange", "symbol", "ts", "ts_recv", "bids", "asks"),
    *("contract_bids", "contract_asks"),
)
_new_trade = factory(Trade, TRADE_FIELDS)
_new_ticker = factory(Ticker, TICKER_FIELDS)
_new_snapshot = factory(BookSnapshot, SNAPSHOT_FIELDS)


_NO_UNITS = (None, None, None)  # contracts, notional, notional_usd of a market without a spec


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
        units: MarketUnits | None = None,
        quality: QualityGuard | None = None,
    ) -> None:
        self.exchange = exchange
        self._ts_shift = 0.0  # added to event and receipt times (looping benchmarks)
        self._id_tag = ""  # appended to trade ids (looping benchmarks)
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
        self._dirty: dict[str, BookState] = {}  # symbols with a BookTop to publish
        self._flush_scheduled = False
        self._publish = hub.publish
        # units from the instrument specs, quality verdicts (None, None: raw venue data)
        self.gate = MarketGate(
            exchange,
            publish=hub.publish,
            schedule_flush=self._schedule_flush,
            units=units,
            quality=quality,
        )
        self._unit_of = self.gate.unit_of
        self.gate.mid_of = self._book_mid
        self.rare = RareChannels(
            exchange, publish=hub.publish, seen=self._seen_name, gate=self.gate
        )
        # Channel counters bound once (hot path: no dict lookup per message).
        channels = health.channels
        self._trades_channel = self._channel("trades") if "trades" in channels else None
        self._ticker_channel = self._channel("ticker") if "ticker" in channels else None
        self._book_channel = self._channel("orderbook") if "orderbook" in channels else None

    def _book_mid(self, symbol: str) -> float | None:
        """The mid of ``symbol``'s followed book (None before both sides were seen): read
        when a rare channel needs it, nothing kept per book update."""
        state = self._books.get(symbol)
        if state is None or not state.loaded or not state.bid.top or not state.ask.top:
            return None
        return (state.bid.floats()[0] + state.ask.floats()[0]) * 0.5

    def _channel(self, name: str) -> ChannelHealth:
        channel = self.health.channels.get(name)
        if channel is None:  # a channel the recording has but the config did not ask for
            channel = self.health.channels[name] = ChannelHealth(name, None)
        return channel

    def _bind_channel(self, name: str) -> ChannelHealth:
        channel = self._channel(name)
        setattr(self, _BOUND_CHANNEL_ATTR[name], channel)
        return channel

    def _seen_name(self, name: str, receipt: float) -> None:
        self._seen(self._channel(name), receipt)

    def _seen(self, channel: ChannelHealth, receipt: float) -> None:
        channel.messages += 1
        channel.last_recv = receipt
        if channel.state != "live":
            self.health.became_live(channel)

    def callbacks(self, channels: list[str]) -> dict[str, Callback]:
        """cryptofeed ``callbacks=`` for the given config channel names."""
        table: dict[str, Callback] = {
            "trades": self.trade,
            "orderbook": self.book,
            "ticker": self.ticker,
            "candles": self.rare.candle,
            "funding": self.rare.funding,
            "liquidations": self.rare.liquidation,
            "open_interest": self.rare.open_interest,
        }
        return {CF_CHANNELS[name]: table[name] for name in channels}

    def forget_book(self, symbol: str) -> None:
        """The feed drops this symbol's book to re-snapshot it: the next full book is expected."""
        state = self._books.get(symbol)
        if state is not None:
            state.seen = False
        self._tops.forget(symbol)

    def shift_loop(self, seconds: float, tag: str) -> None:
        """Replay the same recording again as new data: times move by ``seconds`` and trade
        ids get ``tag``, so a looped recording is neither history nor duplicates to the
        quality layer (the benchmarks' loops; 0 and "" for live data)."""
        self._ts_shift = seconds
        self._id_tag = tag

    def reset_connection(self) -> None:
        """After a (re)connection every book starts from a fresh snapshot: not a gap."""
        for state in self._books.values():
            state.seen = False

    # ------------------------------------------------------------------ callbacks

    # The three busy callbacks inline the channel bookkeeping (``_seen``): one attribute
    # increment and one store per message, no clock call (the receipt time is cryptofeed's).

    async def trade(self, trade: Any, receipt: float) -> None:
        channel = self._trades_channel or self._bind_channel("trades")
        channel.messages += 1
        channel.last_recv = receipt
        if channel.state != "live":
            self.health.became_live(channel)
        receipt = float(receipt) + self._ts_shift
        symbol = trade.symbol
        price = float(trade.price)
        qty = float(trade.amount)
        ts = float(trade.timestamp or receipt)
        if ts > MS_ABOVE:  # epoch_s inlined (hot path): a venue's milliseconds
            ts /= 1000.0
        trade_id = None if trade.id is None else str(trade.id)
        if self._ts_shift:
            ts += self._ts_shift if trade.timestamp else 0.0
            trade_id = None if trade_id is None else trade_id + self._id_tag
        unit = self._unit_of.get(symbol, UNRESOLVED)
        if unit is UNRESOLVED:
            unit = self.gate.unit(symbol)
        if unit is None:
            event = _new_trade(
                *(self.exchange, symbol, ts, receipt, price, qty, trade.side, trade_id),
                *_NO_UNITS,
            )
        else:
            notional = unit.notional(qty, price)
            event = _new_trade(
                self.exchange,
                symbol,
                ts,
                receipt,
                price,
                unit.amount(qty, price),
                trade.side,
                trade_id,
                qty if unit.contracts_differ else None,
                notional,
                notional if unit.usd else self.gate.usd(unit, notional, receipt),
            )
        guard = self.gate.quality
        if guard is None:
            self._publish(event)
        else:
            if symbol in self._dirty:  # the market's book of this turn first: the trade is
                self._flush_top(symbol)  # judged against what the venue sent before it
            if self.gate.judged(
                event, guard.trade(symbol, price, ts, receipt, trade_id, qty, trade.side)
            ):
                return  # history waits for the end of the turn: no yield inside a batch of it
        self._since_yield += 1
        if self._since_yield >= self._yield_every:
            self._since_yield = 0
            await asyncio.sleep(0)

    @property
    def quality(self) -> QualityGuard | None:
        """History, duplicates, bad prints (None: everything passes)."""
        return self.gate.quality

    @quality.setter
    def quality(self, guard: QualityGuard | None) -> None:
        self.gate.quality = guard

    @property
    def units(self) -> MarketUnits | None:
        """Amounts and notionals from the instrument specs (None: raw venue quantities)."""
        return self.gate.units

    def forget_units(self) -> None:
        """Look every symbol's units up again (the specs were refreshed)."""
        self.gate.forget_units()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    async def ticker(self, ticker: Any, receipt: float) -> None:
        channel = self._ticker_channel or self._bind_channel("ticker")
        channel.messages += 1
        channel.last_recv = receipt
        if channel.state != "live":
            self.health.became_live(channel)
        receipt = float(receipt) + self._ts_shift
        if not ticker.bid or not ticker.ask:  # no best bid or ask: cryptofeed passes 0 or None
            self.health.unquoted_tickers += 1  # (a 0 bid would be a mid of half the ask)
            return
        bid = float(ticker.bid)
        ask = float(ticker.ask)
        self._publish(
            _new_ticker(
                self.exchange,
                ticker.symbol,
                epoch_s(float(ticker.timestamp)) + self._ts_shift if ticker.timestamp else receipt,
                receipt,
                bid,
                ask,
                None,
            )
        )
        guard = self.gate.quality
        if guard is not None:  # the market's trades are judged by it while its book is not fresh
            guard.ticker(ticker.symbol, bid, ask, receipt)
        self._since_yield += 1
        if self._since_yield >= self._yield_every:
            self._since_yield = 0
            await asyncio.sleep(0)

    async def book(self, update: Any, receipt: float) -> None:
        channel = self._book_channel or self._bind_channel("orderbook")
        channel.messages += 1
        channel.last_recv = receipt
        if channel.state != "live":
            self.health.became_live(channel)
        symbol = update.symbol
        state = self._books.get(symbol) or self._tops.state(symbol)
        state.pending += 1
        delta = update.delta
        if delta is None:
            if state.seen and self._uses_deltas:
                self.health.gap("orderbook", symbol, "new full book on a live connection")
            state.seen = True
        elif not self._uses_deltas:
            self._uses_deltas = True
            state.seen = True
        book = update.book
        if not self._tops.refresh(state, book, delta):
            self._dirty.pop(symbol, None)  # no top to publish; its updates stay pending
            if self._tops.crossed(book):
                self.health.crossed += 1
                if self.on_crossed is not None:
                    self.on_crossed(symbol)
            return
        receipt = float(receipt) + self._ts_shift
        ts = epoch_s(float(update.timestamp)) + self._ts_shift if update.timestamp else receipt
        state.ts = ts
        state.ts_recv = receipt
        self._dirty[symbol] = state
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)
        elapsed = receipt - state.last_snapshot
        # a receipt before the last snapshot's (a replay's REST snapshot stamped with today's
        # clock, then the recording's times) restarts the interval
        if elapsed >= self.snapshot_interval or elapsed < 0:
            state.last_snapshot = receipt
            self._snapshot(state, symbol, ts, receipt, book)
        self._since_yield += 1
        if self._since_yield >= self._yield_every:
            self._since_yield = 0
            await asyncio.sleep(0)

    def flush(self) -> None:
        """Publish one BookTop per symbol whose book changed since the last flush (run by
        ``call_soon`` at the end of the loop turn; may also be called directly)."""
        self._flush_scheduled = False
        gate = self.gate
        if gate.history:
            gate.flush_history()
        dirty = self._dirty
        if not dirty:
            return
        self._dirty = {}
        if gate.active:
            self.health.book_tops += gate.publish_tops(dirty)
            return
        exchange = self.exchange
        publish = self._publish
        for symbol, state in dirty.items():
            publish(book_top(state, exchange, symbol))
            state.pending = 0
        self.health.book_tops += len(dirty)

    def _flush_top(self, symbol: str) -> None:
        """Publish (judge) ``symbol``'s pending BookTop now, before a trade of the market
        received after it in the same loop turn."""
        state = self._dirty.pop(symbol)
        self.health.book_tops += self.gate.publish_tops({symbol: state})

    def _snapshot(
        self, state: BookState, symbol: str, ts: float, receipt: float, book: Any
    ) -> None:
        bids, state.bids_memo = self._levels(state.bid, book.bids, state.bids_memo)
        asks, state.asks_memo = self._levels(state.ask, book.asks, state.asks_memo)
        unit = self._unit_of.get(symbol, UNRESOLVED)
        if unit is UNRESOLVED:
            unit = self.gate.unit(symbol)
        if unit is not None and unit.contracts_differ:
            # base units like the BookTop's (book_top's rule: ``unit.amount`` at each level's
            # price); the venue's contracts kept beside them
            self._publish(
                _new_snapshot(
                    self.exchange,
                    symbol,
                    ts,
                    receipt,
                    base_levels(unit, bids),
                    base_levels(unit, asks),
                    bids,
                    asks,
                )
            )
            return
        self._publish(_new_snapshot(self.exchange, symbol, ts, receipt, bids, asks, (), ()))

    def _levels(
        self, side: SideLevels, levels: Any, memo: dict[Any, Any]
    ) -> tuple[tuple[tuple[float, float], ...], dict[Any, Any]]:
        """The best ``depth`` levels of one side of the book as float pairs: from the levels
        the side's state follows when it follows all of them (a sorted read of the book sorts
        its prices after any new level: on a deep book most of a snapshot's cost), else read
        from the book."""
        depth = self.depth
        # the book's levels up to cryptofeed's ``max_depth`` (no sort), up to ours
        n = min(len(levels), depth)
        if side.count + len(side.spare_prices) >= n:
            return followed_levels(side, n, memo)
        read = levels.to_list()
        if len(read) > depth:  # a book cryptofeed does not truncate to ``max_depth``
            read = read[:depth]
        if side.full:  # the spares the side lost to its top, back from the read
            side.refill(read)
        return float_levels(read, memo)
