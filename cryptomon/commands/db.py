"""``crypto-monitor db upgrade [REV] | downgrade REV | current | history``.

The alembic configuration is built in code (``cryptomon.store.migrate``), so these commands
work from a wheel install without ``alembic.ini``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cryptomon.commands.support import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    configured,
    open_database,
    run_async,
)


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    db = subparsers.add_parser(
        "db",
        parents=[parent],
        help="database schema migrations (upgrade, downgrade, current, history)",
    )
    sub = db.add_subparsers(dest="db_command", metavar="ACTION")
    up = sub.add_parser("upgrade", parents=[parent], help="migrate the schema up (default: head)")
    up.add_argument("revision", nargs="?", default="head", help="target revision (default head)")
    up.set_defaults(handler=cmd_db)
    down = sub.add_parser(
        "downgrade", parents=[parent], help="migrate the schema down ('base' removes it)"
    )
    down.add_argument("revision", help="target revision, e.g. base or -1")
    down.set_defaults(handler=cmd_db)
    cur = sub.add_parser("current", parents=[parent], help="print the database's revision")
    cur.set_defaults(handler=cmd_db)
    hist = sub.add_parser("history", parents=[parent], help="list the migrations")
    hist.set_defaults(handler=cmd_db)
    db.set_defaults(handler=_usage(db))


def _usage(parser: argparse.ArgumentParser) -> Any:
    def handler(args: argparse.Namespace) -> int:
        parser.print_usage(sys.stderr)
        sys.stderr.write(
            "crypto-monitor db: choose an action: upgrade, downgrade, current, history\n"
        )
        return EXIT_USAGE

    return handler


def cmd_db(args: argparse.Namespace) -> int:
    from cryptomon.store import migrate

    action: str = args.db_command
    if action == "history":
        for line in migrate.history():
            sys.stdout.write(line + "\n")
        return EXIT_OK
    settings = configured(args)
    revision: str | None = getattr(args, "revision", None)
    if revision is not None and not _known_revision(revision):
        sys.stderr.write(
            f"crypto-monitor db {action}: unknown revision {revision!r}; expected head, base, "
            f"a relative step like -1/+1, or one of: {', '.join(_revisions())}\n"
        )
        return EXIT_USAGE
    return run_async(_run(action, revision, settings.database))


def _revisions() -> list[str]:
    from alembic.script import ScriptDirectory

    from cryptomon.store.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    return [r.revision for r in script.walk_revisions()]


def _known_revision(rev: str) -> bool:
    if rev in ("head", "heads", "base"):
        return True
    if rev[:1] in "+-" and rev[1:].isdigit():
        return True
    return any(r.startswith(rev) for r in _revisions()) if len(rev) >= 2 else False


async def _run(action: str, revision: str | None, config: Any) -> int:
    from cryptomon.store import migrate

    if action == "current":
        missing = _missing_sqlite_file(config.url)
        if missing is not None:  # a mistyped path is said so, never created
            sys.stdout.write("base (no schema)\n")
            sys.stderr.write(
                f"crypto-monitor db current: no database file at {missing} (`db upgrade` or "
                "the daemon's start creates it)\n"
            )
            return EXIT_OK
    db = await open_database(config.model_copy(update={"auto_migrate": False}), f"db {action}")
    if db is None:
        return EXIT_FAILURE
    try:
        if action == "upgrade":
            await migrate.upgrade(db, revision or "head")
        elif action == "downgrade":
            await migrate.downgrade(db, revision or "")
        heads = await migrate.current(db)
        known = set(_revisions())
        shown = (
            ", ".join(
                h if h in known else f"{h} (unknown to this cryptomon: a newer one migrated it)"
                for h in heads
            )
            if heads
            else "base (no schema)"
        )
        if action == "current":
            sys.stdout.write(f"{shown}\n")
        else:
            sys.stdout.write(f"{db.safe_url}: now at {shown}\n")
        return EXIT_OK
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        sys.stderr.write(f"crypto-monitor db {action} failed on {db.safe_url}: {first}\n")
        return EXIT_FAILURE
    finally:
        await db.stop()


def _missing_sqlite_file(url: str) -> Path | None:
    """The path of a SQLite database URL whose file does not exist (None otherwise)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if database.startswith("file:"):
        return None
    path = Path(database).expanduser()
    return None if path.exists() else path
