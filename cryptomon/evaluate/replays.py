"""Replaying a cryptofeed raw recording (:func:`replay`) through the real replay feed source,
the market layer and a detector engine, and what the replay gives the injection planning:
each market's live trades and book tops, its book before a receipt, the recorded lines
and their receipt times (:mod:`cryptomon.evaluate.recordings`)."""

from __future__ import annotations

import contextlib
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptomon.clock import ManualClock
from cryptomon.config import AnomalyDetectionConfig, ExchangeConfig, MarketDataConfig
from cryptomon.errors import ConfigError, Problem
from cryptomon.evaluate.evaluate import engine_on
from cryptomon.events import Anomaly, BookSnapshot, BookTop, FlaggedTrade, Trade
from cryptomon.feeds.replay import ReplayFeed, replay_feed_class
from cryptomon.hub import Hub
from cryptomon.kinds import AnomalyKind
from cryptomon.market.inputs import MarketInputs
from cryptomon.market.instruments import InstrumentSpec
from cryptomon.market.quality import QualityGuard
from cryptomon.market.registry import InstrumentRegistry
from cryptomon.market.venues import RecordingError, specs_from_recording


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


def _collect(hub: Hub, out: Replayed) -> None:
    """Subscribe ``out`` to what a replay publishes: trades, flagged trades, book tops and
    snapshots, and the span of receipt times."""

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


async def replay(
    name: str,
    files: list[Path],
    cfg: AnomalyDetectionConfig,
    *,
    every_book: bool = False,
    market: MarketDataConfig | None = None,
    guard: QualityGuard | None = None,
    yield_every: int | None = None,
) -> Replayed:
    """One recording through the replay feed, a hub and a detector engine (``every_book``:
    a :class:`BookSnapshot` after every book update, not every second: the book at any
    point, for the injections that move or replace it; ``venue_bids``/``venue_asks`` in the
    venue's units;
    ``market``: the market layer's settings, defaults if None; ``guard``: the quality guard
    to judge with, instead of the one the feed builds from ``market``; ``yield_every``: the
    feed's ``loop_yield_every``, 1 for a loop turn per message as a live feed has, where
    receipt time is wall time: book tops are coalesced per turn)."""
    hub = Hub()
    engine, got = engine_on(hub, cfg)
    out = Replayed(got)
    _collect(hub, out)
    config = ExchangeConfig(
        name=name.lower(),
        source="replay",
        files=[str(f) for f in files],
        depth=20,
        **({} if yield_every is None else {"loop_yield_every": yield_every}),
    )
    clock = ManualClock(0.0)
    feed = ReplayFeed(
        config,
        feed_class=replay_feed_class(name),
        hub=hub,
        clock=clock,
        market=market_inputs(name, files, market),
    )
    if guard is not None:
        feed.converter.quality = guard
        feed.health.quality = guard
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
    span = _recorded_span(files)
    if span is not None:  # the recording's span (a REST snapshot carries a wall-clock receipt)
        out.start, out.end = span
    if feed.error is not None:
        raise ConfigError([Problem("RECORDING", name, f"a replayable recording ({feed.error!r})")])
    return out


def _recorded_span(files: list[Path]) -> tuple[float, float] | None:
    """The first and last receipt time of the recorded websocket lines (None: none)."""
    stamps = [
        receipt_time(line)
        for f in files
        if ".ws." in f.name
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines()
    ]
    finite = [x for x in stamps if x > float("-inf")]
    return (min(finite), max(finite)) if finite else None


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
        registry.add(_recorded_specs(head))
    return MarketInputs(registry=registry, config=config or MarketDataConfig())


_SPECS: dict[tuple[str, str], tuple[InstrumentSpec, ...]] = {}


def _recorded_specs(head: Path) -> tuple[InstrumentSpec, ...]:
    """The specs of a recording's ``EXCHANGE.0`` (none: a venue without a format), read once
    per content (every copy of a recording has the same; OKX's takes half a second)."""
    data = head.read_bytes()
    key = (head.name, hashlib.sha256(data).hexdigest())
    specs = _SPECS.get(key)
    if specs is None:
        specs = ()
        with contextlib.suppress(RecordingError):
            specs = tuple(specs_from_recording(head))
        _SPECS[key] = specs
    return specs


def live_trades(rep: Replayed, symbol: str) -> list[Trade]:
    """The market's trades from the recording's first receipt on (not its history)."""
    return [t for t in rep.trades.get(symbol, []) if t.ts >= rep.start]


def book_before(rep: Replayed, symbol: str, receipt: float) -> BookSnapshot | None:
    """The market's last book snapshot (top ``depth`` levels in base units, the venue's in
    ``venue_bids``/``venue_asks``) received
    before ``receipt`` (the book a line inserted there applies to)."""
    books = [b for b in rep.books.get(symbol, []) if b.ts_recv < receipt]
    return books[-1] if books else None


def read_lines(f: Path) -> list[str]:
    """The lines of a recorded file (undecodable bytes replaced)."""
    return f.read_text(encoding="utf-8", errors="replace").splitlines()


def live_tops(rep: Replayed, symbol: str) -> list[BookTop]:
    """The market's book tops received within the recording's span."""
    return [t for t in rep.tops.get(symbol, []) if rep.start <= t.ts_recv <= rep.end]


def receipt_time(line: str) -> float:
    """The receipt time of a recorded line (connection lines count as -inf)."""
    head = line.split(": ", 1)[0]
    try:
        return float(head)
    except ValueError:
        return float("-inf")
