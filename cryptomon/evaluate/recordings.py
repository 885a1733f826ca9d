"""Labelled events injected into copies of cryptofeed raw recordings, replayed through the
real replay feed source (:class:`~cryptomon.feeds.replay.ReplayFeed`: the exchange's
cryptofeed parser, the converter and the market layer: units from the recorded instrument
specs, the quality guard) into a hub with a detector engine.

The untouched recording is replayed first: its anomalies are the alert rate (live: triggered
by an event at or after the first receipt of the recording; historical: by a trade the
exchange sent from before it, e.g. Bitfinex's snapshot on subscribe; the quality layer flags
those, so they only warm the windows), and its live trades and book tops give each market's
median trade, bucket volume, price and book. Each copy then gets one injection per eligible
market (past the warm-up, at least ``MIN_LIVE_TRADES`` live trades or book tops before the
point, not masked by the recording's own alerts; chosen by the seed), written as new lines
in the exchange's own format (:mod:`cryptomon.evaluate.frames`) at the receipt position they
would have had: trades (whale, volume burst, price jump as several prints) and book updates
(:mod:`cryptomon.evaluate.books`; on venues that send whole books, held in every recorded
book until the next injected one). A price jump persists: the market's book is moved at the
point and every later recorded trade, book level and book ticker of the market is rewritten
by the factor (:meth:`~cryptomon.evaluate.frames.TradeFrame.shift`), so the quality guard
accepts it as a real move.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import itertools
import math
import random
import shutil
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptomon.clock import ManualClock
from cryptomon.config import AnomalyDetectionConfig, ExchangeConfig, MarketDataConfig
from cryptomon.errors import ConfigError, Problem
from cryptomon.evaluate.books import (
    BOOK_KINDS,
    book_updates,
    mentioned_prices,
    price_grid,
    prices_grid,
)
from cryptomon.evaluate.evaluate import SERIES_KINDS, engine_on, grace_s
from cryptomon.evaluate.frames import BookUpdate, Injected, Shift, TradeFrame, frame_for
from cryptomon.evaluate.labels import (
    MIN_LIVE_TRADES,
    PLAN,
    Injection,
    Label,
    alert_key,
    alert_rates,
    masked,
    score,
)
from cryptomon.events import Anomaly, BookSnapshot, BookTop, FlaggedTrade, Trade
from cryptomon.feeds.replay import ReplayFeed, replay_feed_class
from cryptomon.hub import Hub
from cryptomon.kinds import AnomalyKind
from cryptomon.market.inputs import MarketInputs
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.venues import RecordingError, specs_from_recording

NOT_INJECTED = (
    "trade-borne events on Gate.io futures and Bitfinex (no live trades in the recordings: "
    "nothing to scale a whale or a burst from)"
)
REPEATS = 10  # copies per injection (each with one injection per eligible market)
BURST_TRADES = 10
JUMP_PRINTS = 5
Progress = Callable[[int, int], None]


def group_recordings(paths: list[Path]) -> dict[str, list[Path]]:
    """Files (or folders of files) grouped by exchange (the name before the first dot)."""
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(f for f in p.iterdir() if f.is_file() and "." in f.name))
        elif p.is_file():
            files.append(p)
        else:
            raise ConfigError([Problem("RECORDING", str(p), "an existing file or folder")])
    groups: dict[str, list[Path]] = {}
    for f in files:
        if f.name.endswith(".md"):
            continue
        groups.setdefault(f.name.split(".", 1)[0], []).append(f)
    missing = [name for name, fs in groups.items() if not any(f.name == f"{name}.0" for f in fs)]
    if missing or not groups:
        raise ConfigError(
            [Problem("RECORDING", m, f"{m}.0 beside its ws files") for m in missing]
            or [Problem("RECORDING", [str(p) for p in paths], "EXCHANGE.* recording files")]
        )
    return dict(sorted(groups.items()))


@dataclass
class Replayed:
    """What one replay produced."""

    anomalies: list[Anomaly]
    trades: dict[str, list[Trade]] = field(default_factory=dict)
    start: float = float("inf")  # first receipt time
    end: float = float("-inf")
    natives: dict[str, str] = field(default_factory=dict)  # symbol -> exchange symbol
    history: dict[str, list[float]] = field(default_factory=dict)  # symbol -> historical ts
    tops: dict[str, list[BookTop]] = field(default_factory=dict)  # symbol -> book tops
    books: dict[str, list[BookSnapshot]] = field(default_factory=dict)  # symbol -> snapshots
    bad_prints: dict[str, list[Trade]] = field(default_factory=dict)  # quarantined trades


async def replay(
    name: str,
    files: list[Path],
    cfg: AnomalyDetectionConfig,
    *,
    every_book: bool = False,
    market: MarketDataConfig | None = None,
) -> Replayed:
    """One recording through the replay feed, a hub and a detector engine (``every_book``:
    a :class:`BookSnapshot` after every book update, not every second: the book at any
    point, for the injections that move or replace it; sizes in the venue's units;
    ``market``: the market layer's settings, defaults if None)."""
    hub = Hub()
    engine, got = engine_on(hub, cfg)
    out = Replayed(got)

    def on_trade(ev: Trade) -> None:
        out.trades.setdefault(ev.symbol, []).append(ev)

    def on_any(ev: Any) -> None:
        out.start = min(out.start, ev.ts_recv)
        out.end = max(out.end, ev.ts_recv)

    def on_top(ev: BookTop) -> None:
        out.tops.setdefault(ev.symbol, []).append(ev)

    def on_flagged(ev: FlaggedTrade) -> None:
        if ev.flag == "historical":
            out.history.setdefault(ev.symbol, []).append(ev.ts)
        elif ev.flag == "bad_print":
            out.bad_prints.setdefault(ev.symbol, []).append(ev.trade)

    def on_book(ev: BookSnapshot) -> None:
        out.books.setdefault(ev.symbol, []).append(ev)

    hub.subscribe(Trade, on_trade, name="evaluate.trades")
    hub.subscribe(FlaggedTrade, on_flagged, name="evaluate.history")
    hub.subscribe(BookTop, on_top, name="evaluate.tops")
    hub.subscribe(BookSnapshot, on_book, name="evaluate.books")
    hub.subscribe((Trade, BookTop), on_any, name="evaluate.times")
    config = ExchangeConfig(
        name=name.lower(),
        source="replay",
        files=[str(f) for f in files],
        depth=20,
    )
    clock = ManualClock(0.0)
    feed = ReplayFeed(
        config,
        feed_class=replay_feed_class(name),
        hub=hub,
        clock=clock,
        market=market_inputs(name, files, market),
    )
    if every_book:  # not throttled (a REST snapshot's wall-clock receipt would stop the
        # receipt-time throttle for the rest of a recording)
        feed.converter.snapshot_interval = float("-inf")
    await feed.start()
    await feed.done.wait()
    if feed.feed is not None:
        for symbol in sorted(set(out.trades) | set(out.tops)):
            out.natives[symbol] = feed.feed.std_symbol_to_exchange_symbol(symbol)
    await feed.stop()
    await engine.stop()
    stamps = [
        _receipt(line)
        for f in files
        if ".ws." in f.name
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines()
    ]
    finite = [x for x in stamps if x > float("-inf")]
    if finite:  # the recording's span (a REST snapshot book carries a wall-clock receipt)
        out.start, out.end = min(finite), max(finite)
    if feed.error is not None:
        raise ConfigError([Problem("RECORDING", name, f"a replayable recording ({feed.error!r})")])
    return out


def whale_notionals_off(rep: Replayed) -> int:
    """Whale alerts of the replay whose value is not the venue's own notional of the order
    (``Trade.notional`` of its fills summed: same market, time and side, up to the fill that
    fired it); alerts on markets without a spec (notional unknown) are not counted."""
    off = 0
    for a in rep.anomalies:
        if a.kind != AnomalyKind.WHALE:
            continue
        fills = [t for t in rep.trades.get(a.symbol, []) if t.ts == a.ts]
        sums: list[float] = []
        unknown = False
        for side in ("buy", "sell"):
            total = 0.0
            for t in fills:
                if t.side != side:
                    continue
                if t.notional is None:
                    unknown = True
                    break
                total += t.notional
                sums.append(total)
        if not unknown and sums and not any(math.isclose(x, a.value, rel_tol=1e-6) for x in sums):
            off += 1
    return off


def market_inputs(
    name: str, files: list[Path], config: MarketDataConfig | None = None
) -> MarketInputs:
    """The market layer the daemon would put in front of this recording: instrument specs
    from the REST answers it holds (units, notionals; none for a venue without a format) and
    the quality guard (history flagged, duplicates dropped, bad prints quarantined)."""
    registry = InstrumentRegistry()
    head = next((f for f in files if f.name == f"{name}.0"), None)
    if head is not None:
        with contextlib.suppress(RecordingError):
            registry.add(specs_from_recording(head))
    return MarketInputs(registry=registry, config=config or MarketDataConfig())


def _live(rep: Replayed, symbol: str) -> list[Trade]:
    return [t for t in rep.trades.get(symbol, []) if t.ts >= rep.start]


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


def _plan_copy(
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
        live = _live(rep, symbol)
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
        grid = None  # the jump's prints on the market's price grid, like the moved book
        if inj.kind == AnomalyKind.PRICE_CHANGE:
            grid = _decimals(rep, symbol)
            # received after every trade before the point: none of those is moved (a trade
            # from before the jump arriving late would otherwise come out moved, early)
            lat = max(lat, max(t.ts_recv for t in before) - t0 + 1e-5)
            rest = [x for f in files if ".http." in f.name for x in _lines(f)]
            _plan_move(frame, ws, texts, rep, symbol, native, chan, t0 + lat, t0, inj, out, rest)
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


def _book_before(rep: Replayed, symbol: str, receipt: float) -> BookSnapshot | None:
    """The market's last book snapshot (top ``depth`` levels, the venue's units) received
    before ``receipt`` (the book a line inserted there applies to)."""
    books = [b for b in rep.books.get(symbol, []) if b.ts_recv < receipt]
    return books[-1] if books else None


def _plan_move(  # noqa: PLR0917 - one call site, the planning step's context
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
    snap = _book_before(rep, symbol, receipt)
    if book_chan is None or snap is None or not snap.bids or not snap.asks:
        return
    mark = frame.book_marker(native, book_chan)
    target = next((f for f in ws if any(mark in x for x in texts[f])), None)
    if target is None:
        return
    new_bids = [(round(p * factor, decimals), q) for p, q in snap.bids]  # the venue's units
    new_asks = [(round(p * factor, decimals), q) for p, q in snap.asks]
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


def _lines(f: Path) -> list[str]:
    return f.read_text(encoding="utf-8", errors="replace").splitlines()


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
    since the market's first trade: they report nothing before it); when the untouched
    replay masks it (:func:`~cryptomon.evaluate.labels.masked`), counted and drawn again
    among the open ones (None: none open)."""
    exchange = next(iter(rep.trades[symbol])).exchange
    history = rep.history.get(symbol, [])
    first = min([live[0].ts, *history])
    warm_s = cfg.min_samples * cfg.bucket_seconds
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


def _live_tops(rep: Replayed, symbol: str) -> list[BookTop]:
    return [t for t in rep.tops.get(symbol, []) if rep.start <= t.ts_recv <= rep.end]


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
        live = _live_tops(rep, symbol)
        chan = frame.book_channel(every, native) if len(live) > MIN_LIVE_TRADES else None
        if chan is None:
            continue
        mark = frame.book_marker(native, chan)
        target = next((f for f in ws if any(mark in x for x in texts[f])), None)
        if target is None:
            continue
        exchange = live[0].exchange

        def t0_of(j: int, live: list[BookTop] = live) -> float:
            t = live[j - 1].ts + min(0.5 * (live[j].ts - live[j - 1].ts), 0.05)
            return math.ceil(t * 1000.0) / 1000.0

        def is_masked(j: int, symbol: str = symbol, exchange: str = exchange) -> bool:
            return masked(
                rep.anomalies,
                inj.kind,
                exchange,
                symbol,
                t0_of(j),
                before_s=cfg.cooldown_s,
                after_s=grace_s(cfg, inj.kind),
            )

        points = [
            j
            for j in range(max(MIN_LIVE_TRADES, cfg.min_samples), len(live))
            if live[j - 1].ts - live[0].ts >= warm_s and live[j].ts > live[j - 1].ts
        ]
        if not points:
            continue
        j = rng.choice(points)
        if is_masked(j):
            out.masked += 1
            open_points = [k for k in points if not is_masked(k)]
            if not open_points:
                continue
            j = rng.choice(open_points)
        t0 = t0_of(j)
        tick, decimals = price_grid(rep.tops[symbol])
        lat = statistics.median(t.ts_recv - t.ts for t in live[:j])
        base = None
        if frame.full_books:  # the venue sends whole books: the update is applied to one
            snap = _book_before(rep, symbol, t0 + lat)
            if snap is None:
                continue
            base = (snap.bids, snap.asks)  # sizes in the venue's units
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
            stamps = [_receipt(x) for x in lines]
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


def _receipt(line: str) -> float:
    """The receipt time of a recorded line (connection lines count as -inf)."""
    head = line.split(": ", 1)[0]
    try:
        return float(head)
    except ValueError:
        return float("-inf")


async def evaluate_recording(
    name: str,
    files: list[Path],
    cfg: AnomalyDetectionConfig,
    *,
    seed: int,
    plan: list[Injection],
    repeats: int,
) -> tuple[Replayed, list[Label], dict[int, list[Anomaly]], dict[str, int]]:
    """The untouched replay, the labels, the anomalies of every copy of one recording and
    the masked points per injection."""
    rep = await replay(name, files, cfg, every_book=True)
    labels: list[Label] = []
    found: dict[int, list[Anomaly]] = {}
    masked_points: dict[str, int] = {}
    copy = 0
    with tempfile.TemporaryDirectory(prefix=f"evaluate-{name}-") as tmp:
        for inj in plan:
            for r in range(repeats):
                copy += 1
                rng = random.Random(f"{seed}:{name}:{inj.name}:{r}")  # noqa: S311 - sampling
                planned = _plan_copy(name, files, rep, inj, copy=copy, cfg=cfg, rng=rng)
                masked_points[inj.name] = masked_points.get(inj.name, 0) + planned.masked
                if not planned.labels:
                    continue
                folder = Path(tmp) / str(copy)
                folder.mkdir()
                copied = await asyncio.to_thread(
                    write_copy, files, planned, folder, frame_for(name)
                )
                found[copy] = (await replay(name, copied, cfg)).anomalies
                labels.extend(planned.labels)
    return rep, labels, found, masked_points


def evaluate_recordings(
    groups: dict[str, list[Path]],
    cfg: AnomalyDetectionConfig,
    *,
    seed: int,
    plan: tuple[Injection, ...] = PLAN,
    repeats: int = REPEATS,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every recording: untouched alert rates per exchange and overall; recall per injection."""
    trade_plan = [inj for inj in plan if inj.kind in SERIES_KINDS | BOOK_KINDS]
    labels: list[Label] = []
    found: dict[int, list[Anomaly]] = {}
    exchanges: dict[str, Any] = {}
    live: list[Anomaly] = []
    hist: list[Anomaly] = []
    hours = 0.0
    masked_points: dict[str, int] = {}
    for n, (name, files) in enumerate(groups.items(), start=1):
        rep, lbs, fnd, msk = asyncio.run(
            evaluate_recording(name, files, cfg, seed=seed, plan=trade_plan, repeats=repeats)
        )
        base = 1000 * n  # copies of different recordings never share a key
        labels.extend(
            Label(lb.injection, base + lb.copy, lb.exchange, lb.symbol, lb.start) for lb in lbs
        )
        found.update({base + k: v for k, v in fnd.items()})
        for key, count in msk.items():
            masked_points[key] = masked_points.get(key, 0) + count
        mine_live = [a for a in rep.anomalies if a.ts >= rep.start]
        mine_hist = [a for a in rep.anomalies if a.ts < rep.start]
        span = max(0.0, rep.end - rep.start) / 3600.0
        symbols = {t.symbol for ts in rep.trades.values() for t in ts} | set(rep.natives)
        h = span * max(1, len(symbols))
        exchanges[name] = {
            **alert_rates(mine_live, h, mine_hist),
            "eligible_markets": sorted({lb.symbol for lb in lbs}),
            "whale_notionals_off": whale_notionals_off(rep),
        }
        live.extend(mine_live)
        hist.extend(mine_hist)
        hours += h
        if progress is not None:
            progress(n, len(groups))
    return {
        "exchanges": exchanges,
        "untouched": alert_rates(live, hours, hist),
        "injections": score(
            labels,
            found,
            lambda kind: grace_s(cfg, kind),
            untouched=map(alert_key, live + hist),
            masked_points=masked_points,
        ),
        "not_injected": NOT_INJECTED,
    }
