"""``crypto-monitor run`` (also what ``crypto-monitor`` without a subcommand does): the daemon.

``--role collector|brain`` runs one part of the pipeline over NATS JetStream (DESIGN.md
section 8); it overrides ``bus.role`` from the config. ``all`` (the default) is one process.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cryptomon.commands.support import run_daemon, settings_from_args, setup_logging
from cryptomon.config import ROLES, Settings


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    run = subparsers.add_parser("run", parents=[parent], help="run the daemon (the default)")
    run.add_argument(
        "--role",
        choices=ROLES,
        default=None,
        help="all (one process, the default), collector (feeds -> NATS) or brain "
        "(NATS -> detection, trading, store, API); overrides bus.role",
    )
    run.set_defaults(handler=cmd_run)


def with_role(settings: Settings, role: str | None) -> Settings:
    """``settings`` with ``bus.role`` replaced by ``role`` (when given)."""
    if not role:
        return settings
    return settings.model_copy(update={"bus": settings.bus.model_copy(update={"role": role})})


def cmd_run(args: argparse.Namespace) -> int:
    """Build the daemon from the config and run it until SIGTERM/SIGINT."""
    role = getattr(args, "role", None)
    settings = with_role(settings_from_args(args), role)
    setup_logging(settings)
    from cryptomon.app import build_app
    from cryptomon.reload import Reloader

    async def main() -> int:
        app = build_app(settings)
        # SIGHUP (systemctl reload): the same file, loaded and validated as at start
        app.reloader = Reloader(
            load=lambda: with_role(settings_from_args(args), role),
            settings=settings,
            services=app.services,
        )
        code = await app.run()
        if app.start_failure is not None:  # the logs said it; a terminal gets one plain line
            first = app.start_failure.splitlines()[0]
            sys.stderr.write(f"crypto-monitor: the daemon could not start: {first}\n")
        return code

    return run_daemon(main())
