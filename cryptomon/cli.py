"""``crypto-monitor``: the entry point and its subcommands.

``crypto-monitor --config FILE`` (or ``crypto-monitor run --config FILE``) runs the daemon.
Every subcommand takes ``--config FILE`` after its own name; without it, built-in defaults
apply. Subsystems add their own subcommands: a package ``cryptomon.<pkg>`` with a module
``commands`` exposing ``register(subparsers, parent)`` is picked up here.

Exit codes: 0 success, 1 runtime failure, 2 bad configuration or arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import yaml

from cryptomon import __version__
from cryptomon import commands as commands_pkg
from cryptomon.config import Settings, load_settings
from cryptomon.errors import ConfigError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

# Packages that may contribute subcommands through ``cryptomon.<pkg>.commands``.
_COMMAND_PACKAGES = ("store", "feeds", "sim", "detect", "notify", "trading", "api")


def common_parent() -> argparse.ArgumentParser:
    """Options every subcommand accepts after its own name."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="YAML config file (default: built-in defaults)",
    )
    parent.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        type=str.upper,
        default=argparse.SUPPRESS,
        help="override logging.level",
    )
    parent.add_argument(
        "--log-format",
        choices=["console", "json", "auto"],
        default=argparse.SUPPRESS,
        help="override logging.format",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    parent = common_parent()
    parser = argparse.ArgumentParser(
        prog="crypto-monitor",
        description="Real-time crypto market monitor and risk-managed auto-trader.",
        parents=[parent],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", parents=[parent], help="run the daemon (the default)")
    run.set_defaults(handler=cmd_run)
    check = sub.add_parser(
        "check-config",
        parents=[parent],
        help="validate the config and print it with secrets redacted",
    )
    check.set_defaults(handler=cmd_check_config)
    for pkg in _COMMAND_PACKAGES:
        name = f"cryptomon.{pkg}.commands"
        if importlib.util.find_spec(f"cryptomon.{pkg}") and importlib.util.find_spec(name):
            importlib.import_module(name).register(sub, parent)
    for module in sorted(m.name for m in pkgutil.iter_modules(commands_pkg.__path__)):
        importlib.import_module(f"cryptomon.commands.{module}").register(sub, parent)
    parser.set_defaults(handler=cmd_run)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Load the config named by ``--config`` (or defaults) and apply logging overrides."""
    return with_logging(
        load_settings(getattr(args, "config", None)),
        level=getattr(args, "log_level", None),
        fmt=getattr(args, "log_format", None),
    )


def with_logging(
    settings: Settings, *, level: str | None = None, fmt: str | None = None
) -> Settings:
    """``settings`` with the logging level and/or format replaced (sections are frozen)."""
    update = {k: v for k, v in (("level", level), ("format", fmt)) if v}
    if not update:
        return settings
    return settings.model_copy(update={"logging": settings.logging.model_copy(update=update)})


def setup_logging(settings: Settings) -> None:
    from cryptomon import log

    log.configure(
        level=settings.logging.level,
        fmt=settings.logging.format,
        secrets=settings.secret_values(),
    )


def run_async(main: Coroutine[Any, Any, int]) -> int:
    """Run a coroutine on uvloop when available, else the default loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return asyncio.run(main)
    return uvloop.run(main)


def cmd_run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    setup_logging(settings)
    from cryptomon.app import build_app

    async def main() -> int:
        app = build_app(settings)
        return await app.run()

    return run_async(main())


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    sys.stdout.write(yaml.safe_dump(settings.redacted(), sort_keys=False))
    sys.stderr.write("config OK\n")
    return EXIT_OK


def print_config_error(exc: ConfigError, stream: Any = None) -> None:
    out = stream or sys.stderr
    out.write(f"crypto-monitor: invalid configuration ({len(exc.problems)} problem(s)):\n")
    for problem in exc.problems:
        out.write(f"  {problem}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print_config_error(exc)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
