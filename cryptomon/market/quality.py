"""Market-data quality, between the feed converter and the hub (DESIGN.md section 5).

One :class:`QualityGuard` per exchange feed judges every trade and book top before it is
published:

- **history**: a trade timestamped before the connection's subscribe time minus
  ``history_tolerance_s`` is ``historical``; the converter publishes it as a
  :class:`~cryptomon.events.FlaggedTrade` (stored, never alerted or traded on), sorted by time
  at the end of the loop turn (venues send newest-first batches);
- **duplicates**: a trade id already seen for the market (the last ``duplicate_memory`` ids)
  is dropped and counted; a venue that sends no trade id (Kraken) is told by the trade's
  time, price, amount and side and its rank among identical fills of the same receipt (one
  message), so a message sent again is dropped and two identical fills in one are kept;
- **bad prints**: a trade price (or book mid) outside ``bad_print_band_pct`` of the recent
  median and not backed by the opposite side of the book is quarantined (``bad_print``,
  counted, stored flagged). A real move is accepted when the book's mid follows a print
  within ``bad_print_mid_follow_s`` (a book alone: it held the new level that long, over more
  than twice ``bad_print_confirm_prints`` updates), or on prints alone: at least
  ``bad_print_confirm_prints`` consistent prints no fresh book contradicts, within
  ``bad_print_confirm_s``, the last at least ``bad_print_confirm_hold_s`` after the first (a
  burst of bad prints in one instant never confirms itself; the book has that long to
  refute it, and a book top at the old level takes the prints' votes back). The reference
  then moves to the new level;
- **a market's first prints** (fewer than ``_MIN_PRICES`` prices of it seen: just
  subscribed, or thin): a trade is judged against the market's fresh book (seen within
  ``bad_print_mid_follow_s``): quarantined when outside ``bad_print_band_pct`` of its mid and
  not backed by its sides; with no fresh book it passes unjudged (counted, ``unjudged``);
- **references when the book is not fresh**: the market's own **ticker** (its best bid/ask,
  or its last price on venues whose ticker has no bid/ask), fresh by the book's rule, stands
  in for the book everywhere above (it judges a first print, backs a print, denies a suspect
  print its vote, and a ticker off the suspect level takes the votes back, as a book top
  does); without a fresh book or ticker, **other venues**' comparable markets
  (:mod:`cryptomon.market.peers`: same base and quote, spot or perpetual) whose last accepted
  price is at most ``bad_print_venue_max_age_s`` old: a print more than
  ``bad_print_venue_band_pct`` from their median is refuted (a first print quarantined, a
  suspect print's votes taken back). That band is wide on purpose: venues lead each other by
  up to seconds, so a genuine move on the leading venue must stay within it (counted:
  ``ticker_judged``/``ticker_refuted``, ``venue_judged``/``venue_refuted``);
- **per-symbol staleness**: each symbol's normal gap between messages is learned (an EWMA);
  :meth:`QualityGuard.check_stale` reports the symbols silent longer than ``stale_factor``
  normal gaps (bounded by ``stale_min_s`` / ``stale_max_s``) and those that came back.

Everything here is per market and bounded; the hot path is a few dict reads and float
comparisons per event (the median is recomputed every ``_MEDIAN_EVERY`` accepted prices).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Literal

from cryptomon.config.market import MarketDataConfig
from cryptomon.market.peers import Peers, VenueBoard

Verdict = Literal["ok", "duplicate", "historical", "bad_print"]
_RING = 31  # accepted prices kept per market for the median
_MEDIAN_EVERY = 8
_MIN_PRICES = 5  # no judgement before this many accepted prices
_TRADE, _BOOK = 1, 2
_NO_TOP, _BOOK_TOP, _TICKER_TOP = 0, 1, 2  # which fresh top of its own a market has
_EWMA = 0.05


class _Suspect:
    """A level the market printed outside the band, waiting for confirmation."""

    __slots__ = ("books", "count", "price", "sources", "ts0", "ts_last")

    def __init__(self, price: float, ts: float, source: int) -> None:
        self.price = price
        self.ts0 = ts
        self.ts_last = ts
        self.count = 1 if source == _TRADE else 0
        self.books = 0 if source == _TRADE else 1
        self.sources = source


class SymbolQuality:
    """Per-market state: recent ids and prices, the book, a pending suspect, the pace."""

    __slots__ = (
        "ask",
        "bad_prints",
        "bid",
        "book_ts",
        "fills",
        "fills_recv",
        "gap",
        "id_order",
        "ids",
        "last_ok",
        "last_recv",
        "median",
        "ok_ts",
        "peers",
        "prices",
        "since_median",
        "stale",
        "suspect",
        "tick_ask",
        "tick_bid",
        "tick_ts",
    )

    def __init__(self, memory: int) -> None:
        self.ids: set[str] = set()
        self.id_order: deque[str] = deque(maxlen=memory)
        self.prices: deque[float] = deque(maxlen=_RING)
        self.median = math.nan
        self.since_median = 0
        self.bid = math.nan
        self.ask = math.nan
        self.book_ts = -math.inf
        self.suspect: _Suspect | None = None
        self.last_recv = -1.0
        self.gap = math.nan  # learned normal gap between messages (s)
        self.stale = False
        self.bad_prints = 0  # trades of this market quarantined as bad prints
        self.fills: dict[tuple[float, float, float, str | None], int] = {}  # id-less, per receipt
        self.fills_recv = -1.0
        self.tick_bid = math.nan  # the ticker's best bid/ask (its last price on venues
        self.tick_ask = math.nan  # whose ticker has none), and when it came
        self.tick_ts = -math.inf
        self.last_ok = math.nan  # the last accepted trade price or book mid, what other
        self.ok_ts = -math.inf  # venues' guards read as this market's price (and when)
        self.peers: Peers | None = None  # the comparable markets of every venue (this one too)

    def accept(self, price: float, *, append: bool = True) -> None:
        if append:
            self.prices.append(price)
            self.since_median += 1
        if self.since_median >= _MEDIAN_EVERY or len(self.prices) <= _MIN_PRICES:
            self.since_median = 0
            ordered = sorted(self.prices)
            self.median = ordered[len(ordered) // 2]

    def move_to(self, price: float) -> None:
        """Accept a confirmed move: the reference restarts at ``price``."""
        self.prices.clear()
        self.prices.extend([price] * _MIN_PRICES)
        self.median = price
        self.since_median = 0
        self.suspect = None


class QualityGuard:
    """Judges one exchange's trades and book tops; counts what it keeps away."""

    def __init__(
        self,
        exchange: str,
        *,
        config: MarketDataConfig | None = None,
        board: VenueBoard | None = None,
    ) -> None:
        cfg = config or MarketDataConfig()
        self.exchange = exchange
        self.config = cfg
        self._memory = cfg.duplicate_memory
        self._tolerance = cfg.history_tolerance_s
        self._band = cfg.bad_print_band_pct / 100.0
        self._book_pad = cfg.bad_print_book_pct / 100.0
        self._confirm = cfg.bad_print_confirm_prints
        self._confirm_s = cfg.bad_print_confirm_s
        self._follow_s = cfg.bad_print_mid_follow_s
        self._hold_s = cfg.bad_print_confirm_hold_s
        self._venue_band = cfg.bad_print_venue_band_pct / 100.0
        self._venue_age = cfg.bad_print_venue_max_age_s
        self.board = board
        self.subscribed_at: float | None = None
        self.symbols: dict[str, SymbolQuality] = {}
        self.duplicates = 0
        self.historical = 0
        self.bad_prints = 0
        self.bad_books = 0
        self.moves_accepted = 0
        self.unjudged = 0  # trades passed with neither price history nor a reference
        self.ticker_judged = 0  # trades judged against the ticker (no fresh book)
        self.ticker_refuted = 0  # ... of them quarantined or denied their vote by it
        self.venue_judged = 0  # trades judged against other venues (no fresh book or ticker)
        self.venue_refuted = 0  # ... of them quarantined or their votes taken back

    def state(self, symbol: str) -> SymbolQuality:
        st = self.symbols.get(symbol)
        if st is None:
            st = self.symbols[symbol] = SymbolQuality(self._memory)
            if self.board is not None:
                st.peers = self.board.join(self.exchange, symbol, st)
        return st

    def on_connected(self, now: float | None) -> None:
        """A (re)connection subscribed at ``now`` (None: at the receipt of its first trade,
        as for a replay): older trades are history, and every live symbol's silence is
        counted afresh from here. A stale symbol stays stale: only its own data brings it
        back (:meth:`check_stale` reports it then), not the connection's."""
        self.subscribed_at = now
        for st in self.symbols.values():
            if not st.stale and st.last_recv >= 0 and now is not None:
                st.last_recv = now

    def inherit_stale(self, old: QualityGuard) -> None:
        """The feed was rebuilt (config reload) and this guard replaces ``old``: the symbols
        ``old`` had marked stale stay stale here until their own data (the markers published
        for them are cleared only by this guard's ``live``)."""
        for symbol, st in old.symbols.items():
            if st.stale:
                mine = self.state(symbol)
                mine.stale = True
                mine.last_recv = st.last_recv
                mine.gap = st.gap

    # ------------------------------------------------------------------ trades

    def trade(  # noqa: PLR0917 - the converter's hot-path call, positional
        self,
        symbol: str,
        price: float,
        ts: float,
        ts_recv: float,
        trade_id: str | None,
        amount: float | None = None,
        side: str | None = None,
    ) -> Verdict:
        """The verdict on one trade (and its bookkeeping); ``amount`` and ``side`` tell a
        trade without an id from another."""
        st = self.symbols.get(symbol) or self.state(symbol)
        self._seen(st, ts_recv)
        if trade_id is None and amount is not None:
            trade_id = self._fill_key(st, price, ts, ts_recv, amount, side)
        if trade_id is not None:
            if trade_id in st.ids:
                self.duplicates += 1
                return "duplicate"
            if len(st.id_order) == self._memory:
                st.ids.discard(st.id_order[0])
            st.id_order.append(trade_id)
            st.ids.add(trade_id)
        start = self.subscribed_at
        if start is None:
            start = self.subscribed_at = ts_recv
        if ts < start - self._tolerance:
            self.historical += 1
            return "historical"
        if not self._price_ok(st, price, ts_recv, _TRADE):
            self.bad_prints += 1
            st.bad_prints += 1
            return "bad_print"
        st.last_ok = price
        st.ok_ts = ts_recv
        return "ok"

    @staticmethod
    def _fill_key(  # noqa: PLR0917 - one call site
        st: SymbolQuality, price: float, ts: float, ts_recv: float, amount: float, side: str | None
    ) -> str:
        """The identity of an id-less trade: its time, price, amount, side and how many
        identical fills came before it in the same receipt."""
        if st.fills_recv != ts_recv:
            st.fills_recv = ts_recv
            st.fills.clear()
        fill = (ts, price, amount, side)
        rank = st.fills.get(fill, 0)
        st.fills[fill] = rank + 1
        return f"~{ts!r}/{price!r}/{amount!r}/{side}/{rank}"

    # ------------------------------------------------------------------ books

    def book(self, symbol: str, bid: float, ask: float, ts_recv: float) -> bool:
        """True when a book top may be published (its mid is within the band, or confirms a
        move); the book is remembered either way, to back or refute trades."""
        st = self.symbols.get(symbol) or self.state(symbol)
        last = st.last_recv  # _seen inlined (once per book top)
        if last >= 0:
            gap = ts_recv - last
            if gap > 0:
                st.gap = gap if st.gap != st.gap else st.gap + _EWMA * (gap - st.gap)
        st.last_recv = ts_recv
        st.bid = bid
        st.ask = ask
        st.book_ts = ts_recv
        mid = (bid + ask) * 0.5
        median = st.median
        # fast path (most tops): nothing pending, the mid well within the band
        if st.suspect is None and abs(mid - median) <= self._band * median:
            st.last_ok = mid
            st.ok_ts = ts_recv
            st.prices.append(mid)
            st.since_median += 1
            if st.since_median >= _MEDIAN_EVERY:
                st.accept(mid, append=False)
            return True
        if self._price_ok(st, mid, ts_recv, _BOOK):
            st.last_ok = mid
            st.ok_ts = ts_recv
            return True
        self.bad_books += 1
        return False

    def ticker(
        self, symbol: str, bid: float, ask: float, ts_recv: float, last: float | None = None
    ) -> None:
        """Remember the market's ticker (best bid/ask; ``last`` on venues whose ticker has
        no bid/ask, given as 0 or NaN): a reference for its trades while its book is not
        fresh. A ticker off a pending suspect level takes the suspect prints' votes back.
        A ticker does not count as the market's data for its staleness (trades and book do)."""
        st = self.symbols.get(symbol) or self.state(symbol)
        if not (0.0 < bid <= ask < math.inf):
            if last is None or not (0.0 < last < math.inf):
                return  # nothing to judge by
            bid = ask = last
        st.tick_bid = bid
        st.tick_ask = ask
        st.tick_ts = ts_recv
        sus = st.suspect
        if sus is not None:
            pad = self._book_pad
            if not (bid * (1 - pad) <= sus.price <= ask * (1 + pad)):
                sus.count = 0

    # ------------------------------------------------------------------ internals

    def _seen(self, st: SymbolQuality, ts_recv: float) -> None:
        last = st.last_recv
        if last >= 0:
            gap = ts_recv - last
            if gap > 0:
                st.gap = gap if st.gap != st.gap else st.gap + _EWMA * (gap - st.gap)
        st.last_recv = ts_recv

    def _price_ok(self, st: SymbolQuality, price: float, now: float, source: int) -> bool:
        if not (price > 0.0 and price < math.inf):
            return False
        if len(st.prices) < _MIN_PRICES:
            return self._early(st, price, now, source)
        median = st.median
        if abs(price - median) <= self._band * median:
            st.accept(price)
            sus = st.suspect
            if sus is not None:
                if now - sus.ts_last > self._confirm_s:
                    st.suspect = None
                elif source == _BOOK:  # the book is still at the old level: the prints so
                    sus.count = 0  # far are no votes for the move
            return True
        if source == _TRADE and self._top_backs(st, price, now):
            st.move_to(price)
            self.moves_accepted += 1
            return True
        return self._confirmed(st, price, now, source)

    def _early(self, st: SymbolQuality, price: float, now: float, source: int) -> bool:
        """A market with fewer than ``_MIN_PRICES`` prices: a trade is judged against a fresh
        book, else a fresh ticker (its mid within the band, or its sides backing the print),
        else other venues (within their band); without any it passes unjudged (counted).
        Book tops pass: there is nothing to judge them by."""
        if source == _TRADE:
            top = self._fresh_top(st, now)
            if top != _NO_TOP:
                bid, ask = (st.bid, st.ask) if top == _BOOK_TOP else (st.tick_bid, st.tick_ask)
                mid = (bid + ask) * 0.5
                pad = self._book_pad
                bad = abs(price - mid) > self._band * mid
                bad = bad and not (bid * (1 - pad) <= price <= ask * (1 + pad))
                if top == _TICKER_TOP:
                    self.ticker_judged += 1
                    self.ticker_refuted += bad
                if bad:
                    return False
            else:
                ref = self._venue_ref(st, now)
                if math.isnan(ref):  # no fresh comparable market elsewhere
                    self.unjudged += 1
                else:
                    self.venue_judged += 1
                    if abs(price - ref) > self._venue_band * ref:
                        self.venue_refuted += 1
                        return False
        st.accept(price)
        return True

    def _fresh_top(self, st: SymbolQuality, now: float) -> int:
        """The market's freshest top of its own: its book, else its ticker (none: stale)."""
        if now - st.book_ts <= self._follow_s:
            return _BOOK_TOP
        if now - st.tick_ts <= self._follow_s:
            return _TICKER_TOP
        return _NO_TOP

    def _top_backs(self, st: SymbolQuality, price: float, now: float) -> bool:
        """A fresh book (else a fresh ticker) whose sides enclose ``price`` (within the
        padding) backs it."""
        top = self._fresh_top(st, now)
        if top == _NO_TOP:
            return False
        pad = self._book_pad
        if top == _BOOK_TOP:
            return st.bid * (1 - pad) <= price <= st.ask * (1 + pad)
        self.ticker_judged += 1
        return st.tick_bid * (1 - pad) <= price <= st.tick_ask * (1 + pad)

    def _venue_ref(self, st: SymbolQuality, now: float) -> float:
        """The median of the other venues' comparable markets' last accepted prices no older
        than ``bad_print_venue_max_age_s`` (NaN: none)."""
        peers = st.peers
        if peers is None or len(peers) < 2:
            return math.nan
        age = self._venue_age
        fresh = [m.last_ok for m in peers.values() if m is not st and now - m.ok_ts <= age]
        n = len(fresh)
        if n == 0:
            return math.nan
        fresh.sort()
        return float(fresh[n // 2] if n % 2 else (fresh[n // 2 - 1] + fresh[n // 2]) * 0.5)

    def _votes(self, st: SymbolQuality, price: float, now: float) -> bool:
        """Whether an unbacked print outside the band votes for a move: not when a fresh top
        of the market's own is there (it did not back the print: it contradicts it), nor
        when other venues' fresh prices are beyond their band (those take back the votes
        so far, as a book top at the old level does)."""
        top = self._fresh_top(st, now)
        if top == _BOOK_TOP:
            return False
        if top == _TICKER_TOP:
            self.ticker_refuted += 1  # counted as judged by _top_backs
            return False
        ref = self._venue_ref(st, now)
        if math.isnan(ref):
            return True
        self.venue_judged += 1
        if abs(price - ref) <= self._venue_band * ref:
            return True
        self.venue_refuted += 1
        if st.suspect is not None:
            st.suspect.count = 0
        return False

    def _confirmed(self, st: SymbolQuality, price: float, now: float, source: int) -> bool:
        sus = st.suspect
        near = sus is not None and abs(price - sus.price) <= self._band * 0.5 * sus.price
        # a print a fresh book contradicts (it was not backed: _price_ok asked) is a suspect
        # still, which a book following it confirms, but it is no vote for the move: a burst
        # of consistent bad prints under an unmoved book confirmed itself before
        vote = source != _TRADE or self._votes(st, price, now)
        if sus is None or not near or now - sus.ts0 > self._confirm_s:
            st.suspect = sus = _Suspect(price, now, source)
            if not vote:
                sus.count = 0
            return False
        sus.ts_last = now
        sus.sources |= source
        if source == _TRADE:
            sus.count += vote
        else:
            sus.books += 1
        followed = sus.sources == _TRADE | _BOOK and now - sus.ts0 <= self._follow_s
        # a book alone moves the reference once it held the new level for the follow time
        held = sus.books > 2 * self._confirm and now - sus.ts0 >= self._follow_s
        # prints alone: enough votes, and the level held long enough for a book to refute it
        voted = sus.count >= self._confirm and now - sus.ts0 >= self._hold_s
        if voted or followed or held:
            st.move_to(price)
            self.moves_accepted += 1
            return True
        return False

    # ------------------------------------------------------------------ staleness

    def stale_bound(self, st: SymbolQuality) -> float:
        """Silence after which ``st``'s symbol is stale: its normal gap x ``stale_factor``,
        clamped to [``stale_min_s``, ``stale_max_s``]."""
        cfg = self.config
        gap = st.gap if st.gap == st.gap else cfg.stale_min_s
        return min(cfg.stale_max_s, max(cfg.stale_min_s, gap * cfg.stale_factor))

    def check_stale(self, now: float) -> tuple[list[str], list[str]]:
        """``(newly stale, recovered)`` symbols at wall time ``now``."""
        stale: list[str] = []
        live: list[str] = []
        for symbol, st in self.symbols.items():
            if st.last_recv < 0:
                continue
            silent = now - st.last_recv > self.stale_bound(st)
            if silent and not st.stale:
                st.stale = True
                stale.append(symbol)
            elif not silent and st.stale:
                st.stale = False
                live.append(symbol)
        return stale, live

    def quarantined(self) -> dict[str, int]:
        """Bad prints quarantined per symbol (only symbols with at least one)."""
        return {sym: st.bad_prints for sym, st in sorted(self.symbols.items()) if st.bad_prints}

    def stats(self) -> dict[str, int]:
        """Counters for feed health and ``/metrics``."""
        return {
            "duplicates": self.duplicates,
            "historical": self.historical,
            "bad_prints": self.bad_prints,
            "bad_books": self.bad_books,
            "moves_accepted": self.moves_accepted,
            "unjudged": self.unjudged,
            "ticker_judged": self.ticker_judged,
            "ticker_refuted": self.ticker_refuted,
            "venue_judged": self.venue_judged,
            "venue_refuted": self.venue_refuted,
            "stale_symbols": sum(1 for st in self.symbols.values() if st.stale),
        }
