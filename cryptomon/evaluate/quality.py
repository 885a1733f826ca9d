"""``crypto-monitor evaluate --quality``: the market-data quality guard on real recordings with
labelled defects written into the exchanges' own raw frames (the per-venue frame writers of
:mod:`cryptomon.evaluate.frames`), replayed through the real replay feed and converter into
a :class:`WatchedGuard` (the real :class:`~cryptomon.market.quality.QualityGuard`, keeping
every verdict, with the daemon's per-symbol stall watchdog ticking on the recorded receipt
clock).

Per exchange, each scenario in ``repeats`` seeded copies:

- **bad prints**: one lone absurd trade per market (x10, x0.1, +25 %, -25 % of the market's
  last accepted price; no book move) at a point where the guard judges (it has seen
  ``_MIN_PRICES`` prices of the market): recall of the quarantine, its delay, and the real
  trades of the copy whose verdict changed (collateral), the markets never judged; and a
  burst of ``bad_print_confirm_prints`` x10 prints 0.1 s apart (what the guard takes for a
  move when the book does not refute it);
- **a bad first print**: one x10 print per market right after one of its book tops while the
  guard has seen fewer than ``_MIN_PRICES`` prices of it (a market just subscribed, or thin;
  its book fresh): quarantined against the book, or let through unjudged;
- **a burst with no fresh book**: the x10 burst at a point where the market's book was last
  seen more than ``bad_print_mid_follow_s`` before its first print and sends nothing until
  its last (a sparse book: nothing to refute the prints but their instant);
- **references beyond the book** (:mod:`cryptomon.evaluate.quality_refs`): bad prints on
  ticker-only markets and on markets judged against another venue, before and after the
  guard is given those references, and the genuine move with them;
- **a genuine move**: the evaluation's persistent 15 % price jump
  (:func:`~cryptomon.evaluate.injection.plan_copy`: the book moved, every later price
  rewritten): how many of the moved prints are held back, and for how long;
- **duplicates**: every recorded trade frame sent again ``0.5-5 s`` later (a second
  connection's copy, same trade ids): resent trades dropped, originals untouched;
- **silence**: one market's frames (trades, book, book ticker: the lines the venue's frame
  moves in a price jump) removed for its learned stale bound plus a second on an exchange
  with several markets: when it goes stale (vs the bound), whether another market does, how
  soon it is live again on its first data.

The untouched recording gives the false positives: real trades quarantined (each listed),
duplicates, and stale periods per symbol-hour. The report depends on the inputs, the config
and the seed only.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import tempfile
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from cryptomon.config import AnomalyDetectionConfig, MarketDataConfig
from cryptomon.evaluate.frames import Shift
from cryptomon.evaluate.injection import CopyPlan
from cryptomon.evaluate.quality_refs import format_references, references
from cryptomon.evaluate.quality_replay import (
    BURST_STEP_S,
    EXAMPLES,
    WATCHDOG_S,
    Judged,
    Points,
    Run,
    Settings,
    Venue,
    _changed,
    _decimals,
    _example,
    _found,
    _genuine_move,
    _plan_prints,
    _refused,
    _replay_copy,
    _run,
    _venue,
    _warm_points,
)
from cryptomon.evaluate.replays import read_lines, receipt_time
from cryptomon.market.quality import QualityGuard, SymbolQuality

Progress = Callable[[int, int], None]
BAD_PRINTS: tuple[tuple[str, float], ...] = (
    ("x10", 10.0),
    ("x0.1", 0.1),
    ("up_25pct", 1.25),
    ("down_25pct", 0.75),
)
BURST = ("x10_burst", 10.0)  # bad_print_confirm_prints x10 prints 0.1 s apart: a "move"
EARLY = ("early_x10", 10.0)  # one x10 print before the market's _MIN_PRICES prices, book fresh
BURST_NO_BOOK = ("x10_burst_no_book", 10.0)  # the burst where the market's book is not fresh
SILENCE_MIN_EVENTS = 10  # a market's judged events before its silence (its pace learned)


# ---------------------------------------------------------------------- bad prints


def _early_points(v: Venue, symbol: str, count: int) -> list[Judged]:
    """``symbol``'s live book tops after which the guard still has fewer than
    ``_MIN_PRICES`` of its prices (its next event, if any, is not ``warm``): a print right
    after one meets a fresh book and no price history."""
    start = v.base.rep.start
    mine = [j for j in v.base.guard.judged if j.symbol == symbol]
    return [
        j
        for k, j in enumerate(mine)
        if j.book
        and j.verdict == "ok"
        and start <= j.ts_recv
        and (k + 1 == len(mine) or not mine[k + 1].warm)
    ]


def _bookless_points(follow_s: float, v: Venue, symbol: str, count: int) -> list[Judged]:
    """``symbol``'s judged trades after which a burst of ``count`` prints meets no fresh
    book: none of the market's book tops within ``follow_s`` before its first print or
    up to its last."""
    books = sorted(j.ts_recv for j in v.base.guard.judged if j.book and j.symbol == symbol)
    out = []
    for j in _warm_points(v, symbol, count):
        first = j.ts_recv + 1e-4
        last = first + (count - 1) * BURST_STEP_S
        k = bisect.bisect_left(books, first - follow_s)
        if not j.book and (k == len(books) or books[k] > last):
            out.append(j)
    return out


async def _bad_prints(v: Venue, seed: int, repeats: int, cfg: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    n = cfg.market.bad_print_confirm_prints
    bookless = partial(_bookless_points, cfg.market.bad_print_mid_follow_s)
    cases: list[tuple[str, float, int, Points]] = [
        *((k, f, 1, _warm_points) for k, f in BAD_PRINTS),
        (BURST[0], BURST[1], n, _warm_points),
        (EARLY[0], EARLY[1], 1, _early_points),
        (BURST_NO_BOOK[0], BURST_NO_BOOK[1], n, bookless),
    ]
    with tempfile.TemporaryDirectory(prefix=f"quality-{v.name}-") as tmp:
        for label, factor, count, where in cases:
            labels = held = lost = books = 0
            collateral: list[Judged] = []
            unjudged: list[str] = []
            for r in range(repeats):
                rng = random.Random(f"{seed}:{v.name}:bad:{label}:{r}")  # noqa: S311
                plan, prints, unjudged = _plan_prints(v, factor, count, rng, where)
                if not prints:
                    continue
                copy = await _replay_copy(v, plan, Path(tmp) / f"{label}-{r}", cfg)
                found = [_found(copy, p) for p in prints]
                labels += len(prints)
                held += sum(1 for j in found if j is not None and j.verdict == "bad_print")
                lost += sum(1 for j in found if j is None)
                mine = {j.ts_recv for j in found if j is not None}
                collateral += _changed(v.base, copy, mine)
                books += _refused(copy) - _refused(v.base)
            out[label] = {
                "prints_each": count,
                "labels": labels,
                "quarantined": held,
                "recall": round(held / labels, 4) if labels else None,
                "delay_s": 0.0 if held else None,  # the verdict is the print's own
                "not_replayed": lost,
                "collateral_trades": len(collateral),
                "collateral_examples": [_example(j) for j in collateral[:EXAMPLES]],
                "books_refused_more": books,
                "not_judged_markets": unjudged,
            }
    return out


# ---------------------------------------------------------------------- a genuine move


# ---------------------------------------------------------------------- duplicates


def _trade_lines(v: Venue) -> dict[Path, list[tuple[float, str]]]:
    """Every recorded line that carried a trade in the untouched replay (its receipt is the
    trade's), per file."""
    receipts = {j.ts_recv for j in v.base.trades()}
    out: dict[Path, list[tuple[float, str]]] = {}
    for f, lines in v.texts.items():
        for line in lines:
            if receipt_time(line) in receipts:
                out.setdefault(f, []).append((receipt_time(line), line.partition(": ")[2]))
    return out


async def _duplicates(v: Venue, seed: int, repeats: int, cfg: Settings) -> dict[str, Any]:
    resent = dropped = originals = 0
    slipped: Counter[str] = Counter()
    examples: list[Judged] = []
    recorded = _trade_lines(v)
    if not recorded:
        return {"resent_trades": 0}
    with tempfile.TemporaryDirectory(prefix=f"quality-{v.name}-") as tmp:
        for r in range(repeats):
            rng = random.Random(f"{seed}:{v.name}:dup:{r}")  # noqa: S311
            delay = round(rng.uniform(0.5, 5.0), 3)
            plan = CopyPlan()
            again: set[float] = set()
            for f, rows in recorded.items():
                for receipt, payload in rows:
                    plan.lines.setdefault(f, []).append((receipt + delay, payload))
                    again.add(receipt + delay)
            copy = await _replay_copy(v, plan, Path(tmp) / f"dup-{r}", cfg)
            mine = [j for j in copy.trades() if j.ts_recv in again]
            resent += len(mine)
            dropped += sum(1 for j in mine if j.verdict == "duplicate")
            slipped.update(j.verdict for j in mine if j.verdict != "duplicate")
            examples += [j for j in mine if j.verdict != "duplicate"][: EXAMPLES - len(examples)]
            originals += len(_changed(v.base, copy, again))
    expected = repeats * len(v.base.trades())
    return {
        "resent_trades": resent,
        "expected_resent": expected,
        "dropped": dropped,
        "slipped": dict(sorted(slipped.items())),
        "slipped_examples": [_example(j) for j in examples],
        "originals_changed": originals,
    }


# ---------------------------------------------------------------------- silence


def _bound(guard: QualityGuard, gap: float) -> float:
    st = SymbolQuality(16)
    st.gap = gap
    return guard.stale_bound(st)


def _plan_silence(v: Venue, rng: random.Random) -> tuple[str, float, float, float] | None:
    """(market, from, to receipt, bound) of one market's silence: a market with several
    others, past ``SILENCE_MIN_EVENTS`` judged events, whose data comes back a watchdog tick
    before the end."""
    base = v.base
    judged = base.guard.judged
    symbols = sorted({j.symbol for j in judged})
    if len(symbols) < 2:
        return None
    options: list[tuple[str, float, float, float]] = []
    for symbol in symbols:
        if symbol not in base.rep.natives:
            continue
        mine = [j for j in judged if j.symbol == symbol]
        for k in range(SILENCE_MIN_EVENTS, len(mine)):
            j = mine[k - 1]
            bound = _bound(base.guard, j.gap)
            start = j.ts_recv + 1e-4
            end = start + bound + 1.0 + 2 * WATCHDOG_S
            last = base.rep.end - 2 * WATCHDOG_S  # its return seen by a watchdog tick
            if any(end <= x.ts_recv <= last for x in mine):
                options.append((symbol, start, end, bound))
    return rng.choice(options) if options else None


def _write_silenced(v: Venue, symbol: str, start: float, end: float, folder: Path) -> list[Path]:
    """The recording with ``symbol``'s lines received in [start, end) left out (the lines
    its frame would move in a price jump: trades, book, book ticker), its next book update
    chained to its last kept one where the venue chains them
    (:meth:`~cryptomon.evaluate.frames.TradeFrame.leave_out`)."""
    native = v.base.rep.natives[symbol]
    chan, book_chan = v.channels(native)
    same = Shift(native, chan, book_chan, start, 1.0, _decimals(v.base.rep, symbol))

    def gone(line: str) -> bool:
        payload = line.partition(": ")[2]
        return start <= receipt_time(line) < end and v.frame.shift(payload, same) is not None

    folder.mkdir()
    out = []
    for f in v.files:
        lines = read_lines(f)
        if f in v.texts:
            kept = v.frame.leave_out(lines, gone)
            lines = v.frame.resequence(kept)
        dest = folder / f.name
        dest.write_text("\n".join(lines) + "\n", encoding="utf-8")
        out.append(dest)
    return out


async def _silence(v: Venue, seed: int, repeats: int, cfg: Settings) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    base_changes = {(c.symbol, c.at, c.stale) for c in v.base.guard.changes}
    with tempfile.TemporaryDirectory(prefix=f"quality-{v.name}-") as tmp:
        for r in range(repeats):
            rng = random.Random(f"{seed}:{v.name}:silence:{r}")  # noqa: S311
            chosen = _plan_silence(v, rng)
            if chosen is None:
                continue
            symbol, start, end, bound = chosen
            files = await asyncio.to_thread(
                _write_silenced, v, symbol, start, end, Path(tmp) / f"silence-{r}"
            )
            copy = await _run(v.name, files, cfg.market, cfg.detect)
            runs.append(_score_silence(copy, base_changes, symbol, start, end, bound))
    return {"copies": len(runs), "runs": runs}


def _score_silence(  # noqa: PLR0917 - one call site
    copy: Run,
    base_changes: set[tuple[str, float, bool]],
    symbol: str,
    start: float,
    end: float,
    bound: float,
) -> dict[str, Any]:
    changes = copy.guard.changes
    stale = next((c for c in changes if c.symbol == symbol and c.stale and c.at >= start), None)
    back = next((j for j in copy.guard.judged if j.symbol == symbol and j.ts_recv >= end), None)
    live = next(
        (c for c in changes if c.symbol == symbol and not c.stale and back and c.at >= start),
        None,
    )
    others = [
        c
        for c in changes
        if c.symbol != symbol and c.stale and (c.symbol, c.at, c.stale) not in base_changes
    ]
    return {
        "symbol": symbol,
        "window_s": round(end - start, 3),
        "bound_s": round(bound, 3),
        "stale_after_s": None if stale is None else round(stale.silence, 3),
        "late_s": None if stale is None else round(stale.silence - bound, 3),
        "live_after_s": None if live is None or back is None else round(live.at - back.ts_recv, 3),
        "others_stale": len(others),
    }


# ---------------------------------------------------------------------- the untouched recording


def _untouched(v: Venue, market: MarketDataConfig) -> dict[str, Any]:
    g = v.base.guard
    rep = v.base.rep
    trades = v.base.trades()
    bad = [j for j in trades if j.verdict == "bad_print"]
    symbols = {j.symbol for j in g.judged}
    hours = max(0.0, rep.end - rep.start) * len(symbols) / 3600.0
    stale = [c for c in g.changes if c.stale]
    return {
        "markets": len(symbols),
        "trades": len(trades),
        "quarantined": len(bad),
        "quarantined_examples": [_example(j) for j in bad[:EXAMPLES]],
        "books_refused": sum(1 for j in g.judged if j.book and j.verdict != "ok"),
        "unjudged": g.unjudged,
        "duplicates": g.duplicates,
        "historical": g.historical,
        "symbol_hours": round(hours, 4),
        "stale_periods": len(stale),
        "stale_per_symbol_hour": round(len(stale) / hours, 3) if hours else None,
        "stale_examples": [
            {"symbol": c.symbol, "silence_s": round(c.silence, 3), "bound_s": round(c.bound, 3)}
            for c in stale[:EXAMPLES]
        ],
    }


# ---------------------------------------------------------------------- running it


async def evaluate_venue(
    name: str, files: list[Path], cfg: Settings, *, seed: int, repeats: int
) -> dict[str, Any]:
    """Every scenario on one recording."""
    base = await _run(name, files, cfg.market, cfg.detect)
    v = _venue(name, files, base)
    return {
        "untouched": _untouched(v, cfg.market),
        "bad_prints": await _bad_prints(v, seed, repeats, cfg),
        "references": await references(v, seed, repeats, cfg),
        "genuine_move": await _genuine_move(v, seed, repeats, cfg),
        "duplicates": await _duplicates(v, seed, repeats, cfg),
        "silence": await _silence(v, seed, repeats, cfg),
    }


def evaluate_quality(
    groups: dict[str, list[Path]],
    market: MarketDataConfig,
    detect: AnomalyDetectionConfig,
    *,
    seed: int,
    repeats: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The quality report of every recording (see the module docstring)."""
    cfg = Settings(market, detect)
    venues: dict[str, Any] = {}
    for n, (name, files) in enumerate(groups.items(), start=1):
        venues[name] = asyncio.run(evaluate_venue(name, files, cfg, seed=seed, repeats=repeats))
        if progress is not None:
            progress(n, len(groups))
    keys = (
        "bad_print_band_pct",
        "bad_print_book_pct",
        "bad_print_confirm_prints",
        "bad_print_confirm_s",
        "bad_print_confirm_hold_s",
        "bad_print_mid_follow_s",
        "bad_print_venue_band_pct",
        "bad_print_venue_max_age_s",
        "duplicate_memory",
        "stale_factor",
        "stale_min_s",
        "stale_max_s",
    )
    return {
        "config": {k: getattr(market, k) for k in keys},
        "watchdog_s": WATCHDOG_S,
        "exchanges": venues,
    }


def format_quality(report: dict[str, Any]) -> str:
    """The plain-text table of a quality report (``--json`` has every field)."""
    q = report["quality"]
    lines = [f"quality guard, seed {report['seed']}, {report['repeats']} copies: {q['config']}"]
    for name, v in q["exchanges"].items():
        u = v["untouched"]
        lines.append(
            f"{name}: untouched {u['trades']} trades, {u['quarantined']} quarantined, "
            f"{u['unjudged']} unjudged, "
            f"{u['duplicates']} duplicates, {u['stale_periods']} stale periods in "
            f"{u['symbol_hours']:.4f} symbol-hours"
        )
        for kind, b in v["bad_prints"].items():
            lines.append(
                f"  bad print {kind:<17} {b['quarantined']}/{b['labels']} quarantined, "
                f"{b['collateral_trades']} real trades changed, "
                f"{len(b['not_judged_markets'])} markets without a point"
            )
        lines.extend(format_references(v["references"]))
        m = v["genuine_move"]
        lines.append(
            f"  genuine 15% move: {m['labels']} labels, {m['held_back']}/{m['moved_prints']} "
            f"prints held, accepted after <= {m['max_accept_s']} s, "
            f"{m['held_after_accepted']} held after"
        )
        d = v["duplicates"]
        lines.append(
            f"  resent trades: {d.get('dropped', 0)}/{d['resent_trades']} dropped, "
            f"slipped {d.get('slipped', {})}, originals changed {d.get('originals_changed', 0)}"
        )
        lines.extend(
            f"  silence {s['symbol']} {s['window_s']} s: stale after {s['stale_after_s']} s "
            f"(bound {s['bound_s']} s), live {s['live_after_s']} s after its data, "
            f"{s['others_stale']} other markets stale"
            for s in v["silence"]["runs"]
        )
        if not v["silence"]["runs"]:
            lines.append("  silence: no market whose learned stale bound fits in the recording")
    return "\n".join(lines)
