"""The store writer's transactions (:mod:`cryptomon.store.writer`): one batch's work in one
transaction under the database's answer timeout, retried with capped backoff and jitter while
the database is unreachable (one ``db_unreachable`` notice per outage, ``db_recovered`` after
it), and the counters of what was written."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from cryptomon.clock import Clock
from cryptomon.config import StorageConfig
from cryptomon.errors import backoff_delays
from cryptomon.events import Notice
from cryptomon.hub import Hub
from cryptomon.log import redact_url
from cryptomon.store.db import is_transient

if TYPE_CHECKING:
    from cryptomon.store.db import Database

log = structlog.get_logger()

Work = Callable[[AsyncSession], Awaitable[dict[str, int]]]
NoticeLevel = Literal["info", "warning", "error", "critical"]


class Transactions:
    """Runs the writer's batches against ``db`` (:meth:`write`) and counts them."""

    def __init__(self, *, hub: Hub, db: Database, config: StorageConfig, clock: Clock) -> None:
        """``hub``: where the outage notices go; ``config``: ``retry_max_s`` caps the backoff."""
        self.hub = hub
        self.db = db
        self.config = config
        self.clock = clock
        self.rows: dict[str, int] = {}
        self.batches = 0
        self.retries = 0
        self.last_error: str | None = None
        self._outage_since: float | None = None  # clock.time() of the first failed write
        self.latency_last = 0.0
        self.latency_max = 0.0
        self.latency_sum = 0.0

    async def write(self, work: Work, size: int) -> bool:
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

    def outage_s(self) -> float:
        """Seconds since the first failed (or unanswered) write of the current outage; 0.0
        while writes succeed. Reads may still work meanwhile (a SQLite file locked by another
        writer, a full disk, a read-only file), so this, not a ping, says whether rows are
        being stored."""
        if self._outage_since is None:
            return 0.0
        return max(0.0, self.clock.time() - self._outage_since)

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
        self.latency_sum += elapsed
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
