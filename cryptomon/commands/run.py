"""``crypto-monitor run`` (also what ``crypto-monitor`` without a subcommand does): the daemon."""

from __future__ import annotations

import argparse
from typing import Any

from cryptomon.commands.support import run_async, settings_from_args, setup_logging


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    run = subparsers.add_parser("run", parents=[parent], help="run the daemon (the default)")
    run.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    """Build the daemon from the config and run it until SIGTERM/SIGINT."""
    settings = settings_from_args(args)
    setup_logging(settings)
    from cryptomon.app import build_app
    from cryptomon.reload import Reloader

    async def main() -> int:
        app = build_app(settings)
        # SIGHUP (systemctl reload): the same file, loaded and validated as at start
        app.reloader = Reloader(
            load=lambda: settings_from_args(args), settings=settings, services=app.services
        )
        return await app.run()

    return run_async(main())
