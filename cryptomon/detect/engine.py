"""The detector engine: an inline hub subscriber that micro-batches market data into the numba
detectors and publishes :class:`~cryptomon.events.Anomaly` events (DESIGN.md 3.6 and 6).

Inline handlers only store the event into a buffer (:mod:`cryptomon.detect.buffer`). The
batch is flushed (columns built, one kernel call per detector) when it reaches
``batch_size`` or at the end of the current loop iteration (``loop.call_soon``); without a
running loop call :meth:`DetectorEngine.flush`.
Findings pass a cooldown per (exchange, symbol, kind) in event time, where a higher severity
passes; the time from receipt (``ts_recv``) to publication is recorded as a histogram.

History (trades the quality layer publishes as a ``historical``
:class:`~cryptomon.events.FlaggedTrade`) and a restart's stored trades or candles warm the
trade detectors' windows through :mod:`cryptomon.detect.history` (never an anomaly from
them); :mod:`cryptomon.detect.warmup` compiles the kernels at :meth:`DetectorEngine.start`.

The columns are built by :mod:`cryptomon.detect.columns`, the findings published by
:mod:`cryptomon.detect.emission`; this module routes and batches.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import structlog

from cryptomon.clock import Clock
from cryptomon.config import AnomalyDetectionConfig
from cryptomon.detect.base import (
    BookCols,
    FundingCols,
    QuoteCols,
    SymbolInfo,
    TradeCols,
    quote_of,
)
from cryptomon.detect.buffer import EventBuffer, event_buffer
from cryptomon.detect.columns import (
    book_sid,
    book_table,
    mid_columns,
    nan_column,
    top_prices,
    trade_table,
)
from cryptomon.detect.detectors_nb import new_findings
from cryptomon.detect.emission import LATENCY_BUCKETS, SEVERITY_NAMES, Emitter
from cryptomon.detect.gate import NO_WARMUP, WarmupGate
from cryptomon.detect.history import HistoryWarmer
from cryptomon.detect.registry import (
    DeclaresWarmup,
    Detector,
    DetectorRegistry,
    PriceContext,
    Source,
    default_registry,
)
from cryptomon.detect.warmup import warmup_with_notice
from cryptomon.events import BookTop, Candle, FlaggedTrade, Funding, Liquidation, Ticker, Trade
from cryptomon.hub import Hub, InlineSubscription
from cryptomon.kinds import AnomalyKind

log = structlog.get_logger()

KINDS = tuple(AnomalyKind)  # every kind, in the order of the enum (the built-in detectors')
__all__ = ["KINDS", "LATENCY_BUCKETS", "SEVERITY_NAMES", "DetectorEngine"]


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
        # the same ids as floats: the column tables pack them with the float fields
        self._row_ids: dict[str, dict[str, float]] = {}
        self._multi: set[int] = set()  # markets whose symbol trades on several exchanges
        self._build_detectors()
        self._has_book = np.zeros(0, dtype=bool)  # per symbol id: BookTop seen
        self._is_multi = np.zeros(0, dtype=bool)  # per symbol id: in self._multi
        self._past = event_buffer(self._cap, self._slow)  # historical trades (warm-up)
        trades, books, tickers, liqs = (event_buffer(self._cap, self._slow) for _ in range(4))
        self._parts: tuple[tuple[EventBuffer, Callable[[list[Any]], None]], ...] = (
            (self._past, self._flush_history),  # first: older than this turn's live trades
            (trades, self._flush_trades),
            (books, self._flush_books),
            (tickers, self._flush_tickers),
            (liqs, self._flush_liquidations),
        )
        self._fires = new_findings(4 * self._cap + 64)
        self._scheduled = False
        self.emitter = Emitter(
            hub=hub, clock=clock, gate=self.gate, infos=self._infos, price=self._price
        )
        self.events: Counter[str] = Counter()
        # venue history and stored data into the trade detectors' windows
        self.history = HistoryWarmer(
            detectors=self._by_source[Source.TRADES],
            gate=self.gate,
            fires=self._fires,
            trade_cols=self._trade_cols,
            cap=self._cap,
        )
        self.batches = 0
        self._subs: list[InlineSubscription] = [
            hub.subscribe(Trade, trades.put, name="detectors.trade"),
            hub.subscribe(BookTop, books.put, name="detectors.book"),
            hub.subscribe(Ticker, tickers.put, name="detectors.ticker"),
            hub.subscribe(Liquidation, liqs.put, name="detectors.liquidation"),
            hub.subscribe(Funding, self._on_funding, name="detectors.funding"),
            hub.subscribe(FlaggedTrade, self._on_flagged, name="detectors.history"),
        ]

    def _build_detectors(self) -> None:
        """One detector per registration; per source, the detectors that read it in order."""
        self.detectors: dict[str, Detector] = {}
        self._by_source: dict[Source, list[Detector]] = {source: [] for source in Source}
        self._source_of: dict[int, Source] = {}
        self.gate = WarmupGate()
        # (detector, whether it declares a warm-up): an isinstance check against a runtime
        # protocol walks the protocol's attributes (~6 us under load), so it is made once per
        # detector here rather than for every detector of every new market
        self._configured: list[tuple[Detector, bool]] = []
        for entry in self.registry:
            det = entry.factory()
            self.detectors[entry.name] = det
            self._by_source[entry.source].append(det)
            self._source_of[id(det)] = entry.source
            self._configured.append((det, isinstance(det, DeclaresWarmup)))
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
        """Compile (or load from the numba cache) every kernel before data flows (see
        :func:`warmup_with_notice`), in a worker thread: the first start's compile takes
        10-30 s, and the event loop must stay free meanwhile to see SIGINT/SIGTERM (the stop
        then abandons the compiling thread instead of waiting for it)."""
        await asyncio.to_thread(warmup_with_notice, DetectorEngine, self.registry)

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
            for det, declares in self._configured:
                det.configure(info)
                warm = det.warmup(info.cfg) if declares else NO_WARMUP  # type: ignore[attr-defined]
                self.gate.configure(det, sid, warm)
            if self._has_book.shape[0] <= sid:
                more = np.zeros(max(64, sid + 1), dtype=bool)
                self._has_book = np.concatenate([self._has_book, more])
                self._is_multi = np.concatenate([self._is_multi, more])
            self._sids[key] = sid
            self._by_symbol.setdefault(symbol, {})[exchange] = sid
            self._row_ids.setdefault(symbol, {})[exchange] = float(sid)
            if len(self._by_symbol[symbol]) > 1:
                ids = list(self._by_symbol[symbol].values())
                self._multi.update(ids)
                self._is_multi[ids] = True
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

    def _table(
        self, build: Callable[[list[Any], dict[str, dict[str, float]]], Any], evs: list[Any]
    ) -> Any:
        """``build(evs, ids)`` (``ids[symbol][exchange]``: the market id as a float);
        markets not known yet are registered first, in the order of their first event (the
        ids :meth:`_sid_array` would give)."""
        try:
            return build(evs, self._row_ids)
        except KeyError:
            for e in evs:
                self.symbol_id(e.exchange, e.symbol)
            return build(evs, self._row_ids)

    # ------------------------------------------------------------------ hub handlers

    def _slow(self, n: int) -> None:
        """A buffer's edge (:func:`~cryptomon.detect.buffer.event_buffer`): its first event
        of a batch schedules the flush, a full batch flushes now."""
        if n >= self._cap:
            self.flush()
        elif not self._scheduled:
            self._schedule()

    def _on_funding(self, ev: Funding) -> None:
        """Funding updates are rare: run their detectors at once, one event at a time. An
        update without a rate (unknown) is not a rate of 0: nothing to compare."""
        self.events["funding"] += 1
        if ev.rate is None:
            return
        sids = np.array([self.symbol_id(ev.exchange, ev.symbol)], dtype=np.int64)
        cols = FundingCols(sid=sids, ts=np.array([ev.ts]), rate=np.array([float(ev.rate)]))
        self._run(Source.FUNDING, cols, [ev])

    def _on_flagged(self, ev: FlaggedTrade) -> None:
        """A historical trade is buffered to warm the windows (a quarantined one is ignored)."""
        if ev.flag != "historical":
            return
        self._past.put(ev.trade)

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
        for buf, fn in self._parts:
            if buf.size():
                batches.append((fn, buf.take()))
        for fn, evs in batches:
            fn(evs)

    def _run(self, source: Source, cols: Any, evs: list[Any]) -> None:
        """Every detector of ``source`` over one batch of columns, in registration order."""
        for det in self._by_source[source]:
            m = det.process(cols, self._fires, 0)
            if m:
                self.emitter.emit(det, self._source_of[id(det)], self._fires, m, evs=evs, cols=cols)
        self.gate.seen[source].add(cols.sid, cols.ts)

    def run_trade_columns(self, cols: TradeCols, events: Any) -> None:
        """One micro-batch of trades already in columns (a backtest's candle trades) through
        the trade detectors, counted as :meth:`_flush_trades` counts a batch; ``events``
        answers ``len`` and ``[i]`` with the ``Trade`` of row ``i`` (built only for a finding)."""
        self.events["trades"] += len(cols.ts)
        self.batches += 1
        self._run(Source.TRADES, cols, events)

    def _trade_cols(self, evs: list[Any]) -> TradeCols:
        cols: TradeCols = self._table(trade_table, evs)
        return cols

    def _flush_trades(self, evs: list[Any]) -> None:
        cols = self._trade_cols(evs)
        self.events["trades"] += len(evs)
        self.batches += 1
        self._run(Source.TRADES, cols, evs)

    def _flush_books(self, evs: list[Any]) -> None:
        """The events are read once, into one table (:func:`book_table`); the book, quote
        and mid columns are its rows."""
        n = len(evs)
        table = self._table(book_table, evs)
        sid = book_sid(table)
        _, ts, bid, ask, spread, imb, bid_size, ask_size = table
        # mid NaN: the book detectors do not read it
        cols = BookCols(sid=sid, ts=ts, spread=spread, imb=imb, mid=nan_column(n), bid=bid, ask=ask)
        self._has_book[sid] = True
        self.events["books"] += n
        self.batches += 1
        self._run(Source.BOOKS, cols, evs)
        if self._by_source[Source.QUOTES]:  # built only when a detector reads quotes
            quotes = QuoteCols(
                sid=sid, ts=ts, bid=bid, ask=ask, bid_size=bid_size, ask_size=ask_size
            )
            self._run(Source.QUOTES, quotes, evs)
        if self._multi and self._by_source[Source.MIDS]:
            self._mids(evs, sid, ts, bid, ask)

    def _mids(
        self, evs: list[Any], sid: np.ndarray, ts: np.ndarray, bid: np.ndarray, ask: np.ndarray
    ) -> None:
        """Mids only of markets whose symbol is on several exchanges."""
        keep = np.flatnonzero(self._is_multi[sid])  # no Python work per row
        if keep.size == 0:
            return
        if keep.size < len(evs):
            evs = [evs[i] for i in keep.tolist()]
            sid, ts, bid, ask = sid[keep], ts[keep], bid[keep], ask[keep]
        self._run(Source.MIDS, mid_columns(sid, ts, bid, ask), evs)

    def _flush_tickers(self, evs: list[Any]) -> None:
        self.events["tickers"] += len(evs)
        sid = self._sid_array(evs)
        keep = np.flatnonzero(~self._has_book[sid]).tolist()
        if not keep or not self._by_source[Source.MIDS]:
            return
        evs = [evs[i] for i in keep]
        ts, bid, ask = top_prices(evs)
        self._mids(evs, sid[keep], ts, bid, ask)

    def _flush_history(self, evs: list[Any]) -> None:
        """Historical trades into the trade detectors' windows and warm-up counts; whatever
        they find is dropped (never an anomaly from history)."""
        self.events["history"] += self.history.venue(evs)

    # ------------------------------------------------------------------ warm start

    def warm_from_trades(self, trades: Sequence[Trade]) -> int:
        """Stored trades (oldest first; a restart's) through the path of venue history
        (:meth:`HistoryWarmer.from_trades`); nothing is published. Returns the trades taken."""
        self.flush()
        return self.history.from_trades(trades, self.symbol_id)

    def warm_from_candles(self, candles: Sequence[Candle], now: float) -> tuple[int, list[str]]:
        """Stored 1-minute candles into the windows of the trade detectors they reproduce
        (:meth:`HistoryWarmer.from_candles`); nothing is published. Returns (the markets
        warmed, those left out as "exchange:symbol")."""
        self.flush()
        return self.history.from_candles(
            candles,
            now,
            sid_of=self.symbol_id,
            bucket_of=lambda sid: self._infos[sid].cfg.bucket_seconds,
        )

    def _flush_liquidations(self, evs: list[Any]) -> None:
        cols = self._trade_cols(evs)
        self.events["liquidations"] += len(evs)
        self._run(Source.LIQUIDATIONS, cols, evs)

    # ------------------------------------------------------------------ stats

    @property
    def by_kind(self) -> Counter[str]:
        """Anomalies published, by kind."""
        return self.emitter.by_kind

    def stats(self) -> dict[str, Any]:
        """Counters for ``/metrics``: events, anomalies by kind/severity, latency histogram."""
        emitted = self.emitter.stats(self.kinds)
        return {
            "events": dict(self.events),
            "events_processed": sum(self.events.values()),
            "symbols": len(self._infos),
            "batches": self.batches,
            "anomalies": emitted["anomalies"],
            "suppressed_by_cooldown": emitted["suppressed_by_cooldown"],
            "suppressed_in_warmup": emitted["suppressed_in_warmup"],
            "history_warmed": self.history.warmed,
            "history_skipped": self.history.skipped,
            "store_warmed": dict(self.history.store_warmed),
            "store_warmed_markets": len(self.history.store_markets),
            "errors": emitted["errors"],
            "latency_seconds": emitted["latency_seconds"],
        }
