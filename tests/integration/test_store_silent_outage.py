"""A silent PostgreSQL outage: packets stop flowing but no connection is closed or refused.

The writer reaches PostgreSQL through a loopback TCP proxy started here that can stall
(stop forwarding in both directions while keeping every connection open, and keep accepting
new ones), which is what dropped packets look like to the client. Statement and connect
timeouts turn that into the same ``db_unreachable`` notice as a refused connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from cryptomon.clock import LiveClock
from cryptomon.config import DatabaseConfig, StorageConfig
from cryptomon.errors import TemporaryError
from cryptomon.events import Notice
from cryptomon.hub import Hub
from cryptomon.store.db import Database
from cryptomon.store.models import AnomalyRow
from cryptomon.store.queries import Queries
from cryptomon.store.writer import StoreWriter
from tests.stubs import anomaly
from tests.util import wait_until


class StallingProxy:
    """Forwards 127.0.0.1:<port> to a target; ``stall()`` holds every byte without closing."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stall(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        await self.flowing.wait()  # a new connection is accepted, then hangs
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers.update({writer, up_writer})
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_writer)),
            asyncio.ensure_future(self._pipe(up_reader, writer)),
        ]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for p in pipes:
                p.cancel()
            for w in (writer, up_writer):
                w.transport.abort()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await src.read(65536):
                await self.flowing.wait()
                dst.write(data)
                await dst.drain()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._writers:
            w.transport.abort()
        for t in self._tasks:
            t.cancel()


async def _count(db: Database) -> int:
    async with db.sessionmaker() as s:
        return int((await s.execute(select(func.count()).select_from(AnomalyRow))).scalar_one())


@contextlib.asynccontextmanager
async def _behind_proxy(
    pg_url: str, **cfg: Any
) -> AsyncIterator[tuple[Database, StallingProxy, Database]]:
    """The test database migrated directly, then a :class:`Database` reaching it through a
    fresh :class:`StallingProxy` (``cfg``: its further ``DatabaseConfig`` keys), yielded with
    the proxy and the direct one; both stopped and the proxy resumed and closed on the way out."""
    direct = Database(DatabaseConfig(url=pg_url))
    await direct.start()  # migrates
    url = make_url(pg_url)
    proxy = StallingProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    db = Database(DatabaseConfig(url=proxied, auto_migrate=False, **cfg))
    try:
        await db.start()
        yield db, proxy, direct
    finally:
        proxy.resume()
        await db.stop()
        await direct.stop()
        await proxy.close()


@pytest.mark.asyncio
async def test_stalled_connection_is_an_outage_within_seconds_and_loses_nothing(
    pg_url: str,
) -> None:
    """With every packet held (no RST, no refusal) the writer publishes ``db_unreachable``
    within a few seconds, then ``db_recovered`` and every event stored once after."""
    async with _behind_proxy(pg_url, connect_timeout_s=1, statement_timeout_s=1) as (
        db,
        proxy,
        direct,
    ):
        hub = Hub()
        notices: list[Notice] = []
        hub.subscribe(Notice, notices.append, name="test")
        storage = StorageConfig(batch_size=5, batch_max_age_s=0.05, retry_max_s=0.5)
        writer = StoreWriter(hub=hub, db=db, config=storage, clock=LiveClock())
        await writer.start()
        try:
            hub.publish(anomaly(ts_detected=1_700_000_000.0))
            await wait_until(lambda: writer.batches >= 1, message="first batch written")
            proxy.stall()
            stalled_at = time.monotonic()
            for i in range(1, 11):
                hub.publish(anomaly(ts_detected=1_700_000_000.0 + i))
            await wait_until(
                lambda: any(n.code == "db_unreachable" for n in notices),
                timeout=8,
                message="db_unreachable notice",
            )
            assert time.monotonic() - stalled_at < 6
            proxy.resume()
            await wait_until(
                lambda: any(n.code == "db_recovered" for n in notices),
                timeout=20,
                message="db_recovered notice",
            )
            await writer.stop()
            assert await _count(direct) == 11
        finally:
            if writer._subs:
                await writer.stop()


@pytest.mark.asyncio
async def test_reads_on_a_stalled_connection_fail_as_temporary_within_seconds(pg_url: str) -> None:
    """A query whose packets are held fails with a TemporaryError after the statement
    timeout instead of hanging the API handler."""
    async with _behind_proxy(pg_url, statement_timeout_s=1) as (db, proxy, _):
        queries = Queries(db=db)
        await queries.anomalies(limit=5)
        proxy.stall()
        t0 = time.monotonic()
        with pytest.raises(TemporaryError, match="unavailable"):
            await queries.anomalies(limit=5)
        assert time.monotonic() - t0 < 15  # 1 s + the driver's own cancel grace


@pytest.mark.asyncio
async def test_a_read_stalled_in_the_ping_is_cut_and_frees_its_thread(pg_url: str) -> None:
    """A reader thread blocked on a stalled socket (here in the ping of a pooled connection
    before the query) is cut at the read's deadline: the read fails as TemporaryError, the
    thread is free again while the packets are still held, and once they flow the next read
    answers on a new connection (the cut one is not reused). The cut ping makes the pool
    reconnect: a read past its deadline must not (a connection attempt to the stalled server
    would hold the thread for the whole connect timeout, 30 s here)."""
    async with _behind_proxy(pg_url, statement_timeout_s=1, connect_timeout_s=30) as (
        db,
        proxy,
        _,
    ):
        queries = Queries(db=db)
        assert await queries.anomalies(limit=5) == ([], None)
        db.ping_idle_s = 0.0  # every checkout pings: the read blocks in the ping
        proxy.stall()
        with pytest.raises(TemporaryError, match="unavailable"):
            await queries.anomalies(limit=5)
        assert db.threaded_reads
        await wait_until(lambda: db.reads_running == 0, timeout=10, message="thread freed")
        proxy.resume()
        assert await queries.anomalies(limit=5) == ([], None)


EMPTY_PAGE = b'{"items":[],"next_cursor":null}'


@pytest.mark.asyncio
@pytest.mark.parametrize("stalled_in", ["ping", "statement", "connect"])
async def test_a_page_read_on_the_loop_stalled_is_cut_at_its_deadline(
    pg_url: str, stalled_in: str
) -> None:
    """The JSON page, read on the loop with psycopg's async connection, blocked on a stalled
    socket (in the ping of an idle connection, in the statement, or connecting) fails as
    TemporaryError at its deadline (1 s here; not psycopg's own cancel request and its
    grace, 10 s, nor the 30 s connect timeout), its connection is closed, not reused, and
    once the packets flow again the next page answers on a new connection."""
    async with _behind_proxy(pg_url, statement_timeout_s=1, connect_timeout_s=30) as (
        db,
        proxy,
        _,
    ):
        queries = Queries(db=db)
        loop_rows = db.loop_rows
        assert loop_rows is not None
        if stalled_in != "connect":  # an idle connection is kept for the next page
            assert await queries.anomaly_page_json(limit=5) == EMPTY_PAGE
            assert loop_rows.connections == 1
        db.ping_idle_s = 0.0 if stalled_in == "ping" else 3600.0
        proxy.stall()
        t0 = time.monotonic()
        with pytest.raises(TemporaryError, match="unavailable"):
            await queries.anomaly_page_json(limit=5)
        assert 0.9 < time.monotonic() - t0 < 5
        assert loop_rows.connections == 0
        proxy.resume()
        assert await queries.anomaly_page_json(limit=5) == EMPTY_PAGE
        assert loop_rows.connections == 1
