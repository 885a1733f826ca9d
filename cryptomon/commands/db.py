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
    db.set_defaults(handler=_usage())


def _usage() -> Any:
    def handler(args: argparse.Namespace) -> int:
        sys.stderr.write(
            "crypto-monitor db: choose an action: upgrade, downgrade, current, history "
            "(see crypto-monitor db --help)\n"
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
    settings = configured(args, offline=True)  # the schema only: no venue
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
    # at whatever revision it is: these commands read and move it
    db = await open_database(
        config.model_copy(update={"auto_migrate": False}), f"db {action}", check_schema=False
    )
    if db is None:
        return EXIT_FAILURE
    try:
        if action in ("upgrade", "downgrade") and revision is not None:
            wrong = _wrong_direction(action, revision, await migrate.current(db))
            if wrong is not None:
                sys.stderr.write(f"crypto-monitor db {action}: {wrong}\n")
                return EXIT_USAGE
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


def _wrong_direction(action: str, revision: str, heads: tuple[str, ...]) -> str | None:
    """Why ``revision`` cannot be reached by ``action`` from where the database is (a step
    the other way, or past head/base), or None. Alembic's own words for these ("Relative
    revision -1 didn't produce 1 migrations", or nothing at all for an upgrade to an older
    revision) named neither the database's revision nor the command to use."""
    order = list(reversed(_revisions()))  # oldest first; the packaged history is linear
    if len(heads) > 1 or any(h not in order for h in heads):
        return None  # several heads or a newer cryptomon's revision: refused further on
    at = order.index(heads[0]) + 1 if heads else 0
    here = heads[0] if heads else "base (no schema)"
    if revision in ("head", "heads"):
        target = len(order)
    elif revision == "base":
        target = 0
    elif revision[:1] in "+-" and revision[1:].isdigit():
        target = at + int(revision)
    else:
        target = next(i + 1 for i, r in enumerate(order) if r.startswith(revision))
    if target > len(order):
        return (
            f"{revision} goes past head from {here}; expected at most +{len(order) - at} (or head)"
        )
    if target < 0:
        return f"{revision} goes past base from {here}; expected at most -{at} (or base)"
    named = order[target - 1] if target else "base"
    if action == "upgrade" and target < at:
        return (
            f"the database is at {here}, above {named}; expected a revision at or above it "
            f"(to go down: crypto-monitor db downgrade {revision})"
        )
    if action == "downgrade" and target > at:
        return (
            f"the database is at {here}, below {named}; expected a revision at or below it "
            f"(to go up: crypto-monitor db upgrade {revision})"
        )
    return None


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
