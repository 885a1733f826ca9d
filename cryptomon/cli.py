"""``crypto-monitor``: the entry point and its argparse tree.

``crypto-monitor --config FILE`` (or ``crypto-monitor run --config FILE``) runs the daemon.
Every subcommand takes ``--config FILE`` after its own name; without it, built-in defaults
apply. The subcommands live in ``cryptomon.commands``, one module each; a module there with a
``register(subparsers, parent)`` function is picked up here (``support`` has none: it holds
what the subcommands share).

Exit codes: 0 success, 1 runtime failure, 2 bad configuration or arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import os
import pkgutil
import re
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import NoReturn

from cryptomon import __version__

# Nothing heavier is imported at the top: the console script imports this module before
# `main` takes SIGINT and SIGTERM over, and a stop signal in that window printed a traceback
# (Ctrl-C) or ended the process by the signal (SIGTERM). The commands, the config and the
# error types are imported by `main`, once the signals are taken.


class Parser(argparse.ArgumentParser):
    """argparse with the project's error style: a bad argument is one line on stderr (what
    argparse found wrong and where to look), exit 2, not the usage block first. Subcommand
    parsers are of this class too (``add_subparsers`` makes its parsers of the caller's)."""

    def error(self, message: str) -> NoReturn:
        found = _UNKNOWN_COMMAND.match(message)
        if found is not None:  # argparse's own line lists the choices but not why it got one
            message = _unknown_command(found.group(1), found.group(2))
        from cryptomon.commands.support import EXIT_USAGE

        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


_UNKNOWN_COMMAND = re.compile(r"argument COMMAND: invalid choice: '(.*)' \(choose from (.*)\)$")


def _unknown_command(word: str, choices: str) -> str:
    """``crypto-monitor --duration 1`` made argparse read ``1`` as the command: say which
    commands there are, the closest one, and that a command's options follow its name."""
    names = [c.strip().strip("'") for c in choices.split(",")]
    close = difflib.get_close_matches(word, names, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return (
        f"unknown command '{word}' (commands: {', '.join(names)}){hint}; a command's options "
        "go after its name, e.g. crypto-monitor demo --duration 30"
    )


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


def _command_modules() -> list[str]:
    """Module names that may register subcommands: ``run`` first, the rest by name."""
    from cryptomon import commands as commands_pkg

    names = sorted(m.name for m in pkgutil.iter_modules(commands_pkg.__path__))
    return [f"cryptomon.commands.{n}" for n in sorted(names, key=lambda n: (n != "run", n))]


def build_parser() -> argparse.ArgumentParser:
    """The whole tree: common options, ``--version`` and every discovered subcommand."""
    from cryptomon.commands.run import cmd_run

    parent = common_parent()
    parser = Parser(
        prog="crypto-monitor",
        description="Real-time crypto market monitor and risk-managed auto-trader.",
        parents=[parent],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _command_modules():
        register = getattr(importlib.import_module(name), "register", None)
        if register is not None:
            register(sub, parent)
    parser.set_defaults(handler=cmd_run)
    return parser


DAEMON_COMMANDS = frozenset({"run", "demo", "replay"})
"""Commands that run the daemon: a stop signal before it runs is a clean stop (exit 0), as
one during its components' start is (``daemon.start_interrupted``)."""


class _StopSignal(KeyboardInterrupt):
    """SIGTERM received before the command took the signals over (the daemon's event loop
    does once it runs): raised where the process is, like Ctrl-C's KeyboardInterrupt."""


def _take_stop_signals() -> None:
    """Until the command installs its own handlers, SIGTERM interrupts like Ctrl-C does
    (its default ended the process by the signal, exit -15, no line): :func:`main` reports
    either as one line. Only for the process's own command line, never a host program's."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise _StopSignal

    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:  # an ignored SIGTERM stays so
        signal.signal(signal.SIGTERM, on_sigterm)


def _stopped(command: str | None, exc: KeyboardInterrupt) -> int:
    """The line and exit code for a stop signal the command did not handle itself."""
    sig = signal.SIGTERM if isinstance(exc, _StopSignal) else signal.SIGINT
    name = command or "run"
    if name in DAEMON_COMMANDS:
        sys.stderr.write(
            f"crypto-monitor {name}: stopped by {sig.name} while starting (nothing was running)\n"
        )
        return 0
    sys.stderr.write(f"crypto-monitor {name}: stopped by {sig.name}\n")
    return 128 + int(sig)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the chosen subcommand and return its exit code."""
    if argv is None:
        _take_stop_signals()
    parsed: list[argparse.Namespace] = []
    try:
        return _main(argv, parsed)
    except KeyboardInterrupt as exc:  # raised before the command took the signal itself
        with contextlib.suppress(KeyboardInterrupt):  # a second one while saying so
            return _stopped(parsed[0].command if parsed else _command_of(argv), exc)
        return 128 + signal.SIGINT


def _command_of(argv: Sequence[str] | None) -> str | None:
    """The subcommand named on a command line not parsed yet (the first word that is one)."""
    from cryptomon import commands as commands_pkg

    names = {m.name.replace("_", "-") for m in pkgutil.iter_modules(commands_pkg.__path__)}
    words = sys.argv[1:] if argv is None else argv
    return next((w for w in words if w in names), None)


def _main(argv: Sequence[str] | None, parsed: list[argparse.Namespace]) -> int:
    from cryptomon.commands.support import EXIT_FAILURE, EXIT_USAGE, print_config_error
    from cryptomon.errors import ConfigError, CryptomonError

    parser = build_parser()
    args = parser.parse_args(argv)
    parsed.append(args)
    # the process's own command line (the console script, `python -m cryptomon`), not a call
    # from a host program or a test: the interpreter exits when the command returns
    args.process_exits_after = argv is None
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        code = handler(args)
        sys.stdout.flush()  # a reader that has gone is found here, not by the interpreter's exit
        return code
    except BrokenPipeError:
        # the reader of stdout has gone (`crypto-monitor db history | head -1`): nothing more
        # can be said there; what is still buffered goes nowhere instead of failing the exit
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except ConfigError as exc:
        print_config_error(exc)
        return EXIT_USAGE
    except CryptomonError as exc:
        # raised on purpose with a message for the user (a database that does not answer):
        # one line, never a traceback
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        sys.stderr.write(f"crypto-monitor {args.command or 'run'}: {first}\n")
        return EXIT_FAILURE
