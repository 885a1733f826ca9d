"""The replay machinery of ``evaluate --quality`` (:mod:`cryptomon.evaluate.quality` and
:mod:`cryptomon.evaluate.quality_refs`): a :class:`WatchedGuard` keeping every verdict, a
recording's untouched replay (:class:`Venue`), bad prints planned into copies of its raw
frames and found again, and the genuine move's scoring."""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptomon.config import AnomalyDetectionConfig, MarketDataConfig
from cryptomon.evaluate.books import price_grid, prices_grid
from cryptomon.evaluate.frames import Injected, TradeFrame, frame_for
from cryptomon.evaluate.injection import CopyPlan, plan_copy, write_copy
from cryptomon.evaluate.labels import Injection
from cryptomon.evaluate.replays import Replayed, read_lines, replay
from cryptomon.kinds import AnomalyKind
from cryptomon.market.peers import VenueBoard
from cryptomon.market.quality import _MIN_PRICES, QualityGuard, Verdict

MakeGuard = Callable[[], "WatchedGuard"]  # a fresh guard for one replay
BURST_STEP_S = 0.1  # between the prints of a burst
JUMP = Injection(AnomalyKind.PRICE_CHANGE, 15.0)
WATCHDOG_S = 0.5  # the daemon's watchdog interval (FeedManager.watchdog_interval_s)
EXAMPLES = 5
_ID0 = 9_100_000_000


@dataclass(frozen=True, slots=True)
class Judged:
    """One trade or book top the guard judged: its verdict (a book: ``ok``/``bad_print``)
    and whether the guard had enough prices of the market to judge it (``warm``)."""

    book: bool
    symbol: str
    price: float
    ts_recv: float
    trade_id: str | None
    verdict: Verdict
    warm: bool
    gap: float  # the market's learned gap after it


@dataclass(frozen=True, slots=True)
class StaleChange:
    """The watchdog marked ``symbol`` stale (or live again) at tick ``at``."""

    at: float
    symbol: str
    stale: bool
    silence: float  # since the market's last data
    bound: float


class WatchedGuard(QualityGuard):
    """The real guard, keeping every verdict, its stall watchdog ticking every
    ``tick_s`` of receipt time (as the daemon's does on the wall clock; receipts the feed
    hands late, e.g. book tops at the end of a loop turn, never move it back)."""

    def __init__(
        self,
        exchange: str,
        *,
        config: MarketDataConfig,
        tick_s: float = WATCHDOG_S,
        board: VenueBoard | None = None,
    ):
        super().__init__(exchange, config=config, board=board)
        self.tick_s = tick_s
        self.judged: list[Judged] = []
        self.changes: list[StaleChange] = []
        self._next: float | None = None

    def tick_to(self, now: float) -> None:
        """Run the watchdog at every tick up to ``now``."""
        if self._next is None:
            self._next = now + self.tick_s
        while self._next <= now:
            at = self._next
            self._next = at + self.tick_s
            went, back = self.check_stale(at)
            for symbol, stale in [(s, True) for s in went] + [(s, False) for s in back]:
                st = self.symbols[symbol]
                self.changes.append(
                    StaleChange(at, symbol, stale, at - st.last_recv, self.stale_bound(st))
                )

    def trade(  # noqa: PLR0917 - the guard's signature
        self,
        symbol: str,
        price: float,
        ts: float,
        ts_recv: float,
        trade_id: str | None,
        amount: float | None = None,
        side: str | None = None,
    ) -> Verdict:
        self.tick_to(ts_recv)
        warm = len(self.state(symbol).prices) >= _MIN_PRICES
        verdict = super().trade(symbol, price, ts, ts_recv, trade_id, amount, side)
        gap = self.symbols[symbol].gap
        self.judged.append(Judged(False, symbol, price, ts_recv, trade_id, verdict, warm, gap))
        return verdict

    def book(self, symbol: str, bid: float, ask: float, ts_recv: float) -> bool:
        self.tick_to(ts_recv)
        warm = len(self.state(symbol).prices) >= _MIN_PRICES
        ok = super().book(symbol, bid, ask, ts_recv)
        gap = self.symbols[symbol].gap
        mid = (bid + ask) * 0.5
        verdict: Verdict = "ok" if ok else "bad_print"
        self.judged.append(Judged(True, symbol, mid, ts_recv, None, verdict, warm, gap))
        return ok


@dataclass
class Run:
    """One replay through a :class:`WatchedGuard`."""

    rep: Replayed
    guard: WatchedGuard

    def trades(self) -> list[Judged]:
        return [j for j in self.guard.judged if not j.book]


async def _run(
    name: str,
    files: list[Path],
    market: MarketDataConfig,
    cfg: AnomalyDetectionConfig,
    make: MakeGuard | None = None,
) -> Run:
    guard = WatchedGuard(name.lower(), config=market) if make is None else make()
    rep = await replay(name, files, cfg, every_book=True, market=market, guard=guard, yield_every=1)
    guard.tick_to(rep.end)
    return Run(rep, guard)


def _key(j: Judged) -> tuple[bool, str, float, float, str | None]:
    return (j.book, j.symbol, j.price, j.ts_recv, j.trade_id)


def _changed(base: Run, copy: Run, skip: set[float]) -> list[Judged]:
    """Trades of the untouched replay judged otherwise in ``copy`` (the injected ones, at
    the receipts ``skip``, left out). Trades only: book tops are coalesced per loop turn of the
    replay, which an inserted line moves, so the same book can come as other tops."""
    before = Counter((_key(j), j.verdict) for j in base.trades())
    after = Counter((_key(j), j.verdict) for j in copy.trades() if j.ts_recv not in skip)
    gone = before - after
    return [j for j in base.trades() if gone[(_key(j), j.verdict)] > 0]


def _refused(run: Run) -> int:
    return sum(1 for j in run.guard.judged if j.book and j.verdict != "ok")


def _decimals(rep: Replayed, symbol: str) -> int:
    tops = rep.tops.get(symbol)
    if tops:
        return price_grid(tops)[1]
    return prices_grid([t.price for t in rep.trades.get(symbol, [])])[1]


@dataclass
class Venue:
    """What the planning needs of one recording."""

    name: str
    files: list[Path]
    frame: TradeFrame
    ws: list[Path]
    texts: dict[Path, list[str]]
    base: Run
    lat: float  # the exchange's median receipt latency of live trades

    @property
    def every(self) -> list[str]:
        return [line for lines in self.texts.values() for line in lines]

    def target(self, mark: str) -> Path | None:
        return next((f for f in self.ws if any(mark in x for x in self.texts[f])), None)

    def channels(self, native: str) -> tuple[str | None, str | None]:
        every = self.every
        return self.frame.channel(every, native), self.frame.book_channel(every, native)


def _venue(name: str, files: list[Path], base: Run) -> Venue:
    ws = [f for f in files if ".ws." in f.name]
    texts = {f: read_lines(f) for f in ws}
    live = [t for ts in base.rep.trades.values() for t in ts if t.ts >= base.rep.start]
    lat = statistics.median(t.ts_recv - t.ts for t in live) if live else 0.0
    return Venue(name, files, frame_for(name), ws, texts, base, max(0.0, lat))


@dataclass(frozen=True, slots=True)
class Print:
    symbol: str
    receipt: float
    price: float


Points = Callable[[Venue, str, int], list[Judged]]


def _warm_points(v: Venue, symbol: str, count: int) -> list[Judged]:
    """Where the guard judges ``symbol`` (it has seen ``_MIN_PRICES`` of its prices)."""
    start = v.base.rep.start
    return [
        j
        for j in v.base.guard.judged
        if j.symbol == symbol and j.warm and j.verdict == "ok" and start <= j.ts_recv
    ]


def _plan_prints(  # noqa: PLR0917 - the cases' table passes them in order
    v: Venue,
    factor: float,
    count: int,
    rng: random.Random,
    where: Points = _warm_points,
    step: float = BURST_STEP_S,
) -> tuple[CopyPlan, list[Print], list[str]]:
    """``count`` prints (``step`` apart) per market whose trades the venue sends, at
    a point ``where`` picks (by default one where the guard judges); the markets with no
    such point (by default: never ``_MIN_PRICES`` prices seen, not judged)."""
    plan = CopyPlan()
    prints: list[Print] = []
    unjudged: list[str] = []
    rep = v.base.rep
    for n, (symbol, native) in enumerate(sorted(rep.natives.items())):
        chan, _ = v.channels(native)
        target = None if chan is None else v.target(v.frame.marker(native, chan))
        if chan is None or target is None:
            continue
        points = where(v, symbol, count)
        if not points:
            unjudged.append(symbol)
            continue
        at = rng.choice(points)
        price = round(at.price * factor, _decimals(rep, symbol))
        amount = _amount(rep, symbol)
        for k in range(count):
            receipt = at.ts_recv + 1e-4 + k * step
            ts = math.floor((receipt - v.lat) * 1000.0) / 1000.0
            trade = Injected(native, chan, price, amount, True, ts, _ID0 + 100 * n + k)
            plan.lines.setdefault(target, []).append((receipt, v.frame.render(trade)))
            prints.append(Print(symbol, receipt, price))
    return plan, prints, unjudged


def _amount(rep: Replayed, symbol: str) -> float:
    """The market's median trade in the venue's units (1 without trades)."""
    trades = rep.trades.get(symbol, [])
    if not trades:
        return 1.0
    return statistics.median(t.contracts if t.contracts is not None else t.amount for t in trades)


def _found(copy: Run, p: Print) -> Judged | None:
    for j in copy.guard.judged:
        if (
            not j.book
            and j.symbol == p.symbol
            and abs(j.ts_recv - p.receipt) < 1e-6
            and math.isclose(j.price, p.price, rel_tol=1e-9)
        ):
            return j
    return None


def _example(j: Judged) -> dict[str, Any]:
    return {
        "symbol": j.symbol,
        "kind": "book_mid" if j.book else "trade",
        "price": j.price,
        "ts_recv": round(j.ts_recv, 6),
        "trade_id": j.trade_id,
        "verdict": j.verdict,
    }


async def _genuine_move(
    v: Venue, seed: int, repeats: int, cfg: Settings, make: MakeGuard | None = None
) -> dict[str, Any]:
    """Per labelled jump: its moved prints (the injected ones and every recorded trade of
    the market after it), those quarantined, how long after the first the move was accepted
    (the first moved print let through) and the prints held after that (``make``: the guard
    of each copy, by default the feed's own on this venue alone)."""
    labels = prints = held = late = 0
    accept_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix=f"quality-{v.name}-") as tmp:
        for r in range(repeats):
            rng = random.Random(f"{seed}:{v.name}:jump:{r}")  # noqa: S311
            plan = plan_copy(v.name, v.files, v.base.rep, JUMP, copy=r, cfg=cfg.placing, rng=rng)
            if not plan.labels:
                continue
            copy = await _replay_copy(v, plan, Path(tmp) / f"jump-{r}", cfg, make)
            natives = {s.native: s for s in plan.shifts}
            for lb in plan.labels:
                shift = natives[v.base.rep.natives[lb.symbol]]
                moved = [
                    j
                    for j in copy.trades()
                    if j.symbol == lb.symbol and j.ts_recv >= shift.start - 1e-5
                ]
                labels += 1
                prints += len(moved)
                held += sum(1 for j in moved if j.verdict == "bad_print")
                first_ok = next((j for j in moved if j.verdict == "ok"), None)
                if first_ok is not None:
                    accept_s.append(first_ok.ts_recv - moved[0].ts_recv)
                    after = [j for j in moved if j.ts_recv > first_ok.ts_recv]
                    late += sum(1 for j in after if j.verdict == "bad_print")
    never = labels - len(accept_s)
    return {
        "labels": labels,
        "moved_prints": prints,
        "held_back": held,
        "held_after_accepted": late,
        "never_accepted": never,
        "median_accept_s": round(statistics.median(accept_s), 3) if accept_s else None,
        "max_accept_s": round(max(accept_s), 3) if accept_s else None,
        "confirm_window_s": cfg.market.bad_print_confirm_s,
    }


@dataclass(frozen=True)
class Settings:
    """The market layer judged (``market``), the detectors the replay runs (``detect``) and
    the warm-up the price jump's point is placed after (``placing``)."""

    market: MarketDataConfig
    detect: AnomalyDetectionConfig
    placing: AnomalyDetectionConfig = field(
        default_factory=lambda: AnomalyDetectionConfig(
            bucket_seconds=1.0, min_samples=5, lookback_window_minutes=1.0, cooldown_s=5.0
        )
    )


def _write(v: Venue, plan: CopyPlan, folder: Path) -> list[Path]:
    folder.mkdir()
    return write_copy(v.files, plan, folder, v.frame)


async def _replay_copy(
    v: Venue, plan: CopyPlan, folder: Path, cfg: Settings, make: MakeGuard | None = None
) -> Run:
    copied = await asyncio.to_thread(_write, v, plan, folder)
    return await _run(v.name, copied, cfg.market, cfg.detect, make)
