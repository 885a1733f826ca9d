"""``crypto-monitor evaluate``: detection quality on real inputs with labelled injections.

``evaluate RECORDINGS... [--trades FILE --exchange EX --symbol SYM] [--config F] [--seed N]
[--repeats N] [--quality] [--json]``: the recordings (cryptofeed raw files of the shared exchanges,
grouped by their ``EXCHANGE.`` prefix) and/or a trade series file, copied, injected,
replayed through the detectors (:mod:`cryptomon.evaluate.evaluate`). Prints a table, or
with ``--json`` one JSON document (the same bytes for the same inputs, config and seed). A
progress bar goes to stderr when it is a terminal. Exit 0 after a run, 2 for bad arguments
or inputs. ``--quality``: the market-data quality guard instead of the detectors (bad prints,
duplicates, silence written into the recordings; :mod:`cryptomon.evaluate.quality`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cryptomon.commands.support import EXIT_OK, EXIT_USAGE


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    ev = subparsers.add_parser(
        "evaluate",
        parents=[parent],
        help="inject labelled events into recordings or a trade series; report recall",
    )
    ev.add_argument(
        "recordings",
        nargs="*",
        metavar="RECORDING",
        help="cryptofeed raw files (EXCHANGE.0, EXCHANGE.http.*, EXCHANGE.ws.*) or folders",
    )
    ev.add_argument("--trades", metavar="FILE", help="a freqtrade trades file (.json or .json.gz)")
    ev.add_argument("--exchange", metavar="EX", help="exchange of the --trades series")
    ev.add_argument("--symbol", metavar="SYM", help="market of the --trades series, e.g. XRP/ETH")
    ev.add_argument("--seed", type=int, default=1, help="injection seed (default 1)")
    ev.add_argument(
        "--repeats",
        type=int,
        default=10,
        metavar="N",
        help="copies of a recording per injection (default 10)",
    )
    ev.add_argument(
        "--quality",
        action="store_true",
        help="evaluate the market-data quality guard on the recordings instead of the "
        "detectors: lone bad prints, a genuine 15%% move, resent trades and one market's "
        "silence injected; quarantine recall, duplicates dropped, stale delays vs the learned "
        "bound, false positives on the untouched recordings (market_data settings of --config)",
    )
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ev.set_defaults(handler=cmd_evaluate)


def _bad(msg: str) -> int:
    sys.stderr.write(f"crypto-monitor evaluate: {msg}\n")
    return EXIT_USAGE


def _progress(label: str) -> Any:
    if not sys.stderr.isatty():
        return None

    def bar(done: int, total: int) -> None:
        width = 30
        frac = done / total if total else 1.0
        filled = int(frac * width)
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return bar


def _inputs_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the inputs and --repeats (None: nothing)."""
    if args.repeats < 1:
        return f"--repeats: expected an integer >= 1, got {args.repeats}"
    if not args.recordings and not args.trades:
        return "expected recordings (EXCHANGE.* files) and/or --trades FILE"
    if args.quality and (args.trades or not args.recordings):
        return "--quality evaluates recordings (EXCHANGE.* files), not a --trades series"
    return None


def _series_args(args: argparse.Namespace) -> tuple[str, str] | str:
    """(exchange, symbol) of --trades, or the problem."""
    from cryptomon.config import normalize_symbol

    if not args.exchange or not args.symbol:
        return "--trades needs --exchange EX and --symbol SYM (the market the series is of)"
    try:
        return args.exchange.strip().lower(), normalize_symbol(args.symbol)
    except ValueError as exc:
        return f"--symbol: {exc}"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from cryptomon.commands.support import settings_from_args, setup_logging, with_logging
    from cryptomon.errors import ConfigError

    problem = _inputs_problem(args)
    if problem is not None:
        return _bad(problem)
    if args.trades is None and (args.exchange or args.symbol):
        return _bad("--exchange and --symbol name the market of a --trades series")
    series = _series_args(args) if args.trades else None
    if isinstance(series, str):
        return _bad(series)
    settings = settings_from_args(args)
    if not getattr(args, "log_level", None):
        settings = with_logging(settings, level="WARNING")
    setup_logging(settings)
    cfg = settings.anomaly_detection
    from cryptomon.evaluate.evaluate import evaluate_series
    from cryptomon.evaluate.recordings import evaluate_recordings, group_recordings
    from cryptomon.evaluate.report import format_report
    from cryptomon.evaluate.series import load_trades
    from cryptomon.market.datafiles import DataError

    report: dict[str, Any] = {"seed": args.seed, "config": _config_summary(cfg)}
    try:
        if args.quality:
            return _quality(args, settings)
        if args.recordings:
            groups = group_recordings([Path(p) for p in args.recordings])
            report["recordings"] = evaluate_recordings(
                groups,
                cfg,
                seed=args.seed,
                repeats=args.repeats,
                progress=_progress("recordings"),
            )
        if series is not None:
            ticks = load_trades(args.trades)
            report["series"] = evaluate_series(
                ticks,
                cfg,
                exchange=series[0],
                symbol=series[1],
                seed=args.seed,
                progress=_progress("series"),
            )
    except ConfigError as exc:
        return _bad(str(exc))
    except DataError as exc:
        return _bad(f"--trades: {exc}")
    if args.json:
        sys.stdout.write(json.dumps(report, sort_keys=True) + "\n")
    else:
        sys.stdout.write(format_report(report) + "\n")
    return EXIT_OK


def _quality(args: argparse.Namespace, settings: Any) -> int:
    from cryptomon.evaluate.quality import evaluate_quality, format_quality
    from cryptomon.evaluate.recordings import group_recordings

    groups = group_recordings([Path(p) for p in args.recordings])
    report = {"seed": args.seed, "repeats": args.repeats}
    report["quality"] = evaluate_quality(
        groups,
        settings.market_data,
        settings.anomaly_detection,
        seed=args.seed,
        repeats=args.repeats,
        progress=_progress("quality"),
    )
    text = json.dumps(report, sort_keys=True) if args.json else format_quality(report)
    sys.stdout.write(text + "\n")
    return EXIT_OK


def _config_summary(cfg: Any) -> dict[str, Any]:
    """The thresholds that shape the results (the report says what it measured)."""
    keys = (
        "bucket_seconds",
        "lookback_window_minutes",
        "min_samples",
        "cooldown_s",
        "volume_threshold_multiplier",
        "volume_min_ratio",
        "price_change_percentage",
        "volatility_z_threshold",
        "ma_deviation_percentage",
        "ma_deviation_z_threshold",
        "whale_median_multiple",
        "whale_quantile",
        "whale_quantile_multiple",
    )
    return {k: getattr(cfg, k) for k in keys}
