"""Shared fixtures: real SQLite files, a fresh real PostgreSQL database per test, the shared
recorded exchange data. Nothing here skips: a missing server or data set fails the test."""

from __future__ import annotations

import logging
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Tests that run CLI commands configure logging for the process (onto pytest's capture
    streams, closed after the test); put the defaults back so later tests log safely. The
    API's access log too: a command run at ``--log-level WARNING`` turned it off for every
    later test of the process (an API test waiting for its ``api.request`` line then timed
    out, depending on which tests a worker had run before), and its fast path kept writing
    to the closed stream of the test that configured it."""
    from cryptomon.log import access_log

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
    access_log.__init__()  # its defaults: on, through structlog


def shared_data_dir() -> Path:
    """``../shared/data/cryptofeed-sample`` beside the repo (or $CRYPTOMON_TEST_SHARED_DATA)."""
    env = os.environ.get("CRYPTOMON_TEST_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data" / "cryptofeed-sample"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real recorded exchange traffic; its absence is a failure, not a skip."""
    path = shared_data_dir()
    if not (path / "BINANCE.0").is_file():
        pytest.fail(f"shared recorded data not found at {path} (set CRYPTOMON_TEST_SHARED_DATA)")
    return path


def pg_admin_url() -> str:
    return os.environ.get("CRYPTOMON_TEST_DATABASE_URL", DEFAULT_PG_URL)


def _plain(url: str) -> str:
    return re.sub(r"^postgresql\+psycopg://", "postgresql://", url)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (SQLAlchemy URL), dropped after the test."""
    import psycopg

    admin = pg_admin_url()
    name = f"cmt_{uuid.uuid4().hex[:12]}"
    try:
        conn = psycopg.connect(_plain(admin), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {admin} is unreachable: {exc}")
    with conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(_plain(admin), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file (SQLAlchemy URL)."""
    return f"sqlite+aiosqlite:///{tmp_path / 'cryptomon.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once on SQLite and once on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))
