"""A non-editable install carries its migrations and migrates without alembic.ini."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from cryptomon.store import migrate
from tests.conftest import REPO


def test_built_package_ships_migrations_and_upgrades(tmp_path: Path) -> None:
    """setuptools' build of the package contains env.py, the template and every revision, and
    `crypto-monitor db upgrade` run from that build (no alembic.ini anywhere) creates the schema."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(
        REPO / "cryptomon", src / "cryptomon", ignore=shutil.ignore_patterns("__pycache__")
    )
    build = tmp_path / "build"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import setuptools; setuptools.setup()",
            "-q",
            "build_py",
            "--build-lib",
            str(build),
        ],
        cwd=src,
        check=True,
        capture_output=True,
    )
    migrations = build / "cryptomon" / "store" / "migrations"
    revisions = sorted(p.name for p in (REPO / "cryptomon/store/migrations/versions").glob("0*.py"))
    assert (migrations / "env.py").is_file()
    assert (migrations / "script.py.mako").is_file()
    assert sorted(p.name for p in (migrations / "versions").glob("0*.py")) == revisions
    run = tmp_path / "run"
    run.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(build),
        "CRYPTOMON_DATABASE__URL": f"sqlite+aiosqlite:///{run / 'cm.db'}",
    }
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from cryptomon.cli import main; "
            "import cryptomon; assert cryptomon.__file__.startswith(sys.argv[1]); "
            "sys.exit(main(['db', 'upgrade']))",
            str(build),
        ],
        cwd=run,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert f"now at {migrate.head()}" in out.stdout
    assert not list(run.glob("alembic.ini"))
