"""``crypto-monitor scorecard``: detection quality on labelled simulator scenarios.

Runs :func:`cryptomon.evaluate.scorecard.run_scorecard` with the ``anomaly_detection`` section of
``--config`` (or the built-in defaults) and prints a table, or with ``--json`` one JSON
document. Exit code 0 when the targets are met (recall >= 0.95 per kind, <= 1 false alert per
symbol-hour on the calm baseline), 1 when not, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from cryptomon.commands.support import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, run_async


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    sc = subparsers.add_parser(
        "scorecard",
        parents=[parent],
        help="run labelled simulator scenarios through the feed and detectors; report recall",
    )
    sc.add_argument("--seed", type=int, default=42, help="market model seed (default 42)")
    sc.add_argument("--json", action="store_true", help="print the report as JSON")
    sc.add_argument(
        "--symbols",
        default="BTC-USDT,ETH-USDT,SOL-USDT",
        metavar="LIST",
        help="comma-separated simulated symbols (default BTC-USDT,ETH-USDT,SOL-USDT)",
    )
    sc.add_argument(
        "--calm-minutes",
        type=float,
        default=60.0,
        metavar="M",
        help="length of the calm baseline in sim minutes (default 60)",
    )
    sc.add_argument(
        "--rounds", type=int, default=4, metavar="N", help="rounds of injections (default 4)"
    )
    sc.set_defaults(handler=cmd_scorecard)


MAX_ROUNDS = 1000
MAX_CALM_MINUTES = 10_080


def _bad(msg: str) -> int:
    sys.stderr.write(f"crypto-monitor scorecard: {msg}\n")
    return EXIT_USAGE


def cmd_scorecard(args: argparse.Namespace) -> int:
    from cryptomon.commands.support import settings_from_args, setup_logging, with_logging
    from cryptomon.config import normalize_symbol

    # bounded above too: --calm-minutes inf (or 1e300, or 10**11 rounds) never finished
    if not 1 <= args.rounds <= MAX_ROUNDS:
        return _bad(f"--rounds: expected an integer from 1 to {MAX_ROUNDS}, got {args.rounds}")
    if not 0 <= args.calm_minutes <= MAX_CALM_MINUTES:
        return _bad(
            f"--calm-minutes: expected a number of minutes from 0 to {MAX_CALM_MINUTES} "
            f"(a week), got {args.calm_minutes}"
        )
    try:
        symbols = tuple(normalize_symbol(s) for s in args.symbols.split(",") if s.strip())
    except ValueError as exc:
        return _bad(f"--symbols: {exc}")
    if not symbols or len(set(symbols)) != len(symbols):
        return _bad(
            f"--symbols: expected distinct symbols like BTC-USDT,ETH-USDT, got {args.symbols!r}"
        )
    settings = settings_from_args(args)
    if not getattr(args, "log_level", None):
        settings = with_logging(settings, level="WARNING")
    setup_logging(settings)

    from cryptomon.commands.progress import ProgressBar
    from cryptomon.evaluate.scorecard import format_report, run_scorecard

    bar = ProgressBar("scorecard", unit="sim s")  # on a terminal only

    async def main() -> dict[str, Any]:
        try:
            return await run_scorecard(
                settings.anomaly_detection,
                seed=args.seed,
                symbols=symbols,
                calm_s=args.calm_minutes * 60.0,
                rounds=args.rounds,
                progress=bar.update if bar.enabled else None,
            )
        finally:
            bar.close()

    report: dict[str, Any] = {}

    async def runner() -> int:
        report.update(await main())
        return EXIT_OK

    wall0 = time.perf_counter()
    run_async(runner())
    if args.json:  # the report only: the same seed gives the same bytes
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        sys.stdout.write(format_report(report) + "\n")
        sys.stdout.write(f"wall time: {time.perf_counter() - wall0:.1f}s\n")
    return EXIT_OK if report["targets"]["met"] else EXIT_FAILURE
