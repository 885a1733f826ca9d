"""The detector engine: an inline hub subscriber that micro-batches market data into the numba
detectors and publishes :class:`~cryptomon.events.Anomaly` events (DESIGN.md 3.6 and 6).

Inline handlers only append the event to a list. The batch is flushed (columns built, one
kernel call per detector) when it reaches ``batch_size`` or at the end of the current loop
iteration (``loop.call_soon``); without a running loop call :meth:`DetectorEngine.flush`.
Findings pass a cooldown per (exchange, symbol, kind) in event time, where a higher severity
passes; the time from receipt (``ts_recv``) to publication is recorded as a histogram.

History (trades the quality layer publishes as a ``historical``
:class:`~cryptomon.events.FlaggedTrade`, sent by the venue on subscribe) warms the windows:
each batch runs through the trade detectors, before the live trades of the same flush, and
counts towards their warm-up, but its findings are discarded: no anomaly from history. A
historical trade older than the newest trade the detectors already saw of its market is
skipped (a window cannot take the past after the present).
"""

from __future__ import annotations

import asyncio
import bisect
import math
from collections import Counter
from collections.abc import Callable
from operator import attrgetter
from typing import Any

import numpy as np
import structlog

from cryptomon.clock import Clock, ManualClock
from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect.base import BookCols, FundingCols, QuoteCols, SymbolInfo, TradeCols, quote_of
from cryptomon.detect.detectors_nb import new_findings, read_findings
from cryptomon.detect.findings import build_anomaly
from cryptomon.detect.gate import WarmupGate
from cryptomon.detect.kernels_nb import rolling_zscore_nb
from cryptomon.detect.registry import (
    Detector,
    DetectorRegistry,
    PriceContext,
    Source,
    default_registry,
)
from cryptomon.detect.warmup import warmup_events
from cryptomon.events import BookTop, Event, FlaggedTrade, Funding, Liquidation, Ticker, Trade
from cryptomon.hub import Hub, InlineSubscription
from cryptomon.ids import anomaly_id
from cryptomon.kinds import AnomalyKind

log = structlog.get_logger()

KINDS = tuple(AnomalyKind)  # every kind, in the order of the enum (the built-in detectors')
SEVERITY_NAMES = ("low", "medium", "high", "critical")
# detector latency histogram: upper bounds in seconds (cumulative counts, Prometheus style)
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1.0)

_TS = attrgetter("ts")
_PRICE = attrgetter("price")
_AMOUNT = attrgetter("amount")
_SIDE = attrgetter("side")
_BUY = {"buy": 1.0, "sell": 0.0}
_SPREAD = attrgetter("spread_bps")
_IMB = attrgetter("imbalance")
_BID = attrgetter("bid")
_ASK = attrgetter("ask")
_BID_SIZE = attrgetter("bid_size")
_ASK_SIZE = attrgetter("ask_size")


def _f64(getter: Any, evs: list[Any]) -> np.ndarray:
    return np.fromiter(map(getter, evs), np.float64, len(evs))


class DetectorEngine:
    """Routes Trade, BookTop, Ticker, Liquidation and Funding events to the detectors of a
    :class:`~cryptomon.detect.registry.DetectorRegistry` (the built-in ones by default)."""

    name = "detectors"

    def __init__(
        self,
        *,
        hub: Hub,
        clock: Clock,
        config: AnomalyDetectionConfig,
        registry: DetectorRegistry | None = None,
    ) -> None:
        self.hub = hub
        self.clock = clock
        self.config = config
        self.registry = default_registry() if registry is None else registry
        self._cap = config.batch_size
        self._infos: list[SymbolInfo] = []
        self._sids: dict[tuple[str, str], int] = {}
        self._by_symbol: dict[str, dict[str, int]] = {}
        self._multi: set[int] = set()  # markets whose symbol trades on several exchanges
        self._build_detectors()
        self._has_book = np.zeros(0, dtype=bool)  # per symbol id: BookTop seen
        self._history: list[Trade] = []  # historical trades (warm-up only)
        self._trades: list[Trade] = []
        self._books: list[BookTop] = []
        self._tickers: list[Ticker] = []
        self._liqs: list[Liquidation] = []
        self._parts: tuple[tuple[list[Any], Callable[[list[Any]], None]], ...] = (
            (self._history, self._flush_history),  # first: older than this turn's live trades
            (self._trades, self._flush_trades),
            (self._books, self._flush_books),
            (self._tickers, self._flush_tickers),
            (self._liqs, self._flush_liquidations),
        )
        self._fires = new_findings(4 * self._cap + 64)
        self._scheduled = False
        self._cooldown: dict[tuple[str, str, str], tuple[float, int]] = {}
        self.by_kind: Counter[str] = Counter()
        self.by_severity: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.suppressed = 0
        self.in_warmup = 0  # findings of markets still inside their detector's warm-up
        self.warmed = 0  # historical trades fed to the windows (their findings discarded)
        self.history_skipped = 0  # historical trades older than what the windows already hold
        self.batches = 0
        self.errors = 0
        self._lat_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self._lat_sum = 0.0
        self._subs: list[InlineSubscription] = [
            hub.subscribe(Trade, self._handler(self._trades), name="detectors.trade"),
            hub.subscribe(BookTop, self._handler(self._books), name="detectors.book"),
            hub.subscribe(Ticker, self._handler(self._tickers), name="detectors.ticker"),
            hub.subscribe(Liquidation, self._handler(self._liqs), name="detectors.liquidation"),
            hub.subscribe(Funding, self._on_funding, name="detectors.funding"),
            hub.subscribe(FlaggedTrade, self._on_flagged, name="detectors.history"),
        ]

    def _build_detectors(self) -> None:
        """One detector per registration; per source, the detectors that read it in order."""
        self.detectors: dict[str, Detector] = {}
        self._by_source: dict[Source, list[Detector]] = {source: [] for source in Source}
        self._source_of: dict[int, Source] = {}
        self.gate = WarmupGate()
        for entry in self.registry:
            det = entry.factory()
            self.detectors[entry.name] = det
            self._by_source[entry.source].append(det)
            self._source_of[id(det)] = entry.source
        registered = {kind for det in self.detectors.values() for kind in det.kinds.values()}
        # the enum's order first (stable metrics), then kinds of extra detectors
        self.kinds: tuple[str, ...] = (
            *(kind for kind in AnomalyKind if kind in registered),
            *sorted(kind for kind in registered if kind not in set(AnomalyKind)),
        )
        self._price = next(
            (det for det in self.detectors.values() if isinstance(det, PriceContext)), None
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Compile (or load from the numba cache) every kernel before data flows."""
        warmup(self.registry)

    async def stop(self) -> None:
        self.flush()
        for sub in self._subs:
            sub.close()
        self._subs = []

    # ------------------------------------------------------------------ symbols

    def symbol_id(self, exchange: str, symbol: str) -> int:
        """The id of a market, registering (and configuring every detector for) it if new."""
        key = (exchange, symbol)
        sid = self._sids.get(key)
        if sid is None:
            sid = len(self._infos)
            info = SymbolInfo(
                sid=sid,
                exchange=exchange,
                symbol=symbol,
                quote=quote_of(symbol),
                cfg=self.config.for_symbol(exchange, symbol),
            )
            self._infos.append(info)
            for det in self.detectors.values():
                det.configure(info)
                self.gate.configure(det, sid, self.gate.declared(det, info.cfg))
            if self._has_book.shape[0] <= sid:
                self._has_book = np.concatenate(
                    [self._has_book, np.zeros(max(64, sid + 1), dtype=bool)]
                )
            self._sids[key] = sid
            self._by_symbol.setdefault(symbol, {})[exchange] = sid
            if len(self._by_symbol[symbol]) > 1:
                self._multi.update(self._by_symbol[symbol].values())
        return sid

    def reconfigure(self, config: AnomalyDetectionConfig) -> None:
        """New thresholds (config reload): every known market is configured again from
        ``config`` (its overrides included); its detector windows warm up again."""
        self.flush()
        self.config = config
        for info in self._infos:
            info.cfg = config.for_symbol(info.exchange, info.symbol)
            for det in self.detectors.values():
                det.configure(info)
        log.info("detectors.reconfigured", markets=len(self._infos))

    def _sid_array(self, evs: list[Any]) -> np.ndarray:
        by = self._by_symbol  # symbol -> exchange -> id: no tuple per event
        try:
            ids = [by[e.symbol][e.exchange] for e in evs]
        except KeyError:
            ids = [self.symbol_id(e.exchange, e.symbol) for e in evs]
        return np.fromiter(ids, np.int64, len(ids))

    # ------------------------------------------------------------------ hub handlers

    def _handler(self, q: list[Any]) -> Callable[[Any], None]:
        """The inline handler of one buffer: one append and one int compare per event; the
        slow path runs only for the first event of a batch (schedule the flush) or a full one."""
        cap = self._cap
        slow = self._slow

        def handler(ev: Any, append: Any = q.append, q: list[Any] = q) -> None:
            append(ev)
            n = len(q)
            if n == 1 or n >= cap:
                slow(n)

        return handler

    def _slow(self, n: int) -> None:
        if n >= self._cap:
            self.flush()
        elif not self._scheduled:
            self._schedule()

    def _on_funding(self, ev: Funding) -> None:
        """Funding updates are rare: run their detectors at once, one event at a time."""
        self.events["funding"] += 1
        sids = np.array([self.symbol_id(ev.exchange, ev.symbol)], dtype=np.int64)
        cols = FundingCols(sid=sids, ts=np.array([ev.ts]), rate=np.array([float(ev.rate)]))
        self._run(Source.FUNDING, cols, [ev])

    def _on_flagged(self, ev: FlaggedTrade) -> None:
        """A historical trade is buffered to warm the windows (a quarantined one is ignored)."""
        if ev.flag != "historical":
            return
        q = self._history
        q.append(ev.trade)
        n = len(q)
        if n == 1 or n >= self._cap:
            self._slow(n)

    def _schedule(self) -> None:
        # once per batch: the flush is pending from now on (call_soon, a full batch or flush())
        self._scheduled = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (sync use): flush() by hand or when a batch fills
        loop.call_soon(self.flush)

    # ------------------------------------------------------------------ flushing

    def flush(self) -> None:
        """Run the kernels over everything buffered and publish what they found."""
        self._scheduled = False
        # take every buffer first: after a flush all are empty, so the next event of any
        # kind is a first one (n == 1) and schedules the next flush
        batches = []
        for q, fn in self._parts:
            if q:
                batches.append((fn, q[:]))
                q.clear()
        for fn, evs in batches:
            fn(evs)

    def _run(self, source: Source, cols: Any, evs: list[Any]) -> None:
        """Every detector of ``source`` over one batch of columns, in registration order."""
        for det in self._by_source[source]:
            m = det.process(cols, self._fires, 0)
            if m:
                self._emit(det, m, evs, cols)
        self.gate.seen[source].add(cols.sid, cols.ts)

    def run_trade_columns(self, cols: TradeCols, events: Any) -> None:
        """One micro-batch of trades already in columns (a backtest's candle trades) through
        the trade detectors, counted as :meth:`_flush_trades` counts a batch; ``events``
        answers ``len`` and ``[i]`` with the ``Trade`` of row ``i`` (built only for a finding)."""
        self.events["trades"] += len(cols.ts)
        self.batches += 1
        self._run(Source.TRADES, cols, events)

    def _trade_cols(self, evs: list[Any]) -> TradeCols:
        return TradeCols(
            sid=self._sid_array(evs),
            ts=_f64(_TS, evs),
            px=_f64(_PRICE, evs),
            amt=_f64(_AMOUNT, evs),
            buy=np.fromiter(map(_BUY.get, map(_SIDE, evs)), np.float64, len(evs)),
            events=evs,
        )

    def _flush_trades(self, evs: list[Any]) -> None:
        cols = self._trade_cols(evs)
        self.events["trades"] += len(evs)
        self.batches += 1
        self._run(Source.TRADES, cols, evs)

    def _flush_books(self, evs: list[Any]) -> None:
        """Each field is read from the events once (one C-level pass per column); the quote
        and mid columns reuse the bid/ask columns instead of reading the events again."""
        n = len(evs)
        sid = self._sid_array(evs)
        ts = _f64(_TS, evs)
        bid = _f64(_BID, evs)
        ask = _f64(_ASK, evs)
        cols = BookCols(
            sid=sid,
            ts=ts,
            spread=_f64(_SPREAD, evs),
            imb=_f64(_IMB, evs),
            mid=self._nan(n),
            bid=bid,
            ask=ask,
        )
        self._has_book[sid] = True
        self.events["books"] += n
        self.batches += 1
        self._run(Source.BOOKS, cols, evs)
        if self._by_source[Source.QUOTES]:  # built only when a detector reads quotes
            quotes = QuoteCols(
                sid=sid,
                ts=ts,
                bid=bid,
                ask=ask,
                bid_size=_f64(_BID_SIZE, evs),
                ask_size=_f64(_ASK_SIZE, evs),
            )
            self._run(Source.QUOTES, quotes, evs)
        if self._multi and self._by_source[Source.MIDS]:
            self._mids(evs, sid, ts, bid, ask)

    def _nan(self, n: int) -> np.ndarray:
        return np.full(n, math.nan)

    def _mids(
        self, evs: list[Any], sid: np.ndarray, ts: np.ndarray, bid: np.ndarray, ask: np.ndarray
    ) -> None:
        """Mids only of markets whose symbol is on several exchanges."""
        multi = self._multi
        keep = [i for i, s in enumerate(sid.tolist()) if s in multi]
        if not keep:
            return
        if len(keep) < len(evs):
            evs = [evs[i] for i in keep]
            sid, ts, bid, ask = sid[keep], ts[keep], bid[keep], ask[keep]
        with np.errstate(invalid="ignore", over="ignore"):  # bad quotes become NaN, skipped
            mid = (bid + ask) * 0.5
        nan = self._nan(len(evs))
        cols = BookCols(sid=sid, ts=ts, spread=nan, imb=nan, mid=mid)
        self._run(Source.MIDS, cols, evs)

    def _flush_tickers(self, evs: list[Any]) -> None:
        self.events["tickers"] += len(evs)
        sid = self._sid_array(evs)
        keep = np.flatnonzero(~self._has_book[sid]).tolist()
        if not keep or not self._by_source[Source.MIDS]:
            return
        evs = [evs[i] for i in keep]
        self._mids(evs, sid[keep], _f64(_TS, evs), _f64(_BID, evs), _f64(_ASK, evs))

    def _flush_history(self, evs: list[Any]) -> None:
        """Historical trades into the trade detectors' windows and warm-up counts; whatever
        they find is dropped (never an anomaly from history)."""
        cols = self._trade_cols(evs)
        seen = self.gate.seen[Source.TRADES]
        keep = seen.not_before_last(cols.sid, cols.ts)
        if keep is not None:
            self.history_skipped += len(evs) - len(keep)
            if not keep:
                return
            evs = [evs[i] for i in keep]
            cols = self._trade_cols(evs)
        for det in self._by_source[Source.TRADES]:
            det.process(cols, self._fires, 0)  # findings discarded
        seen.add(cols.sid, cols.ts)
        self.warmed += len(evs)
        self.events["history"] += len(evs)

    def _flush_liquidations(self, evs: list[Any]) -> None:
        cols = self._trade_cols(evs)
        self.events["liquidations"] += len(evs)
        self._run(Source.LIQUIDATIONS, cols, evs)

    # ------------------------------------------------------------------ publishing

    def _emit(self, det: Detector, m: int, evs: list[Any], cols: Any) -> None:
        infos, cooldown, time_now = self._infos, self._cooldown, self.clock.time
        sid_of = cols.sid.tolist()
        source, gate = self._source_of[id(det)], self.gate
        for finding in read_findings(self._fires, m):
            i = finding.row
            if not gate.passed(det, source, cols, i):
                self.in_warmup += 1
                continue
            ev: Event = evs[i]
            kind = det.kinds[finding.code]
            level = finding.level
            info = infos[sid_of[i]]
            key = (ev.exchange, ev.symbol, kind)
            prev = cooldown.get(key)
            if prev is not None and ev.ts - prev[0] < info.cfg.cooldown_s and level <= prev[1]:
                self.suppressed += 1
                continue
            cooldown[key] = (ev.ts, level)
            try:
                anomaly = build_anomaly(
                    kind,
                    finding,
                    ev,
                    details=det.reasons(kind, finding, info.quote),
                    z_scored=kind in det.z_kinds,
                    min_samples=info.cfg.min_samples,
                    pct=math.nan if self._price is None else self._price.change_pct(info.sid),
                    now=time_now(),
                    ident=anomaly_id(
                        ev.exchange,
                        ev.symbol,
                        kind=kind,
                        ts=ev.ts,
                        ts_recv=ev.ts_recv,
                        value=float(finding.value),
                    ),
                )
            except (ValueError, OverflowError) as exc:  # a degenerate value; never crash
                self.errors += 1
                log.warning("detect.anomaly_failed", kind=kind, error=str(exc))
                continue
            self.hub.publish(anomaly)
            self.by_kind[kind] += 1
            self.by_severity[SEVERITY_NAMES[max(0, min(3, level))]] += 1
            lat = max(0.0, time_now() - ev.ts_recv)
            self._lat_counts[bisect.bisect_left(LATENCY_BUCKETS, lat)] += 1
            self._lat_sum += lat

    # ------------------------------------------------------------------ stats

    def stats(self) -> dict[str, Any]:
        """Counters for ``/metrics``: events, anomalies by kind/severity, latency histogram."""
        cum = 0
        buckets: dict[str, int] = {}
        for le, c in zip((*map(str, LATENCY_BUCKETS), "+Inf"), self._lat_counts, strict=True):
            cum += c
            buckets[le] = cum
        return {
            "events": dict(self.events),
            "events_processed": sum(self.events.values()),
            "symbols": len(self._infos),
            "batches": self.batches,
            "anomalies": {
                "total": sum(self.by_kind.values()),
                "by_kind": {kind: self.by_kind.get(kind, 0) for kind in self.kinds},
                "by_severity": {s: self.by_severity.get(s, 0) for s in SEVERITY_NAMES},
            },
            "suppressed_by_cooldown": self.suppressed,
            "suppressed_in_warmup": self.in_warmup,
            "history_warmed": self.warmed,
            "history_skipped": self.history_skipped,
            "errors": self.errors,
            "latency_seconds": {"buckets": buckets, "count": cum, "sum": self._lat_sum},
        }


def warmup(registry: DetectorRegistry | None = None) -> None:
    """Run every kernel once on a throw-away engine so compilation happens up front."""
    hub = Hub()
    engine = DetectorEngine(
        hub=hub,
        clock=ManualClock(0.0),
        config=AnomalyDetectionConfig(batch_size=4),
        registry=registry,
    )
    for event in warmup_events():
        hub.publish(event)
    engine.flush()
    rolling_zscore_nb(np.zeros(2), 2, 2)
