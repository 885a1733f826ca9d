"""``crypto-monitor backtest``: history through the live detectors, signals, risk checks, order
engine and paper broker on a ManualClock (:mod:`cryptomon.backtest`).

``backtest [--config F] [FILE...] [--source db] [--exchange EX] [--symbols A,B]
[--timeframe 1m] [--start T] [--end T] [--trades] [--json] [--report out.html] [--no-store]
[--set KEY=VALUE ...] [--sweep KEY=V1,V2 ...] [--rank METRIC] [--workers N]``

Files are candle or trade files (JSON, ``.gz``, CSV; freqtrade's layouts); without files the
candles come from the database (``--source db``, filled by ``crypto-monitor download``). The
run is stored in ``backtest_runs`` unless ``--no-store``; ``--json`` prints the whole document
(summary, breakdowns, trades, digest, id) as one line. A sweep stores each variant as a run
(without a report), linked by the sweep's id, and its table names each variant's run and its
``--set`` options: the stored command (``params.command``) runs it again. Bad input: one line,
exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from cryptomon.commands.support import EXIT_OK, run_async, settings_from_args, usage_error


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    bt = subparsers.add_parser(
        "backtest",
        parents=[parent],
        help="run stored or recorded history through the live trading pipeline",
    )
    bt.add_argument(
        "files",
        nargs="*",
        metavar="FILE",
        help="candle or trade files (JSON, .json.gz, CSV) or raw recordings of "
        "`crypto-monitor record` (EXCHANGE.0, EXCHANGE.ws.N.M, ...); none: --source db",
    )
    bt.add_argument(
        "--source",
        default=None,
        metavar="db",
        help="db: the candles stored in the database of --config (the default without FILEs)",
    )
    bt.add_argument("--exchange", default=None, metavar="EX", help="market data exchange")
    bt.add_argument("--symbols", "--symbol", default=None, metavar="LIST", help="A/B,C/D")
    bt.add_argument(
        "--timeframe",
        default=None,
        metavar="TF",
        help="candle interval (1m; candle files: their own, a different one is refused)",
    )
    bt.add_argument("--start", default=None, metavar="T", help="first candle (UTC date/time)")
    bt.add_argument("--end", default=None, metavar="T", help="end of the range (exclusive)")
    bt.add_argument("--trades", action="store_true", help="public trades instead of candles")
    bt.add_argument(
        "--json",
        action="store_true",
        help="print the result as one JSON line (summary.not_acted_by_reason: the signals "
        "that made no order, by reason: auto_off, weak, not_traded, too_old, order_working, "
        "side_held, no_short, no_price, unknown_spec, failed; see "
        "cryptomon.trading.entries.NOT_ACTED)",
    )
    bt.add_argument("--report", default=None, metavar="FILE", help="write the HTML report")
    bt.add_argument("--no-store", action="store_true", help="do not keep the run")
    bt.add_argument(
        "--set",
        action="append",
        default=[],
        dest="sets",
        metavar="KEY=VALUE",
        help="override one config key for this run, e.g. trading.stop_loss_percentage=2.5; "
        "repeat for more keys (the command a stored sweep variant names runs it with them)",
    )
    bt.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="one axis of a parameter grid: a dotted config key and its values, e.g. "
        "trading.stop_loss_percentage=2,3,4; repeat for more axes (every combination runs)",
    )
    bt.add_argument(
        "--rank",
        default="pnl",
        metavar="METRIC",
        help="sweep ranking, highest first: pnl (default), return_pct, sharpe, sortino, "
        "calmar, profit_factor, win_rate, expectancy, or max_drawdown_pct (lowest first)",
    )
    bt.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="sweep worker processes (default: one per core)",
    )
    bt.set_defaults(handler=cmd_backtest)


def _request(args: argparse.Namespace) -> Any:
    from cryptomon.backtest.data import timeframe_seconds
    from cryptomon.backtest.inputs import check_range, parse_time
    from cryptomon.backtest.session import BacktestRequest
    from cryptomon.config import normalize_symbol

    if args.source not in (None, "db"):
        raise _usage(f"--source: expected db (or recording files), got {args.source!r}")
    if args.source == "db" and args.files:
        raise _usage("--source db and files: give one or the other")
    timeframe = args.timeframe or "1m"
    timeframe_seconds(timeframe)
    start, end = parse_time(args.start, "--start"), parse_time(args.end, "--end")
    check_range(start, end, ("--start", "--end"))
    symbols: list[str] = []
    for raw in (args.symbols or "").split(","):
        if raw.strip():
            try:
                symbol = normalize_symbol(raw)
            except ValueError as exc:
                raise _usage(f"--symbols: {exc}") from None
            if symbol not in symbols:  # named twice (ALT/BTC,alt-btc): one market, run once
                symbols.append(symbol)
    exchange = args.exchange.strip().lower() if args.exchange else None
    return BacktestRequest(
        argv=_argv(args),
        files=tuple(args.files),
        exchange=exchange,
        symbols=tuple(symbols),
        timeframe=timeframe,
        timeframe_given=args.timeframe is not None,
        start=start,
        end=end,
        trades=args.trades,
    )


def _argv(args: argparse.Namespace) -> tuple[str, ...]:
    """The inputs of the run as given (files and --config made absolute), without what only
    prints or keeps it: the stored command runs it again from anywhere."""
    out = [str(Path(f).absolute()) for f in args.files]
    if getattr(args, "config", None):
        out += ["--config", str(Path(args.config).absolute())]
    for option, value in (
        ("--source", args.source),
        ("--exchange", args.exchange),
        ("--symbols", args.symbols),
        ("--timeframe", args.timeframe),
        ("--start", args.start),
        ("--end", args.end),
    ):
        if value is not None:
            out.append(f"{option}={value}")
    if args.trades:
        out.append("--trades")
    return tuple(out)


def _refuse_nested(sets: list[str], swept: list[str]) -> None:
    """A ``--set`` section beside a key inside it (``trading.indicators={}`` and
    ``trading.indicators.rsi_oversold=25``, set or swept): the later one would win, or the
    key be said not to exist."""
    for outer in sets:
        for inner, how in [*((k, "") for k in sets), *((k, " (swept by --sweep)") for k in swept)]:
            if inner.startswith(outer + "."):
                raise _usage(
                    f"--set {outer}: also sets {inner}{how}; give the section or keys inside it"
                )


def _relative_sqlite(url: str) -> bool:
    """A SQLite file named relative to the current folder (``sqlite+aiosqlite:///./x.db``)."""
    from sqlalchemy.engine import make_url

    database = make_url(url).database or ""
    if not url.startswith("sqlite") or database in ("", ":memory:"):
        return False
    return not database.startswith("file:") and not os.path.isabs(os.path.expanduser(database))


def _check_report_path(path: str) -> None:
    """Refuse a report path that cannot be written before the run, not after it."""
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise _usage(f"--report {path}: is a directory; expected a file name such as out.html")
    if not folder.is_dir():
        raise _usage(f"--report {path}: no directory {str(folder)!r} to write the report into")
    if not os.access(folder, os.W_OK):
        raise _usage(f"--report {path}: directory {str(folder)!r} is not writable")


def _usage(message: str) -> Exception:
    from cryptomon.market.datafiles import DataError

    return DataError(message)


def cmd_backtest(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from cryptomon.backtest.sweep import (
        RANK_METRICS,
        apply_overrides,
        grid,
        parse_sets,
        parse_sweep,
    )
    from cryptomon.commands.support import setup_logging, with_logging
    from cryptomon.market.datafiles import DataError

    try:
        sets = parse_sets(args.sets)
        axes = parse_sweep(args.sweep) if args.sweep else []
        for key, _ in axes:
            if key in sets:
                raise DataError(f"--set {key}: also swept by --sweep; give it in one of them")
        _refuse_nested(list(sets), [key for key, _ in axes])
        req = replace(_request(args), overrides=sets)
        variants = [{**sets, **v} for v in grid(axes)] if axes else []
        if args.rank not in RANK_METRICS:
            raise DataError(f"--rank: expected one of {', '.join(RANK_METRICS)}, got {args.rank!r}")
        if args.workers is not None and args.workers < 1:
            raise DataError(f"--workers: expected an integer >= 1, got {args.workers}")
        if args.report and variants:
            raise DataError(
                "--report: a sweep writes no report; re-run the chosen variant with its --set "
                "options (the sweep's table prints them) and --report"
            )
        if args.report:
            _check_report_path(args.report)
    except DataError as exc:
        return usage_error(str(exc))
    settings = settings_from_args(args)
    if getattr(args, "log_level", None) is None:  # the run logs every signal at INFO
        settings = with_logging(settings, level="WARNING")
    setup_logging(settings)
    try:
        if sets:  # named --set when wrong; a sweep applies them to each variant instead
            with_sets = apply_overrides(settings, sets, option="--set")
            settings = settings if variants else with_sets
        if not req.files and _relative_sqlite(settings.database.url):
            req = replace(req, workdir=os.getcwd())  # its candles are found from there
        return run_async(_main(settings, req, args, variants))
    except DataError as exc:
        return usage_error(str(exc))


async def _main(settings: Any, req: Any, args: argparse.Namespace, variants: list[Any]) -> int:
    from cryptomon.backtest.session import load_series, recordings, run_request, store_run

    if variants:
        if recordings(req) or req.trades:
            raise _usage("--sweep runs on candles (stored or files), not on trades or recordings")
        return await _sweep(settings, req, await load_series(settings, req), variants, args)
    result, document = await run_request(settings, req)
    report = None
    if args.report:
        from cryptomon.backtest.report import render

        report = render(result, document, f"Backtest {', '.join(document['params']['symbols'])}")
        try:
            await asyncio.to_thread(Path(args.report).write_text, report, encoding="utf-8")
        except OSError as exc:
            raise _usage(f"--report {args.report}: cannot write it ({exc.strerror})") from None
    if not args.no_store:
        document["id"] = await store_run(settings, result, document, report)
    if args.json:
        sys.stdout.write(json.dumps(document, default=str) + "\n")
    else:
        _print_summary(document, result.seconds)
    return EXIT_OK


async def _sweep(
    settings: Any, req: Any, series: Any, variants: list[Any], args: argparse.Namespace
) -> int:
    from cryptomon.backtest.session import override_args, store_sweep
    from cryptomon.backtest.sweep import run_sweep

    workers = args.workers or min(len(variants), os.cpu_count() or 1)
    docs = run_sweep(settings, series, req, variants, workers=workers, rank=args.rank)
    ids: list[int | None] = [None] * len(docs)
    if not args.no_store:  # the parent writes, one variant per transaction
        ids = list(await store_sweep(settings, docs, metric=args.rank))
    rows = []
    for run_id, doc in zip(ids, docs, strict=True):
        row = {"overrides": doc["params"]["overrides"], "summary": doc["summary"]}
        row.update(digest=doc["digest"], command=doc["params"]["command"])
        if run_id is not None:
            row["id"] = run_id
        rows.append(row)
    if args.json:
        out: dict[str, Any] = {"rank": args.rank, "variants": rows}
        if not args.no_store:
            out["sweep"] = ids[0]
        sys.stdout.write(json.dumps(out, default=str) + "\n")
        return EXIT_OK
    cols = ("pnl", "return_pct", "trades", "win_rate", "sharpe", "max_drawdown_pct")
    head = "  ".join(f"{c:>16}" for c in cols)
    sys.stdout.write(f"rank  {'run':>8}  {head}  parameters\n")
    for n, (run_id, row) in enumerate(zip(ids, rows, strict=True), 1):
        cells = "  ".join(f"{_num(row['summary'].get(c)):>16}" for c in cols)
        params = " ".join(override_args(row["overrides"]))
        sys.stdout.write(f"{n:>4}  {_num(run_id):>8}  {cells}  {params}\n")
    for n, (run_id, row) in enumerate(zip(ids, rows, strict=True), 1):
        # what the single run's summary prints as "warning" (a tick off the market: no
        # trade, a PnL of 0 that may rank first), by the variant's rank
        name = f"rank {n}" + (f" (run {run_id})" if run_id is not None else "")
        for text in row["summary"].get("warnings", ()):
            sys.stdout.write(f"warning   {name}: {text}\n")
    if ids[0] is None:
        sys.stdout.write("not stored (--no-store)\n")
    else:
        sys.stdout.write(
            f"sweep {ids[0]} stored: {len(ids)} runs, best first "
            f"(GET /api/v1/backtests?sweep={ids[0]}); each run's params.command runs it "
            f"again (add --report for its HTML report), the best:\n"
            f"  {rows[0]['command']}\n"
        )
    return EXIT_OK


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _signals_line(s: dict[str, Any]) -> str:
    """What the signals came to: ``580 -> 0 orders: 277 refused, 303 not acted on
    (side_held 200, weak 103)``, the reasons the engine makes no order of a signal keyed as
    :data:`cryptomon.trading.entries.NOT_ACTED` explains them."""
    text = f"{s['signals']} -> {s['signals_ordered']} orders"
    parts = []
    if s["signals_refused"]:
        parts.append(f"{s['signals_refused']} refused")
    if s["signals_not_acted"]:
        reasons = ", ".join(f"{k} {n}" for k, n in s.get("not_acted_by_reason", {}).items())
        parts.append(
            f"{s['signals_not_acted']} not acted on" + (f" ({reasons})" if reasons else "")
        )
    return text + (": " + ", ".join(parts) if parts else "")


def _refused_line(s: dict[str, Any]) -> str:
    """The orders refused, by check: ``277 by the risk checks (min_notional 277)``."""
    checks = ", ".join(f"{name} {n}" for name, n in s["refused_by_check"].items())
    return f"{s['refused']} by the risk checks ({checks})"


def _rejected_line(s: dict[str, Any]) -> str:
    """The placed orders the broker rejected, by reason: ``12 by the broker (...)``."""
    reasons = ", ".join(f"{why} {n}" for why, n in s["rejected_by_reason"].items())
    return f"{s['rejected']} orders by the broker ({reasons})"


def _print_summary(document: dict[str, Any], seconds: float) -> None:
    from datetime import UTC, datetime

    s = document["summary"]

    def day(ts: float) -> str:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")

    out = sys.stdout
    out.write(f"period         {day(s['start'])} .. {day(s['end'])} UTC ({s['days']:.2f} days)\n")
    q = s["quote"]
    lines = [
        ("candles", f"{s['candles']} in {seconds:.1f}s; anomalies {s['anomalies']}"),
        ("signals", _signals_line(s)),
        *([("refused", _refused_line(s))] if s["refused"] else []),
        *([("rejected", _rejected_line(s))] if s["rejected"] else []),
        ("trades", f"{s['trades']} (win rate {s['win_rate'] * 100:.1f}%)"),
        ("PnL", f"{_num(s['pnl'])} {q} ({s['pnl_pct']:.2f}%), fees {_num(s['fees'])} {q}"),
        ("return", f"{s['return_pct']:.2f}% (buy and hold {s['buy_and_hold_pct']:.2f}%)"),
        ("profit factor", f"{_num(s['profit_factor'])}; expectancy {_num(s['expectancy'])} {q}"),
        (
            "Sharpe",
            f"{_num(s['sharpe'])}; Sortino {_num(s['sortino'])}; Calmar {_num(s['calmar'])}",
        ),
        (
            "max drawdown",
            f"{s['max_drawdown_pct']:.2f}% over {s['max_drawdown_s'] / 3600:.1f} h; "
            f"exposure {s['exposure_pct']:.1f}%",
        ),
        ("best/worst", f"{_num(s['best_trade'])} / {_num(s['worst_trade'])} {q}"),
    ]
    if s.get("open_at_end"):  # why return and PnL differ
        lines.append(
            (
                "open at end",
                f"{s['open_at_end']} position(s), {_num(s['open_pnl'])} {q} unrealized "
                "(in return, not in PnL)",
            )
        )
    lines += [("warning", text) for text in s.get("warnings", ())]
    for name, text in lines:
        out.write(f"{name:<15}{text}\n")
    for name, row in document["by_source"].items():
        out.write(f"  source {name}: {row['trades']} trades, PnL {_num(row['pnl'])} {q}\n")
    if "id" in document:
        out.write(f"stored as backtest run {document['id']}\n")
