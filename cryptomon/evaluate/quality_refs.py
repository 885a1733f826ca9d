"""``evaluate --quality``: the bad-print guard's references beyond the market's book, measured
on the real recordings with labelled bad prints written into the venues' own frames (the
machinery of :mod:`cryptomon.evaluate.quality`).

Each case is replayed twice, **before** (the guard given neither the market's ticker nor
another venue: the guard as it was) and **after** (given them), and the quarantined prints and
the real trades judged otherwise than in the untouched replay of the same mode are reported:

- **a ticker-only market** (the guard never sees the market's book: a user who subscribes
  ``ticker`` and not ``l2_book``): one x10 print right after one of its ticker messages while
  the guard has fewer than ``_MIN_PRICES`` prices of it (``ticker_only_early_x10``), and a
  burst of ``bad_print_confirm_prints`` x10 prints ``HELD_STEP_S`` apart, held longer than
  ``bad_print_confirm_hold_s``, right after a ticker on a market the guard judges
  (``ticker_only_held_x10``);
- **another venue** (the same market's untouched recording as a second venue, received
  ``PEER_LAG_S`` later, as venues lead each other, judged by its own guard on a shared board),
  on a market whose book and ticker the guard never sees (trades only: no book top is ever
  fresh): one x10 first print (``venue_early_x10``), and the held burst on a market the guard
  judges (``venue_held_x10_no_book``; a book sparse enough to stay stale for the burst's
  2.1 s, follow time included, is found on none of the recordings);
- **a genuine 15 % move** with those references: the jump of
  :func:`~cryptomon.evaluate.injection.plan_copy` (book and ticker moved) with the other venue
  never following (still at the old level: the worst a lagging venue can be), on the full feed
  (``with_book``: before, the book alone) and on the ticker-only one (``ticker_only``: before,
  the trades alone): moved prints held back.
"""

from __future__ import annotations

import bisect
import dataclasses
import random
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from cryptomon.config import MarketDataConfig
from cryptomon.evaluate.quality_replay import (
    BURST_STEP_S,
    Judged,
    MakeGuard,
    Points,
    Run,
    Settings,
    Venue,
    WatchedGuard,
    _changed,
    _found,
    _genuine_move,
    _plan_prints,
    _replay_copy,
    _run,
    _warm_points,
)
from cryptomon.market.peers import VenueBoard
from cryptomon.market.quality import _MIN_PRICES, QualityGuard

HELD_STEP_S = 0.55  # 3 prints span 1.1 s: longer than bad_print_confirm_hold_s (1 s)
PEER_LAG_S = 0.5  # the other venue's copy of the market arrives this much later
PEER = "peer"
COUNTERS = ("unjudged", "ticker_judged", "ticker_refuted", "venue_judged", "venue_refuted")


@dataclass(frozen=True, slots=True)
class Mode:
    """What the guard of a replay is given besides the trades."""

    books: bool
    tickers: bool
    peer: bool


TRADES_ONLY = Mode(books=False, tickers=False, peer=False)
TICKER_ONLY = Mode(books=False, tickers=True, peer=False)
TRADES_PEER = Mode(books=False, tickers=False, peer=True)
BOOK_ONLY = Mode(books=True, tickers=False, peer=False)
EVERYTHING = Mode(books=True, tickers=True, peer=True)
TICKER_PEER = Mode(books=False, tickers=True, peer=True)
# the genuine move: the feed with its book, and a ticker-only one; before and after
GENUINE = (("with_book", BOOK_ONLY, EVERYTHING), ("ticker_only", TRADES_ONLY, TICKER_PEER))

PeerEvent = tuple[float, str, float, bool]  # (receipt at the peer, symbol, price, book mid)


class RefGuard(WatchedGuard):
    """The real guard given what ``mode`` says: the market's book (else it never sees it),
    its ticker (every ticker is kept in ``tickers`` either way) and another venue, a real
    guard on a shared board fed ``peer`` in receipt order before each event."""

    def __init__(
        self,
        exchange: str,
        *,
        config: MarketDataConfig,
        mode: Mode,
        peer: list[PeerEvent] | None = None,
    ) -> None:
        board = VenueBoard() if mode.peer else None
        super().__init__(exchange, config=config, board=board)
        self.mode = mode
        self.tickers: list[Judged] = []
        self._peer = None if board is None else QualityGuard(PEER, config=config, board=board)
        self._events = peer or []
        self._cursor = 0

    def _catch_up(self, now: float) -> None:
        peer = self._peer
        if peer is None:
            return
        events, k = self._events, self._cursor
        while k < len(events) and events[k][0] <= now:
            at, symbol, price, book = events[k]
            if book:
                peer.book(symbol, price, price, at)
            else:
                peer.trade(symbol, price, at, at, None)
            k += 1
        self._cursor = k

    def tick_to(self, now: float) -> None:
        """The other venue's events up to ``now`` first (called before every trade and
        book top), then the watchdog."""
        self._catch_up(now)
        super().tick_to(now)

    def book(self, symbol: str, bid: float, ask: float, ts_recv: float) -> bool:
        if not self.mode.books:
            return True  # the market's book is not followed: the guard never sees it
        return super().book(symbol, bid, ask, ts_recv)

    def ticker(
        self, symbol: str, bid: float, ask: float, ts_recv: float, last: float | None = None
    ) -> None:
        self._catch_up(ts_recv)
        st = self.state(symbol)
        warm = len(st.prices) >= _MIN_PRICES
        mid = (bid + ask) * 0.5
        self.tickers.append(Judged(True, symbol, mid, ts_recv, None, "ok", warm, st.gap))
        if self.mode.tickers:
            super().ticker(symbol, bid, ask, ts_recv, last)


def _peer_events(base: Run) -> list[PeerEvent]:
    """The untouched replay's accepted trades and book mids, as another venue receives them
    ``PEER_LAG_S`` later."""
    return [
        (j.ts_recv + PEER_LAG_S, j.symbol, j.price, j.book)
        for j in base.guard.judged
        if j.verdict == "ok"
    ]


def _maker(v: Venue, cfg: Settings, mode: Mode, peer: list[PeerEvent]) -> MakeGuard:
    def make() -> WatchedGuard:
        events = peer if mode.peer else None
        return RefGuard(v.name.lower(), config=cfg.market, mode=mode, peer=events)

    return make


# ---------------------------------------------------------------------- where the prints go


def _ticker_points(early: bool, v: Venue, symbol: str, count: int) -> list[Judged]:
    """``symbol``'s ticker messages at which the guard has (``early``: fewer than)
    ``_MIN_PRICES`` of its prices, once its trades come (a print inserted before the venue
    sent any: before its trade subscription, which some venues' sequence numbers refuse)."""
    first = min((j.ts_recv for j in v.base.trades() if j.symbol == symbol), default=None)
    guard = v.base.guard
    tickers = guard.tickers if isinstance(guard, RefGuard) else []
    if first is None:
        return []
    return [j for j in tickers if j.symbol == symbol and j.warm != early and first < j.ts_recv]


def _early_trade_points(v: Venue, symbol: str, count: int) -> list[Judged]:
    """``symbol``'s live trades after whose message the guard still has fewer than
    ``_MIN_PRICES`` of its prices (on a replay whose guard sees no book: its prices are its
    accepted trades; the trades of one message share its receipt)."""
    start = v.base.rep.start
    ok = [j for j in v.base.trades() if j.symbol == symbol and j.verdict == "ok"]
    receipts = sorted(j.ts_recv for j in ok)
    return [
        j
        for j in ok
        if start <= j.ts_recv and bisect.bisect_right(receipts, j.ts_recv) < _MIN_PRICES
    ]


@dataclass(frozen=True)
class Case:
    label: str
    count: int  # prints (1, or bad_print_confirm_prints)
    step: float
    where: Points
    before: Mode
    after: Mode


def _cases(cfg: Settings) -> list[Case]:
    n = cfg.market.bad_print_confirm_prints
    return [
        Case(
            "ticker_only_early_x10",
            1,
            BURST_STEP_S,
            partial(_ticker_points, True),
            TRADES_ONLY,
            TICKER_ONLY,
        ),
        Case(
            "ticker_only_held_x10",
            n,
            HELD_STEP_S,
            partial(_ticker_points, False),
            TRADES_ONLY,
            TICKER_ONLY,
        ),
        Case("venue_early_x10", 1, BURST_STEP_S, _early_trade_points, TRADES_ONLY, TRADES_PEER),
        Case("venue_held_x10_no_book", n, HELD_STEP_S, _warm_points, TRADES_ONLY, TRADES_PEER),
    ]


# ---------------------------------------------------------------------- running them


@dataclass(frozen=True)
class _Setup:
    """What every copy of a venue's cases shares."""

    v: Venue
    bases: dict[Mode, Venue]  # the untouched replay per mode
    peer: list[PeerEvent]
    cfg: Settings
    seed: int
    tmp: Path


async def _side(s: _Setup, case: Case, mode: Mode, r: int) -> dict[str, Any]:
    """Copy ``r`` of ``case`` replayed with ``mode``'s guard: its prints' verdicts (the
    points are drawn on the "before" replay, the same for both sides)."""
    v, bases, cfg = s.v, s.bases, s.cfg
    rng = random.Random(f"{s.seed}:{v.name}:refs:{case.label}:{r}")  # noqa: S311
    where = bases[case.before]
    plan, prints, unjudged = _plan_prints(where, 10.0, case.count, rng, case.where, case.step)
    if not prints:
        return {
            "labels": 0,
            "quarantined": 0,
            "lost": 0,
            "collateral": 0,
            "counts": {},
            "none": unjudged,
        }
    name = f"{case.label}-{mode.books:d}{mode.tickers:d}{mode.peer:d}-{r}"
    copy = await _replay_copy(v, plan, s.tmp / name, cfg, _maker(v, cfg, mode, s.peer))
    found = [_found(copy, p) for p in prints]
    mine = {j.ts_recv for j in found if j is not None}
    stats = copy.guard.stats()
    return {
        "labels": len(prints),
        "quarantined": sum(1 for j in found if j is not None and j.verdict == "bad_print"),
        "lost": sum(1 for j in found if j is None),
        "collateral": len(_changed(bases[mode].base, copy, mine)),
        "counts": {k: stats[k] - bases[mode].base.guard.stats()[k] for k in COUNTERS},
        "none": unjudged,
    }


async def references(v: Venue, seed: int, repeats: int, cfg: Settings) -> dict[str, Any]:
    """Every case before and after, and the genuine move with the references (see the
    module docstring)."""
    peer = _peer_events(v.base)
    cases = _cases(cfg)
    modes = {c.before for c in cases} | {c.after for c in cases}
    bases: dict[Mode, Venue] = {}
    for mode in sorted(modes, key=lambda m: (m.books, m.tickers, m.peer)):
        run = await _run(v.name, v.files, cfg.market, cfg.detect, _maker(v, cfg, mode, peer))
        bases[mode] = dataclasses.replace(v, base=run)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix=f"quality-refs-{v.name}-") as tmp:
        setup = _Setup(v, bases, peer, cfg, seed, Path(tmp))
        for case in cases:
            row: dict[str, Any] = {"prints_each": case.count, "step_s": case.step}
            for side, mode in (("before", case.before), ("after", case.after)):
                total: dict[str, Any] = dict.fromkeys(
                    ("labels", "quarantined", "not_replayed", "collateral_trades"), 0
                )
                counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)
                for r in range(repeats):
                    got = await _side(setup, case, mode, r)
                    total["labels"] += got["labels"]
                    total["quarantined"] += got["quarantined"]
                    total["not_replayed"] += got["lost"]
                    total["collateral_trades"] += got["collateral"]
                    for k, n in got["counts"].items():
                        counts[k] += n
                    row["not_judged_markets"] = got["none"]
                total["counters"] = counts
                row[side] = total
            out[case.label] = row
        moves: dict[str, Any] = {}
        for how, before, after in GENUINE:
            moves[how] = {
                side: await _genuine_move(v, seed, repeats, cfg, _maker(v, cfg, mode, peer))
                for side, mode in (("before", before), ("after", after))
            }
        out["genuine_move"] = moves
    return out


def format_references(refs: dict[str, Any]) -> list[str]:
    """The text lines of :func:`references`."""
    lines = []
    for label, row in refs.items():
        if label == "genuine_move":
            continue
        b, a = row["before"], row["after"]
        lines.append(
            f"  reference {label:<23} quarantined {b['quarantined']}/{b['labels']} before, "
            f"{a['quarantined']}/{a['labels']} after; real trades changed "
            f"{b['collateral_trades']} before, {a['collateral_trades']} after"
        )
    for how, sides in refs.get("genuine_move", {}).items():
        b, a = sides["before"], sides["after"]
        lines.append(
            f"  genuine 15% move, other venue not following ({how}): {a['labels']} labels, "
            f"prints held {b['held_back']}/{b['moved_prints']} before, "
            f"{a['held_back']}/{a['moved_prints']} after, {a['never_accepted']} never accepted"
        )
    return lines
