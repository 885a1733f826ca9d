"""``crypto-monitor download``: market history into the database, for backtests.

``download --exchange EX --symbols A/B,C/D --timeframe 1m --since T [--until T] [--trades]
[--url URL]`` fetches OHLCV (and public trades) through ccxt, paginated, rate-limited and
resumable (:mod:`cryptomon.backtest.download`); ``--url`` points ccxt at another origin (the
simulator). ``download --from-file FILE --exchange EX [--symbol SYM [--quote Q]]`` imports a
JSON/CSV candle or trade file (:mod:`cryptomon.backtest.importer`; without --symbol the market
is read from a freqtrade-style name such as ``ALT_BTC-1m.json.gz``). A progress bar on a
terminal, one summary line per market at the end, ``--json`` for one JSON line.
Bad input: one line, exit 2. A venue that does not answer or refuses a request: one line
naming it, exit 1 (what was stored before stays; a rerun resumes).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Any

from cryptomon.commands.support import EXIT_FAILURE, EXIT_OK, configured, run_async, usage_error

_EXCHANGE = re.compile(r"^[a-z0-9_]{2,32}$")


def register(subparsers: Any, parent: argparse.ArgumentParser) -> None:
    dl = subparsers.add_parser(
        "download", parents=[parent], help="download or import market history for backtests"
    )
    dl.add_argument("--exchange", required=True, metavar="EX", help="ccxt id (or a name)")
    dl.add_argument("--symbols", "--symbol", default=None, metavar="LIST", help="A/B,C/D")
    dl.add_argument("--quote", default=None, metavar="Q", help="quote of a bare --symbol")
    dl.add_argument("--from-file", default=None, metavar="FILE", help="import a JSON/CSV file")
    dl.add_argument(
        "--timeframe",
        default=None,
        metavar="TF",
        help="candle interval (1m; --from-file: trades are aggregated to it, candles must match)",
    )
    dl.add_argument("--since", default=None, metavar="T", help="first candle (UTC date/time)")
    dl.add_argument("--until", default=None, metavar="T", help="end (exclusive; default now)")
    dl.add_argument("--trades", action="store_true", help="public trades too")
    dl.add_argument("--url", default=None, metavar="URL", help="REST origin (the simulator)")
    dl.add_argument("--limit", type=int, default=1000, metavar="N", help="rows per request")
    dl.add_argument("--json", action="store_true", help="print the result as one JSON line")
    dl.set_defaults(handler=cmd_download)


def cmd_download(args: argparse.Namespace) -> int:
    from cryptomon.market.datafiles import DataError

    exchange = args.exchange.strip().lower()
    if not _EXCHANGE.match(exchange):
        return usage_error(f"--exchange: expected a name like binance, got {args.exchange!r}")
    settings = configured(args)
    try:
        if args.from_file:
            return _import(settings, exchange, args)
        args.timeframe = args.timeframe or "1m"
        plan = _plan(exchange, args)
        return run_async(_download(settings, plan, args))
    except DataError as exc:
        return usage_error(str(exc))


def _import(settings: Any, exchange: str, args: argparse.Namespace) -> int:
    from cryptomon.backtest.data import timeframe_seconds
    from cryptomon.backtest.importer import market_symbol
    from cryptomon.market.datafiles import DataError

    # options of a download from the venue: refused, not silently ignored
    given = [
        name
        for name, value in (("--since", args.since), ("--until", args.until), ("--url", args.url))
        if value is not None
    ]
    if given:
        raise DataError(
            f"{', '.join(given)}: not used with --from-file (the file is imported whole); "
            "leave them out"
        )
    _check_import_exchange(exchange)
    if args.timeframe is not None:
        timeframe_seconds(args.timeframe)  # an unknown one is named before the file is read
    # no --symbol: the file name tells it (ALT_BTC-1m.json.gz), as for `backtest FILE`
    symbol = market_symbol(args.symbols, args.quote) if args.symbols else None

    async def main() -> int:
        from cryptomon.backtest.importer import import_file
        from cryptomon.store.db import Database

        db = Database(settings.database)
        await db.start()
        try:
            out = await import_file(
                db, args.from_file, exchange=exchange, symbol=symbol, timeframe=args.timeframe
            )
        finally:
            await db.stop()
        if args.json:
            sys.stdout.write(json.dumps(out) + "\n")
        else:
            sys.stdout.write(
                f"imported {out['kind']} of {exchange} {out['symbol']} from {args.from_file}: "
                f"{out['candles']} {out['timeframe']} candles, {out['trades']} trades, "
                f"{_day(out['first'])} .. {_day(out['last'])}; tick {out['tick']}, "
                f"lot {out['lot']} (spot, inferred)\n"
            )
        return EXIT_OK

    return run_async(main())


def _check_import_exchange(exchange: str) -> None:
    """An import is stored under ``exchange``, and a backtest finds it by that name: a ccxt
    id (``download`` from the venue) or a cryptofeed name (the daemon's feeds, e.g.
    binance_futures). A typo would store the data where nothing looks."""
    import difflib

    import ccxt

    from cryptomon.feeds.cryptofeed import valid_exchange_names
    from cryptomon.market.datafiles import DataError

    known = set(ccxt.exchanges) | set(valid_exchange_names())
    if exchange in known:
        return
    close = difflib.get_close_matches(exchange, sorted(known), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise DataError(f"--exchange {exchange!r}: not an exchange ccxt or cryptofeed knows{hint}")


def _plan(exchange: str, args: argparse.Namespace) -> dict[str, Any]:
    import ccxt

    from cryptomon.backtest.data import timeframe_seconds
    from cryptomon.backtest.importer import market_symbol
    from cryptomon.backtest.inputs import check_range, parse_time
    from cryptomon.market.datafiles import DataError

    if exchange not in ccxt.exchanges:
        raise DataError(f"--exchange: {exchange!r} is not a ccxt exchange id (e.g. binance)")
    step = timeframe_seconds(args.timeframe)
    if args.since is None:
        raise DataError("--since is required (e.g. --since 2026-01-01)")
    since = parse_time(args.since, "--since")
    until = parse_time(args.until, "--until")
    assert since is not None
    now = time.time()
    end = min(until if until is not None else now, now // step * step)
    check_range(since, until, ("--since", "--until"))
    start = since // step * step
    if start >= end:
        raise DataError(f"--since {args.since}: the range holds no closed {args.timeframe} candle")
    if not args.symbols:
        raise DataError("--symbols is required (e.g. --symbols BTC/USDT,ETH/USDT)")
    # a market named twice (BTC/USDT,btc-usdt) is one market: fetched and reported once
    symbols = list(
        dict.fromkeys(market_symbol(s, args.quote) for s in args.symbols.split(",") if s.strip())
    )
    if args.limit < 1:
        raise DataError(f"--limit: expected an integer >= 1, got {args.limit}")
    if args.url is not None:
        from cryptomon.config.base import HTTP_URL_EXPECTED, check_http_url

        try:
            check_http_url(args.url)
        except ValueError:
            raise DataError(f"--url: expected {HTTP_URL_EXPECTED}, got {args.url!r}") from None
    return {"exchange": exchange, "symbols": symbols, "step": step, "start": start, "end": end}


def _bar(symbol: str) -> Any:
    def show(done: int, total: int) -> None:
        frac = done / total if total else 1.0
        filled = int(frac * 30)
        sys.stderr.write(f"\r{symbol:<12} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


async def _download(settings: Any, plan: dict[str, Any], args: argparse.Namespace) -> int:
    import asyncio

    import ccxt

    try:
        return await _fetch(settings, plan, args)
    except asyncio.CancelledError:
        # Ctrl-C (the runner cancels this task; the exit is 130): say what became of the
        # work, after the progress bar's unfinished line
        sys.stderr.write(
            ("\n" if sys.stderr.isatty() else "")
            + "crypto-monitor download: interrupted; what was stored stays; run the same "
            "command again to resume\n"
        )
        raise
    except ccxt.BaseError as exc:
        # a venue that is unreachable, answers an error status or refuses the request: one
        # line, never ccxt's traceback
        where = f" at {args.url}" if args.url else ""
        first = (str(exc).splitlines() or [""])[0]
        detail = first if len(first) <= 300 else first[:297] + "..."
        sys.stderr.write(
            f"crypto-monitor download: {plan['exchange']}{where} failed: "
            f"{type(exc).__name__}: {detail} (what was stored stays; run again to resume)\n"
        )
        return EXIT_FAILURE


async def _fetch(settings: Any, plan: dict[str, Any], args: argparse.Namespace) -> int:
    from cryptomon.backtest.download import Downloader
    from cryptomon.clock import LiveClock
    from cryptomon.config import LiveTradingConfig
    from cryptomon.store.db import Database
    from cryptomon.trading.brokers.ccxt_client import build_exchange

    live: Any = LiveTradingConfig(exchange=plan["exchange"], url=args.url)  # public calls only
    client = build_exchange(live)
    db = Database(settings.database)
    await db.start()
    reports = []
    try:
        await client.load_markets()
        for symbol in plan["symbols"]:  # every symbol before any download
            if symbol.replace("-", "/") not in client.markets:
                raise_unknown(plan["exchange"], symbol)
        for symbol in plan["symbols"]:
            market = symbol.replace("-", "/")
            tty = sys.stderr.isatty() and not args.json
            loader = Downloader(
                exchange=client,
                db=db,
                clock=LiveClock(),
                name=plan["exchange"],
                limit=args.limit,
                progress=_bar(symbol) if tty else None,
            )
            start, end = plan["start"], plan["end"]
            report = await loader.candles(
                symbol, market, timeframe=args.timeframe, step=plan["step"], start=start, end=end
            )
            if args.trades:
                await loader.trades(report, symbol, market, start, end)
            reports.append(report)
    finally:
        await client.close()
        await db.stop()
    _print(reports, args)
    return EXIT_OK


def raise_unknown(exchange: str, symbol: str) -> None:
    from cryptomon.market.datafiles import DataError

    raise DataError(f"--symbols: {exchange} does not list {symbol.replace('-', '/')}")


def _day(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M")


def _print(reports: list[Any], args: argparse.Namespace) -> None:
    if args.json:
        sys.stdout.write(json.dumps({"markets": [r.as_dict() for r in reports]}) + "\n")
        return
    for r in reports:
        gaps = ", ".join(f"{_day(a)}..{_day(b)}" for a, b in r.gaps[:5])
        more = f" (+{len(r.gaps) - 5} more)" if len(r.gaps) > 5 else ""
        sys.stdout.write(
            f"{args.exchange} {r.symbol}: {r.candles} candles, {r.trades} trades, "
            f"{r.requests} requests, rate limited {r.rate_limited}x ({r.waited_s:.1f}s); "
            f"gaps {len(r.gaps)}{': ' + gaps + more if r.gaps else ''}\n"
        )
