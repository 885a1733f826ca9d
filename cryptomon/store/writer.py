"""The store writer: hub events -> database, in batches (DESIGN.md sections 5 and 6).

Two queued hub subscriptions:

- durable kinds (``events.DURABLE`` and ``FeedStatus``), ``policy="never_drop"``: anomalies,
  signals, orders, fills, positions, risk events, notifications, audit entries, feed events;
- market data, ``policy="drop_oldest"`` bounded by ``storage.market_buffer``: trades with
  ``storage.trades`` (stored, and aggregated into 1-minute candles), book tops sampled every
  ``storage.book_sample_s`` per market, closed exchange candles. Without ``storage.trades``
  (the default) a trade is folded into its 1-minute candle inline as it is published and
  never takes a buffer slot; closed candles waiting for the database are bounded by
  ``storage.candle_buffer`` (the oldest dropped and counted).

A batch is written when it reaches ``storage.batch_size`` rows (``market_batch_size`` for
market data: fewer, larger COPY transactions) or ``storage.batch_max_age_s`` after its first
row, in one transaction, with bulk statements (``COPY`` on PostgreSQL for trades and book tops;
on SQLite the rows are converted in a worker thread and inserted in the connection's thread,
off the event loop; anomalies too). Durable rows take priority: pending ones are written before
each market batch, and a durable backlog (several whole batches pending) is written up to
``DURABLE_BURST`` batches per transaction. On SQLite the two streams take turns for the one
writer in-process, first come first served, instead of waiting for each other in SQLite's
busy handler. On a database error the batch is kept and retried with capped backoff and jitter,
forever: durable rows are never dropped; while a retry blocks, market data piles up in the
bounded hub queue, which drops the oldest and counts it. A batch the database refuses for good
(bad data, not an outage) is split and the offending rows are logged and counted as
``rejected``. ``stop()`` drains the queues and flushes everything. The transactions and their
retries are :mod:`cryptomon.store.transactions`.

The brain (:meth:`StoreWriter.track`) writes its market rows only at the checkpoints of its bus
source instead (no size or age flush of its own), each transaction with the stream position
it ends at, so a message is acknowledged once its rows are committed
(:mod:`cryptomon.store.positions`).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from cryptomon.clock import Clock
from cryptomon.config import StorageConfig
from cryptomon.events import (
    DURABLE,
    BookTop,
    Candle,
    Event,
    FeedStatus,
    FlaggedTrade,
    Trade,
)
from cryptomon.hub import Hub, InlineSubscription, QueuedSubscription
from cryptomon.store import repos
from cryptomon.store.candles import CandleAggregator, StoredBars
from cryptomon.store.positions import CommitTracker, MarketRows, Position, save_position
from cryptomon.store.transactions import Transactions, Work

if TYPE_CHECKING:
    from cryptomon.store.db import Database

log = structlog.get_logger()

JOINED_MINUTES = 2
"""The minutes a run may join in progress: the one it started in and the one before (trades
received late, or again from the bus after a brain's restart)."""

DURABLE_BURST = 8  # batches per durable transaction while a backlog is written


class StoreWriter:
    """Persists hub events in batches; see the module docstring."""

    name = "store-writer"
    stop_reserve = 0.5
    """The share of the daemon's ``shutdown_timeout_s`` the components stopped before the
    writer (the notifier delivering to a dead channel, ...) leave to it and what follows, so
    what it has buffered is written (:meth:`cryptomon.app.lifecycle.App.stop`)."""

    def __init__(self, *, hub: Hub, db: Database, config: StorageConfig, clock: Clock) -> None:
        self.hub = hub
        self.db = db
        self.config = config
        self.clock = clock
        # closed bars wait for the database at most candle_buffer of them (an outage)
        self.candles = CandleAggregator(max_closed=config.candle_buffer)
        # this run's bars from trades continue the rows a run before stored (a restart)
        self.stored_bars = StoredBars(repos.stored_trade_bars)
        self._durable: list[Event] = []
        self._durable_since = 0.0
        self._trades: list[tuple[Any, ...]] = []
        self._tops: list[tuple[Any, ...]] = []
        self._exchange_candles: list[dict[str, Any]] = []
        self._market_since = 0.0
        self._last_sample: dict[tuple[str, str], float] = {}
        self._durable_lock = asyncio.Lock()
        self._market_lock = asyncio.Lock()
        self._market_writing = 0  # rows of the market batch being written (or retried)
        # SQLite has one writer at a time: the two streams take turns in-process (FIFO, so a
        # waiting durable batch goes next) instead of meeting at the file lock, where the
        # loser sleeps in SQLite's busy handler while the other stream writes again
        self._turn: asyncio.Lock | None = asyncio.Lock() if db.dialect == "sqlite" else None
        # On SQLite the buffered trades and book tops keep their epoch seconds: the worker
        # thread of store.bulk.sqlite_insert makes the stored text from them, so the loop
        # builds no datetime per row (PostgreSQL's binary COPY takes datetimes)
        self._epoch_ts = db.dialect == "sqlite"
        self._subs: list[QueuedSubscription] = []
        self._top_sampler: InlineSubscription | None = None
        self._inline: list[InlineSubscription] = []
        self._timers: list[asyncio.Task[None]] = []
        self._ticking: set[str] = set()  # the streams whose age timer is writing now
        self._stopping = False
        self.tracker: CommitTracker | None = None  # the brain's commit positions (track())
        self.tx = Transactions(hub=hub, db=db, config=config, clock=clock)
        # stats (the written rows, batches, retries and latency are the transactions')
        self.rejected = 0
        self.flagged = 0  # historical and quarantined trades stored with their flag
        self.dropped = 0

    @property
    def rows(self) -> dict[str, int]:
        """Rows written, by table."""
        return self.tx.rows

    @property
    def batches(self) -> int:
        """Transactions committed."""
        return self.tx.batches

    @property
    def retries(self) -> int:
        """Failed attempts retried (an outage)."""
        return self.tx.retries

    @property
    def last_error(self) -> str | None:
        """The last write error (URL password redacted)."""
        return self.tx.last_error

    # ------------------------------------------------------------------ lifecycle

    def track(self, consumer: str) -> CommitTracker:
        """From now on, market rows are written only at the checkpoints of the returned
        tracker (:mod:`cryptomon.store.positions`), each with its position: the brain's bus
        source acknowledges a message once its rows are committed. Call before start."""
        self.tracker = CommitTracker(self, consumer)
        self.stored_bars.joined = None  # a restart may continue any minute (positions.py)
        return self.tracker

    async def start(self) -> None:
        cfg = self.config
        if self.tracker is None:
            self.stored_bars.join(self.clock.time(), JOINED_MINUTES)
        self._subs = [
            self.hub.subscribe_queued(
                (*DURABLE, FeedStatus),
                self._on_durable,
                name="store-writer.durable",
                policy="never_drop",
                # a backlog is handed over (and written) up to DURABLE_BURST batches at once
                batch_size=cfg.batch_size * DURABLE_BURST,
            ),
            self.hub.subscribe_queued(
                # without trade rows a trade is only folded into its candle: inline (below)
                (Trade, FlaggedTrade, Candle) if cfg.trades else (Candle,),
                self._on_market,
                name="store-writer.market",
                policy="drop_oldest",
                maxsize=cfg.market_buffer,
                batch_size=cfg.market_batch_size,
            ),
        ]
        # Book tops arrive on every book update but only one per book_sample_s per market is
        # kept: sample inline, so the others never cost a queue slot or a task wake-up.
        self._market_queue = self._subs[1]
        self._top_sampler = self.hub.subscribe(
            BookTop, self._sample_top, name="store-writer.book-sampler"
        )
        if not cfg.trades:
            # Trades are not stored: each is folded into its 1-minute candle as it is
            # published (a dict lookup and a few float updates), so none waits in (or is
            # dropped from) the bounded market buffer, which then holds sampled book tops and
            # exchange candles only.
            self._inline = [
                self.hub.subscribe(Trade, self.candles.add, name="store-writer.candles"),
                self.hub.subscribe(FlaggedTrade, self._count_flagged, name="store-writer.flagged"),
            ]
        for sub in self._subs:
            sub.start()  # drain even before the hub starts (the hub then skips it)
        loop = asyncio.get_running_loop()
        self._stopping = False
        self._timers = [
            loop.create_task(self._tick(stream), name=f"store-writer.{stream}")
            for stream in ("durable", "market")
        ]

    async def stop(self) -> None:
        """Drain both queues, then write everything still buffered."""
        if self._top_sampler is not None:
            self._top_sampler.close()
            self._top_sampler = None
        for inline in self._inline:
            inline.close()
        self._inline = []
        for sub in self._subs:
            await sub.stop(timeout=3600)
        try:
            await self._end_timers()
            if self.tracker is not None:
                await self.tracker.drain()
            await self.flush()
        finally:
            for timer in self._timers:  # stop() cut short (the shutdown budget)
                timer.cancel()
            self._timers = []
            durable_kinds = (*DURABLE, FeedStatus)
            left = len(self._durable) + sum(
                1 for sub in self._subs for ev in sub.queue if isinstance(ev, durable_kinds)
            )
            for sub in self._subs:
                self.dropped += sub.dropped  # keep the count visible after stop
                sub.close()
            self._subs = []
            if left:  # only when stop was cut short (shutdown budget) during an outage
                log.error("store.unsaved_durable_events", count=left)

    async def _end_timers(self) -> None:
        """End the age timers. One is cancelled only while it sleeps: one that is writing
        finishes its write (cut off, a PostgreSQL COPY leaves its connection busy and the
        batch it took is lost) and then ends by itself."""
        self._stopping = True
        for stream, timer in zip(("durable", "market"), self._timers, strict=True):
            if stream not in self._ticking:
                timer.cancel()
            # wait(), not await: a cancellation of stop() itself is never swallowed here
            await asyncio.wait([timer])

    async def flush(self) -> None:
        """Write every buffered row now, open candles included (with a tracker, at its latest
        checkpoint's position: what is buffered came from the messages up to it)."""
        await self._flush_durable()
        tracker = self.tracker
        latest = None if tracker is None else tracker.latest
        position = None if tracker is None or latest is None else (tracker.consumer, latest[1])
        await self._flush_market(with_open_candles=True, position=position)

    async def flush_durable(self) -> None:
        """Write every durable row received so far."""
        await self._flush_durable()

    # ------------------------------------------------------------------ hub handlers

    def _sample_top(self, ev: BookTop) -> None:
        key = (ev.exchange, ev.symbol)
        prev = self._last_sample.get(key)
        if prev is None or ev.ts - prev >= self.config.book_sample_s:
            self._last_sample[key] = ev.ts
            self._market_queue.put(ev)

    def _count_flagged(self, ev: FlaggedTrade) -> None:
        self.flagged += 1  # without trade rows a flagged trade is only counted

    async def _on_durable(self, batch: list[Event]) -> None:
        if not self._durable:
            self._durable_since = self.clock.monotonic()
        self._durable.extend(batch)
        if len(self._durable) >= self.config.batch_size:
            await self._flush_durable(whole_batches=True)

    async def _on_market(self, batch: list[Event]) -> None:
        if not (self._trades or self._tops or self._exchange_candles):
            self._market_since = self.clock.monotonic()
        keep_trades = self.config.trades
        agg = self.candles.add
        trades = self._trades
        tops = self._tops
        fromts = datetime.fromtimestamp
        epoch = self._epoch_ts
        for ev in batch:
            cls = ev.__class__
            if cls is Trade or cls is FlaggedTrade:
                t: Any = ev
                flag = None
                if cls is Trade:
                    agg(t)
                else:  # stored with its flag, never in candles
                    self.flagged += 1
                    flag, t = t.flag, t.trade
                if keep_trades:  # repos.trade_tuple inlined (hot path), TRADE_COLUMNS order
                    trades.append(
                        (
                            t.exchange,
                            t.symbol,
                            t.ts if epoch else fromts(t.ts, UTC),
                            t.price,
                            t.amount,
                            t.side,
                            t.trade_id,
                            t.notional,
                            flag,
                        )
                    )
            elif cls is BookTop:  # already sampled by _sample_top; repos.book_top_tuple inlined
                b: Any = ev
                tops.append(
                    (
                        b.exchange,
                        b.symbol,
                        b.ts if epoch else fromts(b.ts, UTC),
                        b.bid,
                        b.bid_size,
                        b.ask,
                        b.ask_size,
                        b.spread,
                        b.spread_bps,
                        b.bid_depth,
                        b.ask_depth,
                        b.imbalance,
                        b.levels,
                    )
                )
            elif cls is Candle and ev.closed:  # type: ignore[attr-defined]
                self._exchange_candles.append(repos.candle_row(ev))  # type: ignore[arg-type]
        if len(self._trades) + len(self._tops) >= self.config.market_batch_size:
            if self.tracker is None:
                await self._flush_market(with_open_candles=False)
            else:  # written at the next checkpoint; while one is written, wait for it
                await self.tracker.drain()

    async def _tick(self, stream: str) -> None:
        """Flush one stream's partial batch once it is ``batch_max_age_s`` old. One task per
        stream, so a durable batch retrying through an outage never stalls market flushes
        (whose bounded buffers must keep draining to drop, not grow)."""
        max_age = self.config.batch_max_age_s
        while not self._stopping:
            await self.clock.sleep(max_age / 2)
            if self._stopping:  # woken as stop() began: stop() writes what is left
                return
            now = self.clock.monotonic()
            self._ticking.add(stream)
            try:
                if stream == "durable":
                    if self._durable and now - self._durable_since >= max_age:
                        await self._flush_durable()
                elif self.tracker is None and now - self._market_since >= max_age:
                    await self._flush_market(with_open_candles=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the timer die
                log.error("store.flush_failed", stream=stream, error=repr(exc))
            finally:
                self._ticking.discard(stream)

    # ------------------------------------------------------------------ writing

    async def _flush_durable(self, *, whole_batches: bool = False) -> None:
        """Write the durable rows received in whole ``storage.batch_size`` batches, then the
        partial rest unless ``whole_batches``. A backlog of several batches goes up to
        ``DURABLE_BURST`` of them per transaction, so the writer catches up with fewer
        commits and database turns."""
        async with self._durable_lock:
            size = self.config.batch_size
            while self._durable:
                pending = len(self._durable)
                if pending >= size:
                    n = size * min(pending // size, DURABLE_BURST)
                elif whole_batches:
                    break
                else:
                    n = pending
                batch = self._durable[:n]
                await self._write_durable(batch)
                del self._durable[: len(batch)]
                self._durable_since = self.clock.monotonic()

    async def _write(self, work: Work, size: int) -> bool:
        """One transaction (:meth:`Transactions.write`), in turn with the other stream on
        SQLite."""
        if self._turn is None:
            return await self.tx.write(work, size)
        async with self._turn:
            return await self.tx.write(work, size)

    async def _write_durable(self, batch: list[Event]) -> None:
        async def work(session: AsyncSession) -> dict[str, int]:
            return await repos.write_durable(session, batch)

        if await self._write(work, len(batch)):
            return
        # refused for good: write one by one, count what still fails
        for ev in batch:

            async def one(session: AsyncSession, ev: Event = ev) -> dict[str, int]:
                return await repos.write_durable(session, [ev])

            if not await self._write(one, 1):
                self.rejected += 1
                log.error(
                    "store.event_rejected", event_type=type(ev).__name__, error=self.last_error
                )

    async def _flush_market(
        self, *, with_open_candles: bool, position: tuple[str, Position] | None = None
    ) -> None:
        """Write buffered market rows; open (growing) candles only on the age timer and at
        stop, so size-triggered flushes stay pure bulk inserts. Durable rows go first: every
        market write is preceded by the durable rows already received, so a saturated market
        stream delays them by at most one market batch (SQLite has one writer at a time)."""
        if self._durable and not self._durable_lock.locked():
            await self._flush_durable()
        async with self._market_lock:
            rows = self.take_market(with_open_candles=with_open_candles)
            await self._write_market(rows, position)

    def market_due(self) -> bool:
        """True when the buffered market rows make a batch, or the oldest is
        ``storage.batch_max_age_s`` old."""
        cfg = self.config
        return (
            len(self._trades) + len(self._tops) >= cfg.market_batch_size
            or self.clock.monotonic() - self._market_since >= cfg.batch_max_age_s
        )

    def take_market(self, *, with_open_candles: bool) -> MarketRows:
        """Hand over the buffered market rows and the candles to write (the buffers start
        again empty)."""
        trades, self._trades = self._trades, []
        tops, self._tops = self._tops, []
        candles = self._exchange_candles
        self._exchange_candles = []
        self._market_since = self.clock.monotonic()
        return trades, tops, candles + self.candles.take(include_open=with_open_candles)

    async def write_market(self, rows: MarketRows, *, position: tuple[str, Position]) -> None:
        """Write ``rows`` (from :meth:`take_market`) with ``position`` in one transaction."""
        async with self._market_lock:
            await self._write_market(rows, position)

    async def _write_market(self, rows: MarketRows, position: tuple[str, Position] | None) -> None:
        trades, tops, candles = rows
        if not (trades or tops or candles):
            return

        async def work(session: AsyncSession) -> dict[str, int]:
            out: dict[str, int] = {}
            if self.db.dialect == "postgresql" and position is None:
                # Market data may lose its last few hundred ms in a server crash (never
                # corrupt): don't wait for the WAL flush. Durable kinds keep full commits, and
                # so do the brain's market rows (with a position): their messages are
                # acknowledged once committed, and JetStream never delivers them again.
                await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
            if trades:
                out["trades"] = await repos.copy_rows(
                    session, "trades", repos.TRADE_COLUMNS, trades
                )
            if tops:
                out["book_tops"] = await repos.copy_rows(
                    session, "book_tops", repos.BOOK_TOP_COLUMNS, tops
                )
            if candles:
                rows = await self.stored_bars.continued(session, candles)
                out["candles"] = await repos.upsert_candles(session, rows)
            if position is not None:
                await save_position(session, *position)
            return out

        self._market_writing = len(trades) + len(tops) + len(candles)
        try:
            written = await self._write(work, self._market_writing)
        finally:
            self._market_writing = 0
        if not written:
            self.rejected += len(trades) + len(tops) + len(candles)
            log.error("store.market_batch_rejected", rows=len(trades) + len(tops))
        else:
            self.stored_bars.written(candles)

    # ------------------------------------------------------------------ stats

    def stats(self) -> dict[str, Any]:
        """Counters for ``/metrics``."""
        hub_depth = {s.name: len(s.queue) for s in self._subs}
        hub_dropped = sum(s.dropped for s in self._subs)
        return {
            "rows": dict(self.rows),
            "batches": self.batches,
            "retries": self.retries,
            "rejected": self.rejected,
            "last_error": self.last_error,
            "outage_s": self.tx.outage_s(),
            "backlog": {
                "durable": len(self._durable),
                "market": len(self._trades)
                + len(self._tops)
                + len(self._exchange_candles)
                + self._market_writing,  # a batch retried through an outage is waiting too
                "queued": sum(hub_depth.values()),
            },
            "dropped": self.dropped + hub_dropped + self.candles.dropped,
            "late_trades": self.candles.late,
            "flagged_trades": self.flagged,
            "write_latency_s": {
                "last": self.tx.latency_last,
                "max": self.tx.latency_max,
                "avg": self.tx.latency_sum / self.batches if self.batches else 0.0,
            },
        }
