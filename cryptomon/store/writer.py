"""The store writer: hub events -> database, in batches (DESIGN.md sections 5 and 6).

Two queued hub subscriptions:

- durable kinds (``events.DURABLE`` and ``FeedStatus``), ``policy="never_drop"``: anomalies,
  signals, orders, fills, positions, risk events, notifications, audit entries, feed events;
- market data, ``policy="drop_oldest"`` bounded by ``storage.market_buffer``: trades (rows only
  with ``storage.trades``; always aggregated into 1-minute candles), book tops sampled every
  ``storage.book_sample_s`` per market, closed exchange candles.

A batch is written when it reaches ``storage.batch_size`` rows (``market_batch_size`` for
market data: fewer, larger COPY transactions) or ``storage.batch_max_age_s`` after its first
row, in one transaction, with bulk statements (``COPY`` on PostgreSQL for trades and book tops;
on SQLite the rows are converted in a worker thread and inserted in the connection's thread,
off the event loop). Durable rows take priority: pending ones are written before each market
batch. On a database error the batch is kept and retried with capped backoff and jitter,
forever: durable rows are never dropped; while a retry blocks, market data piles up in the
bounded hub queue, which drops the oldest and counts it. A batch the database refuses for good
(bad data, not an outage) is split and the offending rows are logged and counted as
``rejected``. ``stop()`` drains the queues and flushes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from cryptomon.clock import Clock
from cryptomon.config import StorageConfig
from cryptomon.errors import backoff_delays
from cryptomon.events import (
    DURABLE,
    BookTop,
    Candle,
    Event,
    FeedStatus,
    FlaggedTrade,
    Notice,
    Trade,
)
from cryptomon.hub import Hub, InlineSubscription, QueuedSubscription
from cryptomon.log import redact_url
from cryptomon.store import repos
from cryptomon.store.candles import CandleAggregator
from cryptomon.store.db import is_transient

if TYPE_CHECKING:
    from cryptomon.store.db import Database

log = structlog.get_logger()

Work = Callable[[AsyncSession], Awaitable[dict[str, int]]]
NoticeLevel = Literal["info", "warning", "error", "critical"]


class StoreWriter:
    """Persists hub events in batches; see the module docstring."""

    name = "store-writer"

    def __init__(self, *, hub: Hub, db: Database, config: StorageConfig, clock: Clock) -> None:
        self.hub = hub
        self.db = db
        self.config = config
        self.clock = clock
        self.candles = CandleAggregator()
        self._durable: list[Event] = []
        self._durable_since = 0.0
        self._trades: list[tuple[Any, ...]] = []
        self._tops: list[tuple[Any, ...]] = []
        self._exchange_candles: list[dict[str, Any]] = []
        self._market_since = 0.0
        self._last_sample: dict[tuple[str, str], float] = {}
        self._durable_lock = asyncio.Lock()
        self._market_lock = asyncio.Lock()
        self._subs: list[QueuedSubscription] = []
        self._top_sampler: InlineSubscription | None = None
        self._timers: list[asyncio.Task[None]] = []
        # stats
        self.rows: dict[str, int] = {}
        self.batches = 0
        self.retries = 0
        self.rejected = 0
        self.flagged = 0  # historical and quarantined trades stored with their flag
        self.dropped = 0
        self.last_error: str | None = None
        self._outage_since: float | None = None  # clock.time() of the first failed write
        self.latency_last = 0.0
        self.latency_max = 0.0
        self._latency_sum = 0.0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        cfg = self.config
        self._subs = [
            self.hub.subscribe_queued(
                (*DURABLE, FeedStatus),
                self._on_durable,
                name="store-writer.durable",
                policy="never_drop",
                batch_size=cfg.batch_size,
            ),
            self.hub.subscribe_queued(
                (Trade, FlaggedTrade, Candle),
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
        for sub in self._subs:
            sub.start()  # drain even before the hub starts (the hub then skips it)
        loop = asyncio.get_running_loop()
        self._timers = [
            loop.create_task(self._tick(stream), name=f"store-writer.{stream}")
            for stream in ("durable", "market")
        ]

    async def stop(self) -> None:
        """Drain both queues, then write everything still buffered."""
        if self._top_sampler is not None:
            self._top_sampler.close()
            self._top_sampler = None
        for sub in self._subs:
            await sub.stop(timeout=3600)
        for timer in self._timers:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        self._timers = []
        try:
            await self.flush()
        finally:
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

    async def flush(self) -> None:
        """Write every buffered row now, open candles included."""
        await self._flush_durable()
        await self._flush_market(with_open_candles=True)

    # ------------------------------------------------------------------ hub handlers

    def _sample_top(self, ev: BookTop) -> None:
        key = (ev.exchange, ev.symbol)
        prev = self._last_sample.get(key)
        if prev is None or ev.ts - prev >= self.config.book_sample_s:
            self._last_sample[key] = ev.ts
            self._market_queue.put(ev)

    async def _on_durable(self, batch: list[Event]) -> None:
        if not self._durable:
            self._durable_since = self.clock.monotonic()
        self._durable.extend(batch)
        if len(self._durable) >= self.config.batch_size:
            await self._flush_durable()

    async def _on_market(self, batch: list[Event]) -> None:
        if not (self._trades or self._tops or self._exchange_candles):
            self._market_since = self.clock.monotonic()
        keep_trades = self.config.trades
        agg = self.candles.add
        trades = self._trades
        fromts = datetime.fromtimestamp
        for ev in batch:
            cls = ev.__class__
            if cls is Trade:
                t: Any = ev
                agg(t)
                if keep_trades:  # repos.trade_tuple inlined (hot path), TRADE_COLUMNS order
                    trades.append(
                        (
                            t.exchange,
                            t.symbol,
                            fromts(t.ts, UTC),
                            t.price,
                            t.amount,
                            t.side,
                            t.trade_id,
                            t.notional,
                            None,
                        )
                    )
            elif cls is FlaggedTrade:  # stored with its flag, never in candles
                self.flagged += 1
                if keep_trades:
                    flagged: Any = ev
                    trades.append(repos.trade_tuple(flagged.trade, flagged.flag))
            elif cls is BookTop:  # already sampled by _sample_top
                self._tops.append(repos.book_top_tuple(ev))  # type: ignore[arg-type]
            elif cls is Candle and ev.closed:  # type: ignore[attr-defined]
                self._exchange_candles.append(repos.candle_row(ev))  # type: ignore[arg-type]
        if len(self._trades) + len(self._tops) >= self.config.market_batch_size:
            await self._flush_market(with_open_candles=False)

    async def _tick(self, stream: str) -> None:
        """Flush one stream's partial batch once it is ``batch_max_age_s`` old. One task per
        stream, so a durable batch retrying through an outage never stalls market flushes
        (whose bounded buffers must keep draining to drop, not grow)."""
        max_age = self.config.batch_max_age_s
        while True:
            await self.clock.sleep(max_age / 2)
            now = self.clock.monotonic()
            try:
                if stream == "durable":
                    if self._durable and now - self._durable_since >= max_age:
                        await self._flush_durable()
                elif now - self._market_since >= max_age:
                    await self._flush_market(with_open_candles=True)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the timer die
                log.error("store.flush_failed", stream=stream, error=repr(exc))

    # ------------------------------------------------------------------ writing

    async def _flush_durable(self) -> None:
        async with self._durable_lock:
            while self._durable:
                batch = self._durable[: self.config.batch_size]
                await self._write_durable(batch)
                del self._durable[: len(batch)]
                self._durable_since = self.clock.monotonic()

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

    async def _flush_market(self, *, with_open_candles: bool) -> None:
        """Write buffered market rows; open (growing) candles only on the age timer and at
        stop, so size-triggered flushes stay pure bulk inserts. Durable rows go first: every
        market write is preceded by the durable rows already received, so a saturated market
        stream delays them by at most one market batch (SQLite has one writer at a time)."""
        if self._durable and not self._durable_lock.locked():
            await self._flush_durable()
        async with self._market_lock:
            trades, self._trades = self._trades, []
            tops, self._tops = self._tops, []
            candles = self._exchange_candles
            self._exchange_candles = []
            self._market_since = self.clock.monotonic()
            candles = candles + self.candles.take(include_open=with_open_candles)
            if not (trades or tops or candles):
                return

            async def work(session: AsyncSession) -> dict[str, int]:
                out: dict[str, int] = {}
                if self.db.dialect == "postgresql":
                    # Market data may lose its last few hundred ms in a server crash (never
                    # corrupt): don't wait for the WAL flush. Durable kinds keep full commits.
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
                    out["candles"] = await repos.upsert_candles(session, candles)
                return out

            if not await self._write(work, len(trades) + len(tops) + len(candles)):
                self.rejected += len(trades) + len(tops) + len(candles)
                log.error("store.market_batch_rejected", rows=len(trades) + len(tops))

    async def _write(self, work: Work, size: int) -> bool:
        """Run ``work`` in one transaction; retry transient failures forever with backoff.

        Returns False when the database refuses the data itself (not an outage).
        """
        delays = None
        while True:
            t0 = time.perf_counter()
            try:
                counts = await self._attempt(work)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                first_line = str(exc).splitlines()[0] if str(exc) else ""
                if isinstance(exc, TimeoutError) and not first_line:
                    first_line = f"no answer within {self.db.answer_timeout_s} s"
                self.last_error = redact_url(f"{type(exc).__name__}: {first_line}")
                if not is_transient(exc):
                    log.error("store.write_refused", rows=size, error=self.last_error)
                    return False
                self.retries += 1
                self._outage(self.last_error)
                if delays is None:
                    delays = backoff_delays(initial=0.2, cap=self.config.retry_max_s)
                delay = next(delays)
                log.warning(
                    "store.write_retry",
                    rows=size,
                    retry_in_s=round(delay, 2),
                    error=self.last_error,
                )
                await self.clock.sleep(delay)
                continue
            self._written(counts, time.perf_counter() - t0, retried=delays is not None)
            return True

    async def _attempt(self, work: Work) -> dict[str, int]:
        """One transaction under the database's answer timeout. Held packets (no reset, no
        refusal) are an outage as soon as that passes, although the driver may take longer
        to give the connection up."""
        limit = self.db.answer_timeout_s
        timer = None
        if limit is not None:
            timer = asyncio.get_running_loop().call_later(
                limit, self._outage, f"no answer within {limit} s"
            )
        try:
            async with (
                asyncio.timeout(limit),
                self.db.sessionmaker() as session,
                session.begin(),
            ):
                return await work(session)
        finally:
            if timer is not None:
                timer.cancel()

    def _outage(self, error: str) -> None:
        """The first failure of an outage: one ``db_unreachable`` notice."""
        if self._outage_since is not None:
            return
        self._outage_since = self.clock.time()
        self._notice(
            "db_unreachable",
            f"database {self.db.safe_url} unreachable ({error}); "
            "the writer keeps its batches and retries",
            "error",
        )

    def _written(self, counts: dict[str, int], elapsed: float, *, retried: bool) -> None:
        self.batches += 1
        self.latency_last = elapsed
        self.latency_max = max(self.latency_max, elapsed)
        self._latency_sum += elapsed
        for table, n in counts.items():
            self.rows[table] = self.rows.get(table, 0) + n
        if retried:
            log.info("store.write_recovered", retries=self.retries)
        if self._outage_since is not None:
            down = self.clock.time() - self._outage_since
            self._outage_since = None
            self._notice(
                "db_recovered",
                f"database {self.db.safe_url} reachable again after {down:.1f} s",
                "info",
            )

    def _notice(self, code: str, message: str, level: NoticeLevel) -> None:
        now = self.clock.time()
        self.hub.publish(
            Notice(
                exchange="", symbol="", ts=now, ts_recv=now, code=code, message=message, level=level
            )
        )

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
            "backlog": {
                "durable": len(self._durable),
                "market": len(self._trades) + len(self._tops) + len(self._exchange_candles),
                "queued": sum(hub_depth.values()),
            },
            "dropped": self.dropped + hub_dropped,
            "late_trades": self.candles.late,
            "flagged_trades": self.flagged,
            "write_latency_s": {
                "last": self.latency_last,
                "max": self.latency_max,
                "avg": self._latency_sum / self.batches if self.batches else 0.0,
            },
        }
