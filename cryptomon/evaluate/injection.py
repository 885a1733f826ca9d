"""The injection planning of :mod:`cryptomon.evaluate.recordings`: for one copy of a
recording, where each eligible market gets its injection (past the warm-up, not masked by the
untouched replay), the lines to insert in the venue's own format (trades, book updates, a
persistent price move: a jump, or a smaller level shift labelled ``ma_deviation``; a
volatility burst that leaves the level), and the copy written with them (:func:`write_copy`)."""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
import random
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from cryptomon.config import AnomalyDetectionConfig
from cryptomon.evaluate.books import (
    BOOK_KINDS,
    book_updates,
    mentioned_prices,
    price_grid,
    prices_grid,
)
from cryptomon.evaluate.evaluate import grace_s
from cryptomon.evaluate.frames import BookUpdate, Injected, Shift, TradeFrame, frame_for
from cryptomon.evaluate.labels import (
    MIN_LIVE_TRADES,
    MOVE_KINDS,
    PCT_KINDS,
    Injection,
    Label,
    masked,
    volatility_burst,
    warmup_buckets,
)
from cryptomon.evaluate.points import book_point, book_t0
from cryptomon.evaluate.replays import (
    Replayed,
    book_before,
    live_tops,
    live_trades,
    read_lines,
    receipt_time,
)
from cryptomon.events import Trade
from cryptomon.kinds import AnomalyKind

BURST_TRADES = 10
JUMP_PRINTS = 5


def _trades_at(
    inj: Injection, live: list[Trade], t0: float, cfg: AnomalyDetectionConfig
) -> list[tuple[float, float, float, bool]]:
    """(ts, price, amount, buy) of the injected trades at ``t0``."""
    last = live[-1].price
    k = inj.magnitude
    if inj.kind == AnomalyKind.WHALE:
        median = statistics.median(t.price * t.amount for t in live)
        return [(t0, last, k * median / last, True)]
    if inj.kind == AnomalyKind.VOLUME:
        span = min(cfg.lookback_window_minutes * 60.0, t0 - live[0].ts)
        vol = sum(t.amount for t in live if t.ts >= t0 - span)
        each = k * vol / max(1.0, span / cfg.bucket_seconds) / BURST_TRADES
        step = min(0.02, cfg.bucket_seconds / (4 * BURST_TRADES))
        return [(t0 + i * step, last, each, True) for i in range(BURST_TRADES)]
    size = statistics.median(t.amount for t in live)
    if inj.kind == AnomalyKind.VOLATILITY:
        return [(ts, px, size, buy) for ts, px, buy in volatility_burst(t0, last, k)]
    if inj.kind not in MOVE_KINDS:
        raise ValueError(f"no trades to inject for {inj.kind}")
    up = last * (1.0 + k / 100.0)
    return [(t0 + 0.4 * i, up, size, True) for i in range(JUMP_PRINTS)]


@dataclass
class CopyPlan:
    """The injected lines of one copy: ws file -> [(receipt, line)]; the labels."""

    lines: dict[Path, list[tuple[float, str]]] = field(default_factory=dict)
    labels: list[Label] = field(default_factory=list)
    shifts: list[Shift] = field(default_factory=list)  # persistent moves of recorded prices
    # whole-book venues: (levels, from, to receipt) applied to every recorded book in between
    overlays: list[tuple[BookUpdate, float, float]] = field(default_factory=list)
    masked: int = 0  # drawn points the untouched replay masked (labels.masked)


def plan_copy(
    name: str,
    files: list[Path],
    rep: Replayed,
    inj: Injection,
    *,
    copy: int,
    cfg: AnomalyDetectionConfig,
    rng: random.Random,
) -> CopyPlan:
    """One injection per eligible market of the recording."""
    frame = frame_for(name)
    ws = [f for f in files if ".ws." in f.name]
    texts = {f: f.read_text(encoding="utf-8", errors="replace").splitlines() for f in ws}
    every = [line for lines in texts.values() for line in lines]
    out = CopyPlan()
    if inj.kind in BOOK_KINDS:
        return _plan_book_copy(name, ws, texts, rep, inj, copy=copy, cfg=cfg, rng=rng)
    for n, (symbol, native) in enumerate(sorted(rep.natives.items())):
        live = live_trades(rep, symbol)
        chan = frame.channel(every, native) if len(live) > MIN_LIVE_TRADES else None
        if chan is None:
            continue
        mark = frame.marker(native, chan)
        target = next((f for f in ws if any(mark in x for x in texts[f])), None)
        if target is None:
            continue
        i = _point(rep, inj, symbol, live, cfg=cfg, rng=rng, out=out)
        if i is None:
            continue
        before = live[:i]
        t0 = _t0(live, i)
        lat = statistics.median(t.ts_recv - t.ts for t in before)
        unit = _venue_units(before[-1])
        # prints away from the price (a jump, a shift, a burst) on the market's price grid
        grid = _decimals(rep, symbol) if inj.kind in PCT_KINDS else None
        if inj.kind in MOVE_KINDS:
            # received after every trade before the point: none of those is moved (a trade
            # from before the jump arriving late would otherwise come out moved, early)
            lat = max(lat, max(t.ts_recv for t in before) - t0 + 1e-5)
            rest = [x for f in files if ".http." in f.name for x in read_lines(f)]
            plan_move(frame, ws, texts, rep, symbol, native, chan, t0 + lat, t0, inj, out, rest)
        for j, (ts, raw, amt, buy) in enumerate(_trades_at(inj, before, t0, cfg)):
            qty = amt * unit  # base units -> the venue's (contracts where they differ)
            px = raw if grid is None else round(raw, grid)
            trade = Injected(native, chan, px, qty, buy, ts, 9_000_000_000 + 1000 * n + j)
            out.lines.setdefault(target, []).append((ts + lat, frame.render(trade)))
        out.labels.append(Label(inj, copy, name.lower(), symbol, t0))
    return out


def _decimals(rep: Replayed, symbol: str) -> int:
    """How many decimals the market's prices need (its book tops' grid, else its trades')."""
    tops = rep.tops.get(symbol)
    if tops:
        return price_grid(tops)[1]
    return prices_grid([t.price for t in rep.trades.get(symbol, [])])[1]


def plan_move(  # noqa: PLR0917 - one call site, the planning step's context
    frame: TradeFrame,
    ws: list[Path],
    texts: dict[Path, list[str]],
    rep: Replayed,
    symbol: str,
    native: str,
    chan: str,
    receipt: float,
    t0: float,
    inj: Injection,
    out: CopyPlan,
    rest: list[str],
) -> None:
    """A price jump that persists: every recorded trade and book level of the market from
    ``receipt`` on is moved by the factor (:meth:`TradeFrame.shift`), and the book is moved
    at the point: one update (just before the jump's prints) deleting every price the
    market's book lines mention near the book and setting its last snapshot's levels at the
    moved prices (a whole moved book where the venue sends whole books)."""
    factor = 1.0 + inj.magnitude / 100.0
    decimals = _decimals(rep, symbol)
    every = [line for lines in texts.values() for line in lines]
    book_chan = frame.book_channel(every, native)
    out.shifts.append(Shift(native, chan, book_chan, receipt, factor, decimals))
    snap = book_before(rep, symbol, receipt)
    if book_chan is None or snap is None or not snap.bids or not snap.asks:
        return
    venue_bids, venue_asks = snap.venue_bids, snap.venue_asks  # the venue's units
    mark = frame.book_marker(native, book_chan)
    target = next((f for f in ws if any(mark in x for x in texts[f])), None)
    if target is None:
        return
    new_bids = [(round(p * factor, decimals), q) for p, q in venue_bids]
    new_asks = [(round(p * factor, decimals), q) for p, q in venue_asks]
    lo, hi = snap.bids[-1][0] / 2.0, snap.asks[-1][0] * 2.0 * factor
    gone: list[float] = []
    if not frame.full_books:  # the book's prices: its recorded lines and REST snapshots
        gone = mentioned_prices(texts[target], mark) + mentioned_prices(rest, native)
    old = [round(p, decimals) for p in gone if lo <= p <= hi]
    old += [round(p, decimals) for p, _ in snap.bids + snap.asks]
    # deleted on both sides (a price the side does not hold: a no-op), before the new levels
    dels = tuple((p, 0.0) for p in sorted(set(old)))
    bids = dels + tuple(new_bids)
    asks = dels + tuple(new_asks)
    update = BookUpdate(native, book_chan, t0, bids, asks, decimals)
    for line in frame.render_book(update):
        out.lines.setdefault(target, []).append((receipt - 1e-6, line))


def _venue_units(t: Trade) -> float:
    """The venue's quantity per base unit at ``t``'s price (contracts; 1 for spot)."""
    if t.contracts is None or t.amount <= 0:
        return 1.0
    return t.contracts / t.amount


def _t0(live: list[Trade], i: int) -> float:
    """The injection time before live trade ``i``: just after the trade before it, on the
    millisecond (the venues' resolution: the label is the time the venue's message says)."""
    t = live[i - 1].ts + min(0.5 * (live[i].ts - live[i - 1].ts), 0.05)
    return math.ceil(t * 1000.0) / 1000.0


def _point(
    rep: Replayed,
    inj: Injection,
    symbol: str,
    live: list[Trade],
    *,
    cfg: AnomalyDetectionConfig,
    rng: random.Random,
    out: CopyPlan,
) -> int | None:
    """A random injection point (index of the live trade it precedes) past the detectors'
    warm-up (``min_samples`` trades, history included, and ``min_samples`` buckets of time
    since the market's first trade, one more for volatility:
    :func:`~cryptomon.evaluate.labels.warmup_buckets`; they report nothing before it); when
    the untouched replay masks it (:func:`~cryptomon.evaluate.labels.masked`), counted and
    drawn again among the open ones (None: none open)."""
    exchange = next(iter(rep.trades[symbol])).exchange
    history = rep.history.get(symbol, [])
    first = min([live[0].ts, *history])
    warm_s = warmup_buckets(inj.kind, cfg.min_samples) * cfg.bucket_seconds
    points = [
        j
        for j in range(MIN_LIVE_TRADES, len(live))
        if j + len(history) >= cfg.min_samples and _t0(live, j) - first >= warm_s
    ]
    if not points:
        return None

    def is_masked(i: int) -> bool:
        return masked(
            rep.anomalies,
            inj.kind,
            exchange,
            symbol,
            _t0(live, i),
            before_s=cfg.cooldown_s,
            after_s=grace_s(cfg, inj.kind),
        )

    i = rng.choice(points)
    if not is_masked(i):
        return i
    out.masked += 1
    open_points = [j for j in points if not is_masked(j)]
    return rng.choice(open_points) if open_points else None


def _plan_book_copy(
    name: str,
    ws: list[Path],
    texts: dict[Path, list[str]],
    rep: Replayed,
    inj: Injection,
    *,
    copy: int,
    cfg: AnomalyDetectionConfig,
    rng: random.Random,
) -> CopyPlan:
    """One book injection per eligible market: >= ``MIN_LIVE_TRADES`` live book tops before
    the point, past the book detector's warm-up, not masked by the untouched replay."""
    frame = frame_for(name)
    every = [line for lines in texts.values() for line in lines]
    out = CopyPlan()
    warm_s = max(
        cfg.min_samples * cfg.bucket_seconds,
        cfg.book_imbalance_min_s + cfg.book_imbalance_smoothing_s,
    )
    for symbol, native in sorted(rep.natives.items()):
        live = live_tops(rep, symbol)
        chan = frame.book_channel(every, native) if len(live) > MIN_LIVE_TRADES else None
        if chan is None:
            continue
        mark = frame.book_marker(native, chan)
        target = next((f for f in ws if any(mark in x for x in texts[f])), None)
        if target is None:
            continue
        j, was_masked = book_point(rep, inj, live, symbol, cfg=cfg, rng=rng, warm_s=warm_s)
        out.masked += was_masked
        if j is None:
            continue
        t0 = book_t0(live, j)
        tick, decimals = price_grid(rep.tops[symbol])
        lat = statistics.median(t.ts_recv - t.ts for t in live[:j])
        base = None
        if frame.full_books:  # the venue sends whole books: the update is applied to one
            snap = book_before(rep, symbol, t0 + lat)
            if snap is None:
                continue
            base = (snap.venue_bids, snap.venue_asks)  # sizes in the venue's units
        updates = book_updates(
            inj.kind,
            inj.magnitude,
            live[j - 1],
            native=native,
            chan=chan,
            t0=t0,
            tick=tick,
            decimals=decimals,
            cfg=cfg,
            known=mentioned_prices(texts[target], mark) if inj.kind == AnomalyKind.SPREAD else (),
            base=base,
        )
        place_book_updates(out, frame, target, updates, lat, inj.kind)
        out.labels.append(Label(inj, copy, name.lower(), symbol, t0))
    return out


def place_book_updates(  # noqa: PLR0917 - the planning step's context
    plan: CopyPlan,
    frame: TradeFrame,
    target: Path,
    updates: list[BookUpdate],
    lat: float,
    kind: AnomalyKind,
) -> None:
    """A book injection's updates as lines of ``target`` (received ``lat`` after their
    time); on a venue that sends whole books, also held in every recorded book until the
    next update (the venue's next whole book would undo it at once; an imbalance's last
    update restores the level, a spread's deletions hold 0.3 s past the last)."""
    for update in updates:
        for line in frame.render_book(update):
            plan.lines.setdefault(target, []).append((update.ts + lat, line))
    if frame.full_books and updates:
        spans = list(itertools.pairwise(updates))
        if kind == AnomalyKind.SPREAD:
            spans.append((updates[-1], dataclasses.replace(updates[-1], ts=updates[-1].ts + 0.3)))
        plan.overlays.extend((u, u.ts + lat, nxt.ts + lat) for u, nxt in spans)


def write_copy(files: list[Path], plan: CopyPlan, folder: Path, frame: TradeFrame) -> list[Path]:
    """The recording copied into ``folder`` with the planned lines inserted in receipt order."""
    out = []
    for f in files:
        dest = folder / f.name
        extra = sorted(plan.lines.get(f, []))
        if not extra and not plan.shifts and not plan.overlays:
            shutil.copyfile(f, dest)
        else:
            lines = f.read_text(encoding="utf-8").splitlines()
            stamps = [receipt_time(x) for x in lines]
            for move in plan.shifts:  # recorded lines only: the injected ones are moved already
                for k, (receipt, line) in enumerate(zip(stamps, lines, strict=True)):
                    if receipt < move.start:
                        continue
                    head, _, payload = line.partition(": ")
                    moved = frame.shift(payload, move)
                    if moved is not None:
                        lines[k] = f"{head}: {moved}"
            for update, start, end in plan.overlays:
                for k, (receipt, line) in enumerate(zip(stamps, lines, strict=True)):
                    if start <= receipt < end:
                        head, _, payload = line.partition(": ")
                        held = frame.overlay(payload, update)
                        if held is not None:
                            lines[k] = f"{head}: {held}"
            for receipt, text in reversed(extra):
                at = bisect.bisect_right(stamps, receipt)
                lines.insert(at, f"{receipt!r}: {text}")
                stamps.insert(at, receipt)
            lines = frame.resequence(lines)
            dest.write_text("\n".join(lines) + "\n", encoding="utf-8")
        out.append(dest)
    return out
