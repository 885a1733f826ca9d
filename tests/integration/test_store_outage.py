"""Database outages mid-stream: nothing durable is lost or duplicated after recovery.

PostgreSQL: the writer reaches the server through a loopback TCP proxy started here; the
proxy is torn down (every connection aborted, the port refusing) and brought back several
times while events are published. SQLite: another process-level connection holds an
exclusive lock on the file, so every write fails with "database is locked" until released.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from cryptomon.clock import LiveClock
from cryptomon.config import DatabaseConfig, StorageConfig
from cryptomon.errors import TemporaryError
from cryptomon.events import Event, Notice, OrderState
from cryptomon.hub import Hub
from cryptomon.store.db import Database
from cryptomon.store.models import AnomalyRow, FillRow, OrderRow, TradeRow
from cryptomon.store.queries import Queries
from cryptomon.store.writer import StoreWriter
from tests.stubs import anomaly, fill, intent, trade, update
from tests.util import wait_until


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``down()`` aborts everything, ``up()`` resumes."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        for t in list(self._transports):
            t.abort()
        self._transports.clear()
        await self._server.wait_closed()
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._transports.update({writer.transport, up_writer.transport})  # type: ignore[arg-type]
        pipes = [
            asyncio.ensure_future(self._pipe(reader, up_writer)),
            asyncio.ensure_future(self._pipe(up_reader, writer)),
        ]
        self._tasks.update(pipes)
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for w in (writer, up_writer):
            w.transport.abort()

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()

    async def close(self) -> None:
        if self._server is not None:
            await self.down()
        for t in self._tasks:
            t.cancel()


def _durable_burst(tag: str, n: int) -> tuple[list[Event], set[str], set[str], set[str]]:
    """n anomalies, n orders (intent + 2 updates) and n fills; returns events and the keys."""
    events: list[Event] = []
    anomaly_ids, orders, fills = set(), set(), set()
    for i in range(n):
        a = anomaly(ts_detected=1_700_000_000.0 + i)
        cid, tid = f"{tag}-o{i}", f"{tag}-t{i}"
        events += [
            a,
            intent(cid),
            update(cid, OrderState.SUBMITTED, exchange_order_id=f"X{tag}{i}"),
            fill(tid, cid),
            update(cid, OrderState.FILLED, filled=Decimal("0.05"), avg_price=Decimal("1.5")),
        ]
        anomaly_ids.add(a.id)
        orders.add(cid)
        fills.add(tid)
    return events, anomaly_ids, orders, fills


async def _counts(db: Database) -> tuple[int, int, int]:
    async with db.sessionmaker() as s:
        out = [
            int((await s.execute(select(func.count()).select_from(model))).scalar_one())
            for model in (AnomalyRow, OrderRow, FillRow)
        ]
    return out[0], out[1], out[2]


async def _check_exactly_once(
    db: Database, anomaly_ids: set[str], orders: set[str], fills: set[str]
) -> None:
    async with db.sessionmaker() as s:
        got_a = list((await s.execute(select(AnomalyRow.id))).scalars())
        got_o = list((await s.execute(select(OrderRow.client_order_id, OrderRow.state))).all())
        got_f = list((await s.execute(select(FillRow.trade_id))).scalars())
    assert sorted(got_a) == sorted(anomaly_ids)
    assert sorted(cid for cid, _ in got_o) == sorted(orders)
    assert {state for _, state in got_o} == {"filled"}
    assert sorted(got_f) == sorted(fills)


def _writer(db: Database) -> tuple[Hub, StoreWriter]:
    hub = Hub()
    config = StorageConfig(batch_size=25, batch_max_age_s=0.05, retry_max_s=0.3)
    return hub, StoreWriter(hub=hub, db=db, config=config, clock=LiveClock())


@pytest.mark.asyncio
async def test_postgres_outage_loses_and_duplicates_nothing(pg_url: str) -> None:
    """Events published before, during and between three proxy outages are all stored once."""
    direct = Database(DatabaseConfig(url=pg_url))
    await direct.start()  # migrates
    url = make_url(pg_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.up()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    db = Database(DatabaseConfig(url=proxied, auto_migrate=False, connect_timeout_s=2))
    await db.start()
    hub, writer = _writer(db)
    await writer.start()
    all_a: set[str] = set()
    all_o: set[str] = set()
    all_f: set[str] = set()
    try:
        for round_ in range(3):
            events, a, o, f = _durable_burst(f"r{round_}a", 20)
            for ev in events:
                hub.publish(ev)
            all_a |= a
            all_o |= o
            all_f |= f
            await asyncio.sleep(0)  # let the writer start on the burst
            await proxy.down()  # mid-stream: connections aborted, port refusing
            events, a, o, f = _durable_burst(f"r{round_}b", 20)
            for ev in events:
                hub.publish(ev)
            all_a |= a
            all_o |= o
            all_f |= f
            retries = writer.retries
            await wait_until(lambda r=retries: writer.retries >= r + 2, message="failed writes")
            await proxy.up()
        await wait_until(
            _all_written(direct, len(all_a), len(all_o), len(all_f)),
            timeout=30,
            message="every event after recovery",
        )
        await writer.stop()
        await _check_exactly_once(direct, all_a, all_o, all_f)
        assert writer.stats()["retries"] >= 6
        assert writer.stats()["rejected"] == 0
    finally:
        if writer._subs:
            await writer.stop()
        await db.stop()
        await direct.stop()
        await proxy.close()


def _all_written(db: Database, na: int, no: int, nf: int) -> Any:
    async def check() -> bool:
        return await _counts(db) == (na, no, nf)

    return check


@pytest.mark.asyncio
async def test_sqlite_locked_database_loses_and_duplicates_nothing(sqlite_url: str) -> None:
    """While another connection holds an exclusive lock, writes retry; afterwards all is there."""
    db = Database(DatabaseConfig(url=sqlite_url, sqlite_busy_timeout_s=0.05))
    await db.start()
    hub, writer = _writer(db)
    notices: list[Notice] = []
    hub.subscribe(Notice, notices.append)
    await writer.start()
    path = make_url(sqlite_url).database
    try:
        events, a1, o1, f1 = _durable_burst("before", 10)
        for ev in events:
            hub.publish(ev)
        await wait_until(_all_written(db, 10, 10, 10), message="first burst")
        locker = sqlite3.connect(str(path), timeout=5, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            events, a2, o2, f2 = _durable_burst("locked", 30)
            for ev in events:
                hub.publish(ev)
            await wait_until(lambda: writer.retries >= 3, message="retries while locked")
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        await wait_until(_all_written(db, 40, 40, 40), timeout=20, message="after unlock")
        await writer.stop()
        await _check_exactly_once(db, a1 | a2, o1 | o2, f1 | f2)
        assert "locked" in (writer.stats()["last_error"] or "")
        # one notice when the outage starts, one when it ends (for the alerts router)
        assert [(n.code, n.level) for n in notices] == [
            ("db_unreachable", "error"),
            ("db_recovered", "info"),
        ]
    finally:
        if writer._subs:
            await writer.stop()
        await db.stop()


@pytest.mark.asyncio
async def test_backlog_counts_the_market_batch_retried_through_an_outage(sqlite_url: str) -> None:
    """The market batch taken out of the buffer and retried while SQLite is locked is still
    backlog in stats() (so in /metrics): it read 0 while its rows waited."""
    db = Database(DatabaseConfig(url=sqlite_url, sqlite_busy_timeout_s=0.05))
    await db.start()
    hub = Hub()
    config = StorageConfig(
        trades=True, batch_max_age_s=0.05, retry_max_s=0.3, market_batch_size=1000
    )
    writer = StoreWriter(hub=hub, db=db, config=config, clock=LiveClock())
    await writer.start()
    locker = sqlite3.connect(str(make_url(sqlite_url).database), timeout=5, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        for i in range(50):
            hub.publish(trade(1_700_000_000.0 + i))
        await wait_until(lambda: writer.retries >= 2, message="market batch retried")
        assert writer.stats()["backlog"]["market"] >= 50
        locker.execute("ROLLBACK")
        await wait_until(lambda: writer.stats()["backlog"]["market"] == 0, message="written")
        async with db.sessionmaker() as s:
            stored = (await s.execute(select(func.count()).select_from(TradeRow))).scalar_one()
        assert stored == 50
    finally:
        if locker.in_transaction:
            locker.execute("ROLLBACK")
        locker.close()
        await writer.stop()
        await db.stop()


@pytest.mark.asyncio
async def test_stop_cut_short_during_outage_reports_unsaved_events(sqlite_url: str) -> None:
    """If the shutdown budget ends while the database is locked, the loss is logged and counted."""
    db = Database(DatabaseConfig(url=sqlite_url, sqlite_busy_timeout_s=0.05))
    await db.start()
    hub, writer = _writer(db)
    await writer.start()
    path = make_url(sqlite_url).database
    locker = sqlite3.connect(str(path), timeout=5, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        for i in range(7):
            hub.publish(anomaly(ts_detected=1_700_000_000.0 + i))
        await wait_until(lambda: writer.retries >= 1, message="a failed write")
        with capture_logs() as logs, pytest.raises(TimeoutError):
            await asyncio.wait_for(writer.stop(), 0.3)
        unsaved = [e for e in logs if e["event"] == "store.unsaved_durable_events"]
        assert unsaved
        assert unsaved[0]["count"] == 7
    finally:
        locker.execute("ROLLBACK")
        locker.close()
        await db.stop()


@pytest.mark.asyncio
async def test_market_data_beyond_the_bound_is_dropped_and_counted(sqlite_url: str) -> None:
    """While the database is locked, trades beyond market_buffer are dropped (oldest first) and
    counted; every trade is either stored or counted, and no anomaly is lost."""
    db = Database(DatabaseConfig(url=sqlite_url, sqlite_busy_timeout_s=0.05))
    await db.start()
    hub = Hub()
    config = StorageConfig(
        trades=True,
        batch_size=20,
        market_batch_size=20,
        batch_max_age_s=0.05,
        retry_max_s=0.2,
        market_buffer=50,
    )
    writer = StoreWriter(hub=hub, db=db, config=config, clock=LiveClock())
    await writer.start()
    path = make_url(sqlite_url).database
    locker = sqlite3.connect(str(path), timeout=5, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    anomalies = [anomaly(ts_detected=1_700_000_000.0 + i) for i in range(30)]
    try:
        for i in range(500):
            hub.publish(trade(1_700_000_000.0 + i * 0.01))
            if i % 20 == 0:
                hub.publish(anomalies[i // 20])
                await asyncio.sleep(0)  # let the writer take batches and block on the lock
        for a in anomalies[25:]:
            hub.publish(a)
        await wait_until(lambda: writer.retries >= 2, message="retries while locked")
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    try:
        await writer.stop()
        stats = writer.stats()
        async with db.sessionmaker() as s:
            stored = (await s.execute(select(func.count()).select_from(TradeRow))).scalar_one()
            ids = set((await s.execute(select(AnomalyRow.id))).scalars())
        assert stats["dropped"] > 0
        assert stored + stats["dropped"] == 500
        assert ids == {a.id for a in anomalies}
    finally:
        await db.stop()


@pytest.mark.asyncio
async def test_queries_raise_temporary_error_while_database_is_away(pg_url: str) -> None:
    """The read side turns an unreachable database into a TemporaryError with a redacted URL,
    and works again once the database is back."""
    direct = Database(DatabaseConfig(url=pg_url))
    await direct.start()
    url = make_url(pg_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.up()
    proxied = url.set(host="127.0.0.1", port=proxy.port, password="pw-secret-1")
    db = Database(
        DatabaseConfig(
            url=proxied.render_as_string(hide_password=False),
            auto_migrate=False,
            connect_timeout_s=2,
        )
    )
    await db.start()
    queries = Queries(db=db)
    try:
        assert await queries.anomalies() == ([], None)
        await proxy.down()
        with pytest.raises(TemporaryError, match=r"unavailable") as info:
            await queries.anomalies()
        assert "pw-secret-1" not in str(info.value)
        assert ":***@127.0.0.1" in str(info.value)
        await proxy.up()
        assert await queries.orders() == []
    finally:
        await db.stop()
        await direct.stop()
        await proxy.close()
