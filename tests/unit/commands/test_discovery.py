"""The CLI's discovery of cryptomon.commands: one module per subcommand, helpers skipped."""

from __future__ import annotations

import argparse
import pkgutil

from cryptomon import commands
from cryptomon.cli import build_parser


def subcommands(parser: argparse.ArgumentParser) -> list[str]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(action.choices)


def test_every_subcommand_is_registered_with_run_first() -> None:
    """run comes first; every subcommand of today is there, each registered once."""
    names = subcommands(build_parser())
    assert names[0] == "run"
    assert sorted(names) == sorted(
        [
            "run",
            "api",
            "backtest",
            "check-config",
            "db",
            "demo",
            "download",
            "evaluate",
            "healthcheck",
            "notify-test",
            "record",
            "replay",
            "scorecard",
            "trades",
        ]
    )


def test_modules_without_register_are_skipped() -> None:
    """support holds the shared helpers: it is a module of the package, not a subcommand."""
    modules = {m.name for m in pkgutil.iter_modules(commands.__path__)}
    assert "support" in modules
    assert "support" not in subcommands(build_parser())


def test_no_subcommand_runs_the_daemon() -> None:
    """Without a subcommand the handler is the daemon's run."""
    from cryptomon.commands.run import cmd_run

    assert build_parser().parse_args([]).handler is cmd_run
