"""Schema through alembic: upgrade, autogenerate parity with the models, downgrade, CLI."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from sqlalchemy import inspect, text

from cryptomon.cli import main
from cryptomon.config import DatabaseConfig
from cryptomon.errors import FatalError
from cryptomon.store import migrate
from cryptomon.store.db import Database
from cryptomon.store.models import Base
from cryptomon.store.queries import Queries

APP_TABLES = set(Base.metadata.tables)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI configures logging on pytest's captured stderr; undo it for later tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
    return set(names) - {"alembic_version"}


@pytest.mark.asyncio
async def test_auto_migrate_creates_every_table(db: Database) -> None:
    """start() with auto_migrate brings an empty database to head with all model tables."""
    assert await _tables(db) == APP_TABLES
    assert await migrate.current(db) == (migrate.head(),)


@pytest.mark.asyncio
async def test_autogenerate_finds_no_difference(db: Database) -> None:
    """alembic autogenerate sees no difference between the models and the migrated schema."""
    assert await migrate.compare(db) == []


@pytest.mark.asyncio
async def test_downgrade_base_removes_schema_and_upgrade_restores(db: Database) -> None:
    """downgrade base drops every table; upgrade head recreates them."""
    await migrate.downgrade(db, "base")
    assert await _tables(db) == set()
    assert await migrate.current(db) == ()
    await migrate.upgrade(db, "head")
    assert await _tables(db) == APP_TABLES


@pytest.mark.asyncio
async def test_no_auto_migrate_leaves_database_empty(db_url: str) -> None:
    """auto_migrate: false without the schema check (the `db` commands) connects without
    creating tables."""
    database = Database(DatabaseConfig(url=db_url, auto_migrate=False), check_schema=False)
    await database.start()
    try:
        assert await _tables(database) == set()
        assert await database.ping()
    finally:
        await database.stop()
    assert not await database.ping()


@pytest.mark.asyncio
async def test_without_auto_migrate_a_schema_not_at_head_is_refused(
    db: Database, db_url: str
) -> None:
    """auto_migrate: false on a database behind head, with no schema, or at a newer
    cryptomon's revision: the start is refused naming the revision and what to run, and the
    schema is left as it is. (It started: the writer then refused every anomaly for a
    missing column, as bad data, and the trailed stops were not read back.)"""
    await migrate.downgrade(db, "-1")
    (behind,) = await migrate.current(db)
    again = Database(DatabaseConfig(url=db_url, auto_migrate=False))
    with pytest.raises(FatalError) as exc:
        await again.start()
    message = str(exc.value)
    assert f"schema revision {behind}" in message
    assert f"needs {migrate.head()}" in message
    assert "crypto-monitor db upgrade" in message
    assert "database.auto_migrate is off" in message
    assert not again.started
    assert await migrate.current(db) == (behind,)

    await migrate.downgrade(db, "base")
    with pytest.raises(FatalError, match=r"no cryptomon schema.*crypto-monitor db upgrade"):
        await Database(DatabaseConfig(url=db_url, auto_migrate=False)).start()
    assert await _tables(db) == set()

    await migrate.upgrade(db, "head")
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(FatalError, match=r"at revision 9999.*a newer cryptomon migrated it"):
        await Database(DatabaseConfig(url=db_url, auto_migrate=False)).start()
    async with db.engine.begin() as conn:
        await conn.execute(text(f"UPDATE alembic_version SET version_num = '{migrate.head()}'"))
    at_head = Database(DatabaseConfig(url=db_url, auto_migrate=False))
    await at_head.start()  # at head: starts
    await at_head.stop()


def _tables_now(url: str) -> set[str]:
    async def go() -> set[str]:
        database = Database(DatabaseConfig(url=url, auto_migrate=False), check_schema=False)
        await database.start()
        try:
            return await _tables(database)
        finally:
            await database.stop()

    return asyncio.run(go())


def test_cli_upgrade_and_downgrade(
    db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`crypto-monitor db upgrade` creates the schema, `db downgrade base` removes it."""
    monkeypatch.setenv("CRYPTOMON_DATABASE__URL", db_url)
    assert main(["db", "current"]) == 0
    assert "base (no schema)" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert f"now at {migrate.head()}" in capsys.readouterr().out
    assert _tables_now(db_url) == APP_TABLES
    assert main(["db", "current"]) == 0
    assert capsys.readouterr().out.strip() == migrate.head()
    assert main(["db", "downgrade", "base"]) == 0
    assert _tables_now(db_url) == set()


def test_cli_current_of_a_missing_sqlite_file_says_so_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`db current` on a mistyped SQLite path: "base (no schema)" and a line naming the
    missing file; no directory or empty database is left behind (both were created)."""
    path = tmp_path / "typo" / "cryptomon.db"
    monkeypatch.setenv("CRYPTOMON_DATABASE__URL", f"sqlite+aiosqlite:///{path}")
    assert main(["db", "current"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "base (no schema)"
    assert f"no database file at {path}" in err
    assert not path.parent.exists()


def _without_root_override(argv: list[str]) -> list[str]:
    """``argv`` run so file permissions apply: as root (CI), without the capabilities that
    bypass them (setpriv, util-linux); as another user, as it is."""
    if os.geteuid() != 0:
        return argv
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", *argv]


@pytest.mark.parametrize("command", [["db", "upgrade"], ["run", "--log-format", "json"]])
def test_a_sqlite_file_in_a_directory_that_cannot_be_written_is_named(
    tmp_path: Path, command: list[str]
) -> None:
    """SQLite in a directory the daemon cannot write (a read-only mount, another owner):
    exit 1 with one line saying the directory is not writable and why SQLite needs it, not
    only "unreachable: unable to open database file"; no traceback."""
    folder = tmp_path / "ro"
    folder.mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"database: {{url: 'sqlite+aiosqlite:///{folder}/cm.db'}}\n"
        f"data_dir: {tmp_path / 'data'}\napi: {{port: 0}}\n"
    )
    folder.chmod(0o555)
    try:
        argv = [sys.executable, "-m", "cryptomon", *command, "--config", str(cfg)]
        proc = subprocess.run(
            _without_root_override(argv),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=tmp_path,
        )
    finally:
        folder.chmod(0o755)
    assert proc.returncode == 1, proc.stderr[-2000:]
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("crypto-monitor")]
    assert f"the directory {folder} is not writable" in line, line
    assert "cm.db-wal" in line, line
    assert "Traceback" not in proc.stderr
    assert not (folder / "cm.db").exists()


def test_cli_history_lists_revisions(capsys: pytest.CaptureFixture[str]) -> None:
    """`db history` lists the packaged revisions without a database."""
    assert main(["db", "history"]) == 0
    out = capsys.readouterr().out
    assert "base -> 0001:" in out
    assert f"-> {migrate.head()} (head)" in out


def test_cli_unknown_revision_is_a_usage_error(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown revision exits 2 naming it and the valid choices."""
    monkeypatch.setenv("CRYPTOMON_DATABASE__URL", sqlite_url)
    assert main(["db", "downgrade", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown revision 'nope'" in err
    assert "0001" in err


def test_cli_db_without_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """`crypto-monitor db` alone exits 2 and lists the actions."""
    assert main(["db"]) == 2
    assert "upgrade, downgrade, current, history" in capsys.readouterr().err


def test_cli_unreachable_database_names_redacted_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreachable database exits 1 with one line naming the URL, password hidden."""
    monkeypatch.setenv(
        "CRYPTOMON_DATABASE__URL", "postgresql+psycopg://bob:hunter22@127.0.0.1:1/nowhere"
    )
    assert main(["db", "upgrade"]) == 1
    err = capsys.readouterr().err
    assert "postgresql+psycopg://bob:***@127.0.0.1:1/nowhere is unreachable" in err
    assert "hunter22" not in err
    assert "Traceback" not in err


@pytest.mark.asyncio
async def test_every_revision_upgrades_and_downgrades_step_by_step(db: Database) -> None:
    """Walking down one revision at a time to base and back up leaves no model difference."""
    revisions = [line.split(" -> ")[1].split(":")[0].split(" ")[0] for line in migrate.history()]
    for expected in revisions[1:]:
        await migrate.downgrade(db, "-1")
        assert await migrate.current(db) == (expected,)
    await migrate.downgrade(db, "-1")
    assert await migrate.current(db) == ()
    for rev in reversed(revisions):
        await migrate.upgrade(db, "+1")
        assert await migrate.current(db) == (rev,)
    assert await migrate.compare(db) == []


@pytest.mark.asyncio
async def test_concurrent_auto_migrations_both_succeed(db_url: str) -> None:
    """Two daemons starting at once on an empty database both come up at head."""
    first = Database(DatabaseConfig(url=db_url))
    second = Database(DatabaseConfig(url=db_url))
    try:
        await asyncio.gather(first.start(), second.start())
        assert await migrate.current(first) == (migrate.head(),)
        assert await _tables(second) == APP_TABLES
    finally:
        await first.stop()
        await second.stop()


def test_migration_graph_has_one_head() -> None:
    """Every alembic revision builds on the previous head: the graph has exactly one head."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config())
    heads = script.get_heads()
    assert len(heads) == 1, f"alembic revisions with more than one head: {sorted(heads)}"
    chain = [rev.revision for rev in script.walk_revisions()]
    assert len(chain) == len(set(chain))


_STARTS_AND_LISTS_ALEMBIC = """
import asyncio, sys
from cryptomon.config import DatabaseConfig
from cryptomon.errors import FatalError
from cryptomon.store.db import Database

async def main() -> None:
    database = Database(DatabaseConfig(url=sys.argv[1]))
    await database.start()
    await database.stop()
    print(sorted(name for name in sys.modules if name.split(".")[0] in ("alembic", "mako")))

asyncio.run(main())
"""


@pytest.mark.asyncio
async def test_start_at_head_does_not_load_alembic(db: Database, db_url: str) -> None:
    """A daemon starting on a database already at head never imports alembic (its ~8 MB)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _STARTS_AND_LISTS_ALEMBIC, db_url, stdout=subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0
    assert stdout.decode().strip().splitlines()[-1] == "[]", stdout


@pytest.mark.asyncio
async def test_start_behind_head_still_upgrades(db: Database, db_url: str) -> None:
    """A database one revision behind is brought to head by the next start (alembic runs),
    and the log says from which revision to which (the upgrade of a binary changes the
    schema: an operator reads it there); a start at head says nothing of it."""
    await migrate.downgrade(db, "-1")
    (behind,) = await migrate.current(db)
    assert behind != migrate.head()
    again = Database(DatabaseConfig(url=db_url))
    with structlog.testing.capture_logs() as logs:
        await again.start()
    try:
        assert await migrate.current(again) == (migrate.head(),)
        assert await migrate.compare(again) == []
    finally:
        await again.stop()
    (line,) = [e for e in logs if e["event"] == "db.migrated"]
    assert line["log_level"] == "info"
    assert (line["from_revision"], line["to_revision"]) == (behind, migrate.head())
    once_more = Database(DatabaseConfig(url=db_url))
    with structlog.testing.capture_logs() as logs:
        await once_more.start()
    await once_more.stop()
    assert not [e for e in logs if e["event"] == "db.migrated"]


@pytest.mark.asyncio
async def test_schema_of_a_newer_cryptomon_is_refused_naming_what_to_do(
    db: Database, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database a newer release migrated (a rollback of the binary): the start, `db
    upgrade` and `db current` say so and what to do instead of alembic's "Can't locate
    revision", and the schema is left as it is."""
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    again = Database(DatabaseConfig(url=db_url))
    with pytest.raises(FatalError) as exc:
        await again.start()
    message = str(exc.value)
    assert "at revision 9999" in message
    assert "a newer cryptomon migrated it" in message
    assert f"db downgrade {migrate.head()}" in message
    monkeypatch.setenv("CRYPTOMON_DATABASE__URL", db_url)
    assert await asyncio.to_thread(main, ["db", "upgrade"]) == 1
    assert "a newer cryptomon migrated it" in capsys.readouterr().err
    assert await asyncio.to_thread(main, ["db", "current"]) == 0
    assert "9999 (unknown to this cryptomon" in capsys.readouterr().out
    assert await migrate.current(db) == ("9999",)
    assert await _tables(db) == APP_TABLES


@pytest.mark.asyncio
async def test_0011_fills_the_items_of_existing_anomalies(db: Database) -> None:
    """Anomalies stored before 0011 (more than one backfill batch, edge values) get the item
    the store writes for a new row; the column is then NOT NULL, the pages are the column
    pages' bytes, and downgrade drops it."""
    from sqlalchemy import insert, select

    from cryptomon.store.models import AnomalyRow
    from cryptomon.store.queries import Queries
    from cryptomon.store.repos import ANOMALY_COLUMNS, anomaly_tuple
    from tests.integration.store.test_anomaly_json import edge_values, varied

    await migrate.downgrade(db, "0010")
    events = [*edge_values(), *(varied(i) for i in range(40))]
    events += [replace(varied(i), id=f"batch-{i:05d}") for i in range(1_100)]
    rows = [anomaly_tuple(ev, dialect=db.dialect, json_reasons=False) for ev in events]
    columns = ANOMALY_COLUMNS[:-1]  # no item column yet
    async with db.engine.begin() as conn:
        await conn.execute(
            insert(AnomalyRow.__table__), [dict(zip(columns, r[:-1], strict=True)) for r in rows]
        )
    await migrate.upgrade(db, "head")

    async with db.engine.connect() as conn:
        stored = dict((await conn.execute(select(AnomalyRow.id, AnomalyRow.item))).all())
        item = await conn.run_sync(
            lambda c: next(
                col for col in inspect(c).get_columns("anomalies") if col["name"] == "item"
            )
        )
    assert stored == {ev.id: r[-1] for ev, r in zip(events, rows, strict=True)}
    assert item["nullable"] is False
    queries = Queries(db=db)
    for filters in ({}, {"exchange": "okx"}, {"min_severity": "high"}):
        page, cursor = await queries.anomalies(limit=50, **filters)
        expected = orjson.dumps({"items": page, "next_cursor": cursor})
        assert await queries.anomaly_page_json(limit=50, **filters) == expected
    assert await migrate.compare(db) == []

    await migrate.downgrade(db, "0010")
    async with db.engine.connect() as conn:
        names = await conn.run_sync(
            lambda c: [col["name"] for col in inspect(c).get_columns("anomalies")]
        )
    assert "item" not in names
    assert "ts_detected" in names


@pytest.mark.asyncio
async def test_0013_marks_existing_candles_live_and_downgrades(db: Database) -> None:
    """Candles stored at 0012 cannot be told apart: 0013 gives them all ``history = false``
    (NOT NULL); the partial retention indexes replace the plain ones; downgrade restores
    0012's schema."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    await migrate.downgrade(db, "0012")
    values = ", ".join(
        f"('binance', 'BTC-USDT', '1m', '{datetime.fromtimestamp(60 * i, UTC).isoformat(' ')}', "
        f"'{datetime.fromtimestamp(60 * i + 60, UTC).isoformat(' ')}', 1, 1, 1, 1, 1, "
        f"{'true' if db.engine.dialect.name == 'postgresql' else '1'}, '{source}')"
        for i, source in enumerate(["exchange", "trades", "exchange"])
    )
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO candles (exchange, symbol, interval, open_time, close_time, open, "
                f"high, low, close, volume, closed, source) VALUES {values}"
            )
        )
    await migrate.upgrade(db, "0013")

    def schema(c: Any) -> tuple[dict[str, Any], set[str], set[str]]:
        insp = inspect(c)
        cols = {col["name"]: col for col in insp.get_columns("candles")}
        names = {ix["name"] for ix in insp.get_indexes("candles")}
        return cols, names, {ix["name"] for ix in insp.get_indexes("trades")}

    async with db.engine.connect() as conn:
        flags = (await conn.execute(text("SELECT history FROM candles"))).scalars().all()
        cols, candle_ix, trade_ix = await conn.run_sync(schema)
    assert [bool(f) for f in flags] == [False, False, False]
    assert cols["history"]["nullable"] is False
    assert "ix_candles_live_open_time" in candle_ix
    assert "ix_candles_open_time" not in candle_ix
    assert "ix_trades_feed_ts" in trade_ix
    assert "ix_trades_ts" not in trade_ix

    await migrate.downgrade(db, "0012")
    async with db.engine.connect() as conn:
        cols, candle_ix, trade_ix = await conn.run_sync(schema)
        kept = (await conn.execute(text("SELECT count(*) FROM candles"))).scalar_one()
    assert "history" not in cols
    assert kept == 3
    assert "ix_candles_open_time" in candle_ix
    assert "ix_candles_live_open_time" not in candle_ix
    assert "ix_trades_ts" in trade_ix
    assert "ix_trades_feed_ts" not in trade_ix
    await migrate.upgrade(db, "head")
    assert await migrate.compare(db) == []


@pytest.mark.asyncio
async def test_0014_adds_protection_levels_from_0013_and_downgrades(db: Database) -> None:
    """From the previous head (0013, with a position stored), 0014 adds ``protection_levels``:
    the writer's upsert keeps the latest trailed stop per market and the journal reads it
    back exactly; downgrade to 0013 drops the table and leaves the rest."""
    from decimal import Decimal

    from cryptomon.events import ProtectionUpdate
    from cryptomon.store import repos
    from cryptomon.store.journal import StoreJournal

    await migrate.downgrade(db, "0013")
    assert "protection_levels" not in await _tables(db)
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO positions (exchange, symbol, amount, avg_price, realized_pnl, "
                "unrealized_pnl, fees, updated_at) VALUES ('binance', 'BTC-USDT', '0.1', "
                "'20000', '0', '0', '0', '2026-12-06 12:00:00')"
            )
        )
    await migrate.upgrade(db, "head")  # 0014 and the revisions after it
    assert await migrate.compare(db) == []

    def level(stop: str, best: str, ts: float) -> ProtectionUpdate:
        return ProtectionUpdate(
            exchange="binance",
            symbol="BTC-USDT",
            ts=ts,
            ts_recv=ts,
            entry_id="entry-1",
            side="long",
            stop=Decimal(stop),
            best=Decimal(best),
            take=Decimal("21200.5"),
            trail_pct=Decimal("1.5"),
        )

    async with db.sessionmaker() as session, session.begin():
        await repos.write_durable(session, [level("19900.123456789", "20203.17", 1.0)])
    async with db.sessionmaker() as session, session.begin():  # a later move, then the latest
        await repos.write_durable(
            session, [level("20000.5", "20305.08", 2.0), level("20001.25", "20306.34", 3.0)]
        )
    stored = await StoreJournal(db=db).stored_trails()
    assert list(stored) == [("binance", "BTC-USDT")]
    got = stored[("binance", "BTC-USDT")]
    assert (got.entry_id, got.side, got.stop, got.best, got.take, got.trail_pct, got.ts) == (
        "entry-1",
        "long",
        Decimal("20001.25"),
        Decimal("20306.34"),
        Decimal("21200.5"),
        Decimal("1.5"),
        3.0,
    )

    await migrate.downgrade(db, "0013")
    async with db.engine.connect() as conn:
        kept = (await conn.execute(text("SELECT count(*) FROM positions"))).scalar_one()
    assert "protection_levels" not in await _tables(db)
    assert kept == 1
    await migrate.upgrade(db, "head")
    assert await migrate.compare(db) == []


@pytest.mark.asyncio
async def test_0015_indexes_notifications_by_event_type_and_downgrades(db: Database) -> None:
    """From 0014 (with a notification stored), 0015 adds the (event_type, ts, id) index of
    the notification history's event type filter; downgrade to 0014 drops it and keeps the
    row."""

    def indexes(sync_conn: Any) -> set[str]:
        return {ix["name"] for ix in inspect(sync_conn).get_indexes("notifications")}

    await migrate.downgrade(db, "0014")
    async with db.engine.begin() as conn:
        assert "ix_notifications_event_type_time_id" not in await conn.run_sync(indexes)
        await conn.execute(
            text(
                "INSERT INTO notifications (event_key, ts, exchange, symbol, channel, status, "
                "title, body, attempts, error, priority, event_type) VALUES ('k1', "
                "'2026-12-06 12:00:00', '', '', 'ops', 'sent', 't', '', 1, '', 'P2', 'test')"
            )
        )
    await migrate.upgrade(db, "0015")
    async with db.engine.connect() as conn:
        assert "ix_notifications_event_type_time_id" in await conn.run_sync(indexes)
    rows, _ = await Queries(db=db).notification_page(event_type="test")
    assert [r["title"] for r in rows] == ["t"]
    await migrate.downgrade(db, "0014")
    async with db.engine.connect() as conn:
        assert "ix_notifications_event_type_time_id" not in await conn.run_sync(indexes)
        kept = (await conn.execute(text("SELECT count(*) FROM notifications"))).scalar_one()
    assert kept == 1
    await migrate.upgrade(db, "head")
    assert await migrate.compare(db) == []


@pytest.mark.asyncio
async def test_0016_links_backtest_runs_to_their_sweep_and_downgrades(db: Database) -> None:
    """From 0015 (with a stored backtest run), 0016 adds the run's sweep
    (id, rank, metric; NULL for the runs stored before: they were single runs) and the index
    the sweep's listing reads; downgrade to 0015 drops them and keeps the run."""
    from cryptomon.store.history import BacktestRuns

    await migrate.downgrade(db, "0015")
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                'INSERT INTO backtest_runs (created_at, source, symbols, start, "end", params, '
                "summary, breakdown, trades, digest) VALUES ('2026-12-06 12:00:00', 'db', "
                "'[\"ALT-BTC\"]', '2026-12-01 00:00:00', '2026-12-02 00:00:00', "
                "'{\"overrides\": {}}', '{\"pnl\": 1.5}', '{}', '[]', 'abc')"
            )
        )
    await migrate.upgrade(db, "0016")

    def schema(c: Any) -> tuple[dict[str, Any], set[str]]:
        insp = inspect(c)
        cols = {col["name"]: col for col in insp.get_columns("backtest_runs")}
        return cols, {ix["name"] for ix in insp.get_indexes("backtest_runs")}

    async with db.engine.connect() as conn:
        cols, indexes = await conn.run_sync(schema)
    assert {"sweep_id", "sweep_rank", "sweep_metric"} <= set(cols)
    assert all(cols[c]["nullable"] for c in ("sweep_id", "sweep_rank", "sweep_metric"))
    assert "ix_backtest_runs_sweep" in indexes
    [old] = await BacktestRuns(db=db).list_runs()
    assert (old["sweep_id"], old["sweep_rank"], old["overrides"]) == (None, None, {})
    assert await BacktestRuns(db=db).list_runs(sweep=old["id"]) == []

    await migrate.downgrade(db, "0015")
    async with db.engine.connect() as conn:
        cols, indexes = await conn.run_sync(schema)
        kept = (await conn.execute(text("SELECT count(*) FROM backtest_runs"))).scalar_one()
    assert not {"sweep_id", "sweep_rank", "sweep_metric"} & set(cols)
    assert "ix_backtest_runs_sweep" not in indexes
    assert kept == 1
    await migrate.upgrade(db, "head")
    assert await migrate.compare(db) == []


@pytest.mark.asyncio
async def test_0017_adds_the_bus_positions_and_downgrades(db: Database) -> None:
    """0017 adds ``bus_positions`` (the brain's committed stream position per consumer, read
    back as stored); downgrade to 0016 drops it."""
    from cryptomon.store.positions import read_position, save_position

    def tables(c: Any) -> set[str]:
        return set(inspect(c).get_table_names())

    await migrate.downgrade(db, "0016")
    async with db.engine.connect() as conn:
        assert "bus_positions" not in await conn.run_sync(tables)
    await migrate.upgrade(db, "0017")
    async with db.sessionmaker() as session, session.begin():
        await save_position(session, "S/d", (7, 1_700_000_000_123_456_789))
        await save_position(session, "S/d", (9, 1_700_000_000_987_654_321))
    async with db.sessionmaker() as session:
        assert await read_position(session, "S/d") == (9, 1_700_000_000_987_654_321)
        assert await read_position(session, "S/other") is None
    await migrate.downgrade(db, "0016")
    async with db.engine.connect() as conn:
        assert "bus_positions" not in await conn.run_sync(tables)
    await migrate.upgrade(db, "head")
    assert await migrate.compare(db) == []


def test_cli_a_step_the_wrong_way_or_past_the_end_is_a_usage_error(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`db upgrade -1`, `db downgrade +1` and a step beyond base or head exited 1 with
    alembic's "Relative revision -1 didn't produce 1 migrations", and `db upgrade 0005` on a
    database at head said "now at <head>" having done nothing. Each is now a usage error (2)
    naming where the database is and the command that goes that way; nothing changes."""
    monkeypatch.setenv("CRYPTOMON_DATABASE__URL", sqlite_url)
    head = migrate.head()
    steps = len(list(migrate.history()))
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    cases = {
        ("upgrade", "-1"): "(to go down: crypto-monitor db downgrade -1)",
        ("upgrade", "0001"): f"the database is at {head}, above 0001",
        ("upgrade", "+1"): f"+1 goes past head from {head}; expected at most +0 (or head)",
        ("downgrade", f"-{steps + 1}"): f"goes past base from {head}; expected at most -{steps}",
    }
    for (action, rev), said in cases.items():
        assert main(["db", action, rev]) == 2, (action, rev)
        err = capsys.readouterr().err
        assert err.startswith(f"crypto-monitor db {action}: "), err
        assert said in err, err
        assert "Relative revision" not in err
        assert len(err.strip().splitlines()) == 1, err
    assert main(["db", "downgrade", "-1"]) == 0
    capsys.readouterr()
    assert main(["db", "downgrade", "+1"]) == 2
    assert "(to go up: crypto-monitor db upgrade +1)" in capsys.readouterr().err
    assert main(["db", "upgrade", "+1"]) == 0
    assert f"now at {head}" in capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert capsys.readouterr().out.strip() == head
