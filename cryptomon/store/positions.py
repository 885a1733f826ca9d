"""Commit positions: the brain acknowledges a JetStream message only once its rows are stored.

The brain's bus source (:mod:`cryptomon.bus.source`) calls :meth:`CommitTracker.checkpoint`
after each fetched batch, once the hub's queued subscribers took its events: the store writer
then holds exactly the rows of the messages up to that one (nothing later is published before
the call). When the market batch is due (``storage.market_batch_size`` rows, or
``storage.batch_max_age_s`` since the last write), the tracker takes the writer's buffered
market rows and the 1-minute candles built from trades, open ones included, at once, writes
the durable rows received so far, then the market rows in one transaction that also stores the
position (``bus_positions``: stream sequence and stream time of the batch's last message).
Once that commits, the checkpoint is reported committed and the source acknowledges up to it.

So every market transaction of the brain ends on a message boundary and carries it: after a
crash, the messages JetStream delivers again up to the stored position are skipped by the
source (their rows, candles included, are in the database), the ones after it are processed
from scratch. The writer continues each stored trades-bar candle a restarted brain writes
first (any minute, not only the restart minute), so the restart splits no candle's volume or
trade count and counts none twice. One market write at a time: while it is in flight, the
buffers fill and the next due checkpoint takes them; past ``storage.market_batch_size`` rows
the writer waits for it (the hub's bounded market queue then drops the oldest, counted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cryptomon.store.models import BusPositionRow

if TYPE_CHECKING:
    from cryptomon.store.db import Database

log = structlog.get_logger()

Position = tuple[int, int]
"""A message's place in its stream: (stream sequence, stream time in nanoseconds)."""

MarketRows = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[dict[str, Any]]]
"""What one market transaction writes: trade rows, book-top rows, candle rows."""


class Writer(Protocol):
    """What the tracker needs of :class:`cryptomon.store.writer.StoreWriter`."""

    @property
    def db(self) -> Database: ...

    def market_due(self) -> bool: ...

    def take_market(self, *, with_open_candles: bool) -> MarketRows: ...

    async def flush_durable(self) -> None: ...

    async def write_market(self, rows: MarketRows, *, position: tuple[str, Position]) -> None: ...


async def read_position(session: AsyncSession, consumer: str) -> Position | None:
    """The position stored for ``consumer`` (None: none yet)."""
    row = (
        await session.execute(
            select(BusPositionRow.stream_seq, BusPositionRow.stream_ts_ns).where(
                BusPositionRow.consumer == consumer
            )
        )
    ).first()
    return None if row is None else (int(row[0]), int(row[1]))


async def save_position(session: AsyncSession, consumer: str, position: Position) -> None:
    """Store ``position`` for ``consumer`` in the caller's transaction."""
    seq, ts_ns = position
    now = datetime.now(UTC)
    result = await session.execute(
        update(BusPositionRow)
        .where(BusPositionRow.consumer == consumer)
        .values(stream_seq=seq, stream_ts_ns=ts_ns, updated_at=now)
    )
    if not getattr(result, "rowcount", 0):
        session.add(
            BusPositionRow(consumer=consumer, stream_seq=seq, stream_ts_ns=ts_ns, updated_at=now)
        )
        await session.flush()


class CommitTracker:
    """See the module docstring. ``consumer`` names the position row (stream and durable)."""

    def __init__(self, writer: Writer, consumer: str) -> None:
        self.writer = writer
        self.consumer = consumer
        self.latest: tuple[int, Position] | None = None  # the newest checkpoint (mark, position)
        self.committed = 0  # the newest checkpoint mark whose rows are all committed
        self.on_commit: Callable[[int], None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def stored(self) -> Position | None:
        """The position the database holds (what a brain before this one committed)."""
        async with self.writer.db.sessionmaker() as session:
            return await read_position(session, self.consumer)

    def writing(self) -> bool:
        """True while a checkpoint's rows are being written."""
        return self._task is not None and not self._task.done()

    def checkpoint(self, mark: int, position: Position, *, force: bool = False) -> None:
        """The writer holds the rows of every message up to ``position`` (checkpoint ``mark``,
        increasing) and nothing later: write them if due (or ``force``), in the background."""
        self.latest = (mark, position)
        if self.writing():
            return  # the next checkpoint after this write takes what piles up meanwhile
        if not force and (mark == self.committed or not self.writer.market_due()):
            return
        rows = self.writer.take_market(with_open_candles=True)
        self._task = asyncio.get_running_loop().create_task(
            self._write(rows, mark, position), name="store-writer.checkpoint"
        )

    async def _write(self, rows: MarketRows, mark: int, position: Position) -> None:
        w = self.writer
        await w.flush_durable()
        await w.write_market(rows, position=(self.consumer, position))
        if mark > self.committed:
            self.committed = mark
            if self.on_commit is not None:
                self.on_commit(mark)

    async def drain(self) -> None:
        """Wait for the write in flight (if any)."""
        if self._task is not None:
            await asyncio.wait([self._task])
            if not self._task.cancelled() and self._task.exception() is not None:
                log.error("store.checkpoint_failed", error=repr(self._task.exception()))

    async def flush(self) -> None:
        """Write everything up to the latest checkpoint now (a stop), and wait for it."""
        await self.drain()
        if self.latest is not None and self.latest[0] > self.committed:
            self.checkpoint(*self.latest, force=True)
            await self.drain()
