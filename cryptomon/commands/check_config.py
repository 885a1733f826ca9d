"""``crypto-monitor check-config``: validate the config and print it with secrets redacted.

The validation is the one ``run`` makes: the daemon is built (every component from its
section, nothing started: no network, no database), so an unknown exchange name or an alert
URL apprise refuses fails here exactly as it fails there. What only the network can tell
(the symbols an exchange lists, the live venue's markets and keys, alert delivery, the
database: not opened) is not checked here: each is named in a ``note:`` line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from cryptomon.commands.support import EXIT_OK, run_async, settings_from_args
from cryptomon.config import Settings


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    check = subparsers.add_parser(
        "check-config",
        parents=[parent],
        help="validate the config as `run` does (offline) and print it with secrets redacted",
    )
    check.set_defaults(handler=cmd_check_config)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Build the daemon without starting it (ConfigError: exit 2, one line per problem), then
    print the effective config as YAML (secrets as ***), the offline notes and ``config OK``."""
    settings = settings_from_args(args)
    run_async(_build(settings))
    sys.stdout.write(yaml.safe_dump(settings.redacted(), sort_keys=False))
    for note in offline_notes(settings):
        sys.stderr.write(f"note: {note}\n")
    from cryptomon.commands.run import idle_warnings

    for _event, hint in idle_warnings(settings):  # valid, but probably not what was meant
        sys.stderr.write(f"warning: {hint}\n")
    sys.stderr.write("config OK\n")
    return EXIT_OK


async def _build(settings: Settings) -> int:
    from cryptomon.app import build_app

    build_app(settings)  # raises ConfigError like `run` does; nothing is started
    api = settings.api
    if api.enabled and api.tls_cert_file is not None and api.tls_key_file is not None:
        from cryptomon.api.tls import server_context

        # the API loads them as it starts: a missing file or a key of another certificate
        # stops `run` with exit 2, so it fails here too (reading local files, no network)
        server_context(api.tls_cert_file, api.tls_key_file)
    return EXIT_OK


def offline_notes(settings: Settings) -> list[str]:
    """The checks that need the network, named so nobody takes them as done."""
    notes = [
        f"exchanges[{ex.name}].symbols not checked against {ex.name}'s listing "
        "(needs the network; `run` checks them at start)"
        for ex in settings.exchanges
        if ex.enabled and ex.source == "live" and ex.name != "simulator"
    ]
    if settings.trading.mode == "live":
        notes.append(
            "trading.live: the venue's markets, clock and API keys not checked "
            "(needs the network; `run` checks them at start)"
        )
    if settings.bus.role != "collector":  # a collector has no database
        at_start = (
            "migrates it at start"
            if settings.database.auto_migrate
            else "refuses a schema that is not this version's head"
        )
        notes.append(
            "database.url: not opened (`crypto-monitor db current` checks that it answers and "
            f"names its schema revision; `run` {at_start})"
        )
    if settings.alerts.channels:
        notes.append(
            "alerts.channels: delivery not tested (needs the network; "
            "`crypto-monitor notify-test` sends a test message)"
        )
    return notes
