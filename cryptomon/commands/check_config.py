"""``crypto-monitor check-config``: validate the config and print it with secrets redacted."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from cryptomon.commands.support import EXIT_OK, settings_from_args


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    check = subparsers.add_parser(
        "check-config",
        parents=[parent],
        help="validate the config and print it with secrets redacted",
    )
    check.set_defaults(handler=cmd_check_config)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Print the effective config as YAML (secrets as ***) and ``config OK`` on stderr."""
    settings = settings_from_args(args)
    sys.stdout.write(yaml.safe_dump(settings.redacted(), sort_keys=False))
    sys.stderr.write("config OK\n")
    return EXIT_OK
